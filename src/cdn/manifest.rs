//! `Manifest`: what one build of a site produced, keyed by source path like Vite's
//! `.vite/manifest.json` (`file`, `src`, `isEntry`, `css`, `assets`, `imports`), with what the
//! origin and the purger need besides: size, content hash, SRI integrity, surrogate keys, the
//! precompressed variants, and whether the file keeps its URL from build to build.
//!
//! A manifest arrives from outside (a deploy's publisher, an object store), so reading one is
//! strict: unknown fields, paths that could leave the site, malformed hashes, keys that would
//! split at an edge, and references to files it does not list are errors that name the entry.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most entries a manifest may list (a site of a few thousand files is large).
pub const MAX_ENTRIES: usize = 100_000;
/// Longest surrogate key (Fastly's limit is 1,024 bytes per key).
pub const MAX_KEY_BYTES: usize = 1024;

/// One built file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestEntry {
    /// The built file's URL path without the leading slash (`assets/app.3f2a1b9c.css`).
    pub file: String,
    /// Its source path (the key it is listed under).
    pub src: String,
    /// A page users open by its URL (HTML).
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_entry: bool,
    /// Stylesheets it references, by built file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub css: Vec<String>,
    /// Other files it references (images, fonts), by built file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<String>,
    /// Scripts it imports, by manifest key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
    /// Bytes of the file as built (identity encoding).
    pub size: u64,
    /// `sha256:<hex>` of those bytes: the origin's `ETag`, and what the purger verifies.
    pub hash: String,
    /// Subresource Integrity of those bytes (`sha384-<base64>`).
    pub integrity: String,
    /// Surrogate keys (cache tags) the origin sends with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub surrogate_keys: Vec<String>,
    /// Precompressed variants kept (only those smaller than the file): encoding -> bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub encodings: BTreeMap<String, u64>,
    /// Keeps its URL from build to build (entry points and files nothing references by a
    /// hashed name); only such files are ever purged: a hashed file's content never changes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stable: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// A build's manifest: entries by source path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Manifest {
    /// The entries, by source path.
    pub entries: BTreeMap<String, ManifestEntry>,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the manifest's shape.
    #[error("not a manifest: {0}")]
    Syntax(String),
    /// More entries than [`MAX_ENTRIES`].
    #[error("{0} entries, more than the {MAX_ENTRIES} a manifest may list")]
    TooLarge(usize),
    /// One entry is wrong.
    #[error("entry `{entry}`: {reason}")]
    Entry {
        /// The entry's key.
        entry: String,
        /// What is wrong.
        reason: String,
    },
}

impl Manifest {
    /// Reads and validates a manifest.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|error| ManifestError::Syntax(error.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The manifest as JSON: the same manifest always gives the same bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain maps, strings and numbers: serializing cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// The manifest's id: `sha256:` and the first 16 bytes of its JSON's digest, in hex.
    pub fn id(&self) -> String {
        let digest = Sha256::digest(self.to_json());
        format!("sha256:{}", hex::encode(&digest[..16]))
    }

    /// Checks what [`Manifest::from_json`] promises of every entry.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(ManifestError::TooLarge(self.entries.len()));
        }
        let mut files: BTreeSet<&str> = BTreeSet::new();
        for (key, entry) in &self.entries {
            if !files.insert(entry.file.as_str()) {
                return Err(invalid(key, format!("file `{}` is built from two sources", entry.file)));
            }
        }
        for (key, entry) in &self.entries {
            check_entry(self, &files, key, entry)?;
        }
        Ok(())
    }
}

fn invalid(entry: &str, reason: impl Into<String>) -> ManifestError {
    ManifestError::Entry { entry: entry.to_owned(), reason: reason.into() }
}

fn check_entry(
    manifest: &Manifest,
    files: &BTreeSet<&str>,
    key: &str,
    entry: &ManifestEntry,
) -> Result<(), ManifestError> {
    if entry.src != key {
        return Err(invalid(key, format!("src `{}` differs from the key it is listed under", entry.src)));
    }
    site_path(&entry.file).map_err(|reason| invalid(key, format!("file `{}`: {reason}", entry.file)))?;
    site_path(&entry.src).map_err(|reason| invalid(key, format!("src: {reason}")))?;
    let hex = entry.hash.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(invalid(key, format!("hash `{}` is not sha256:<64 lower-case hex digits>", entry.hash)));
    }
    if !entry.integrity.starts_with("sha384-") {
        return Err(invalid(key, "integrity must be sha384-<base64>"));
    }
    for referenced in entry.css.iter().chain(&entry.assets) {
        if !files.contains(referenced.as_str()) {
            return Err(invalid(key, format!("references `{referenced}`, which the manifest does not list")));
        }
    }
    for import in &entry.imports {
        if !manifest.entries.contains_key(import) {
            return Err(invalid(key, format!("imports `{import}`, which the manifest does not list")));
        }
    }
    for surrogate in &entry.surrogate_keys {
        // Edges split key headers on whitespace (xkey, Fastly): such a key would purge others.
        let usable = !surrogate.is_empty()
            && surrogate.len() <= MAX_KEY_BYTES
            && surrogate.bytes().all(|b| b.is_ascii_graphic());
        if !usable {
            return Err(invalid(
                key,
                format!("surrogate key {surrogate:?} must be 1-{MAX_KEY_BYTES} printable ASCII bytes without spaces"),
            ));
        }
    }
    for (encoding, size) in &entry.encodings {
        if !["br", "zstd", "gzip"].contains(&encoding.as_str()) {
            return Err(invalid(key, format!("encoding `{encoding}` is none of br, zstd, gzip")));
        }
        if *size >= entry.size {
            return Err(invalid(key, format!("the {encoding} variant ({size} bytes) is not smaller than the file")));
        }
    }
    Ok(())
}

/// A relative URL path that stays inside the site: segments of printable ASCII other than
/// `%`, `?`, `#` and `\`, none empty, `.` or `..`.
fn site_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() || path.len() > 1024 {
        return Err("must be 1 to 1024 bytes");
    }
    if path.starts_with('/') {
        return Err("must be relative (no leading /)");
    }
    if !path.bytes().all(|b| b.is_ascii_graphic() && !b"%?#\\".contains(&b)) {
        return Err("must be printable ASCII without %, ?, # or \\");
    }
    if path.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return Err("has an empty, . or .. segment");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hashed, non-entry file built from `content`, with its own key `f:<file>`.
    pub(crate) fn entry(src: &str, file: &str, content: &str) -> ManifestEntry {
        ManifestEntry {
            file: file.into(),
            src: src.into(),
            is_entry: false,
            css: Vec::new(),
            assets: Vec::new(),
            imports: Vec::new(),
            size: content.len() as u64,
            hash: format!("sha256:{}", hex::encode(Sha256::digest(content.as_bytes()))),
            integrity: "sha384-AAAA".into(),
            surrogate_keys: vec![format!("f:{file}")],
            encodings: BTreeMap::new(),
            stable: false,
        }
    }

    pub(crate) fn manifest(entries: Vec<ManifestEntry>) -> Manifest {
        Manifest { entries: entries.into_iter().map(|entry| (entry.src.clone(), entry)).collect() }
    }

    #[test]
    fn a_manifest_reads_back_as_written_with_vite_s_field_names() {
        let mut page = entry("index.html", "index.html", "<html>");
        page.is_entry = true;
        page.stable = true;
        page.css = vec!["assets/app.1234abcd.css".into()];
        let css = entry("app.css", "assets/app.1234abcd.css", "body{}");
        let built = manifest(vec![page, css]);
        let json = built.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("\"isEntry\": true") && text.contains("\"file\": \"index.html\""), "{text}");
        assert_eq!(Manifest::from_json(&json).unwrap(), built);
        assert_eq!(built.id(), Manifest::from_json(&json).unwrap().id());
        assert!(built.id().starts_with("sha256:") && built.id().len() == 7 + 32);
    }

    #[test]
    fn a_path_that_leaves_the_site_is_refused_naming_the_entry() {
        for file in ["../etc/passwd", "/index.html", "a//b", "a/./b", "a\\b", "a b", "a?x=1"] {
            let bad = manifest(vec![entry("x.css", file, "x")]);
            match bad.validate() {
                Err(ManifestError::Entry { entry, .. }) => assert_eq!(entry, "x.css", "{file}"),
                other => panic!("{file}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_reference_to_a_file_the_manifest_does_not_list_is_refused() {
        let mut page = entry("index.html", "index.html", "<html>");
        page.css = vec!["assets/gone.css".into()];
        let error = manifest(vec![page]).validate().unwrap_err().to_string();
        assert!(error.contains("assets/gone.css"), "{error}");
    }

    #[test]
    fn two_sources_built_to_one_file_are_refused() {
        let error = manifest(vec![entry("a.css", "app.css", "a"), entry("b.css", "app.css", "b")]).validate();
        assert_eq!(
            error.unwrap_err(),
            ManifestError::Entry { entry: "b.css".into(), reason: "file `app.css` is built from two sources".into() }
        );
    }

    #[test]
    fn a_surrogate_key_with_a_space_is_refused_since_edges_split_on_it() {
        let mut css = entry("app.css", "app.css", "x");
        css.surrogate_keys = vec!["two keys".into()];
        assert!(manifest(vec![css]).validate().unwrap_err().to_string().contains("surrogate key"));
    }

    #[test]
    fn unknown_fields_and_malformed_hashes_are_refused() {
        let unknown = br#"{"a.css":{"file":"a.css","src":"a.css","size":1,"hash":"sha256:00","integrity":"sha384-x","surprise":1}}"#;
        assert!(matches!(Manifest::from_json(unknown), Err(ManifestError::Syntax(_))));
        let short = br#"{"a.css":{"file":"a.css","src":"a.css","size":1,"hash":"sha256:00","integrity":"sha384-x"}}"#;
        assert!(Manifest::from_json(short).unwrap_err().to_string().contains("hash"));
    }

    #[test]
    fn a_variant_not_smaller_than_the_file_is_refused() {
        let mut css = entry("app.css", "app.css", "body{}");
        css.encodings.insert("br".into(), css.size);
        assert!(manifest(vec![css]).validate().unwrap_err().to_string().contains("not smaller"));
    }
}
