//! `build_site`: a static site's folder made ready for a CDN, as `frontier assets build` runs it.
//!
//! 1. Every file under the source folder is read (sorted, dotfiles skipped; see `walk`).
//! 2. HTML, CSS and JS are minified (minify-html, lightningcss, oxc) and their references
//!    read from the minified text, so what is rewritten is exactly what ships. A file a
//!    minifier cannot parse fails the build, naming it: nothing is copied as is in silence.
//! 3. References are resolved (relative to the referencing file, `/...` to the site's root;
//!    other origins, `data:`, fragments are left alone). A missing file is an error naming the
//!    reference, except for navigations (`<a href>`), which may name a route the origin serves.
//! 4. Every file something references, other than HTML, gets a content-hashed name
//!    (`css/app.3f2a1b9c.css`: 8 hex digits of the SHA-256 of its built bytes); HTML (the
//!    entry points) and files nothing references keep their paths and are `stable`. A preload
//!    follows a hashed name but never causes one (a script may fetch the file by its source
//!    name). A file's
//!    hash covers the hashed names it references, so files are finished leaves first; a cycle
//!    of references is an error naming it, except a cycle of JS modules (legal, and common),
//!    whose members keep their names and are `stable`, so purges cover them.
//! 5. Text files are precompressed (brotli, zstd, gzip; a variant only where smaller).
//! 6. The manifest (`Manifest`: Vite's fields plus size, hash, integrity, surrogate keys and
//!    variants) is validated, then everything is written: the output folder must be empty,
//!    or `clean` empties it, and only once the whole build succeeded in memory.
//!
//! The same source gives the same bytes and the same manifest, every time.

mod compress;
mod css;
mod error;
mod graph;
mod html;
mod js;
mod references;
mod report;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256, Sha384};

use super::manifest::{Manifest, ManifestEntry};
pub use error::BuildError;
use references::{RawRef, RefKind, Resolved};
pub use report::{BuildReport, FileReport, Totals};

/// Where the manifest is written inside the output folder: Vite's place, in a dot-folder an
/// origin never serves.
pub const MANIFEST_PATH: &str = ".vite/manifest.json";

/// How a build runs.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Empty a non-empty output folder (after the build succeeded) instead of refusing it.
    pub clean: bool,
}

/// What a file is to the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Html,
    Css,
    Js,
    /// Copied as is (images, fonts, text nobody minifies).
    Other,
}

impl Kind {
    fn of(rel: &str) -> Kind {
        let ext = rel.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "html" | "htm" => Kind::Html,
            "css" => Kind::Css,
            "js" | "mjs" => Kind::Js,
            _ => Kind::Other,
        }
    }
}

/// One file on its way through the build.
struct Node {
    rel: String,
    kind: Kind,
    source: Vec<u8>,
    /// The minified text (HTML, CSS, JS).
    text: String,
    /// A JS file run as a module (its top-level names are its own).
    module: bool,
    /// References in the minified text, with the file each names (`None`: external, or a
    /// navigation to no file).
    refs: Vec<(RawRef, Option<usize>)>,
    /// Built bytes and path, once finished.
    built: Vec<u8>,
    file: String,
    hashed: bool,
}

/// Builds the site in `src` into `out`: minified, hashed, precompressed, with
/// `out/.vite/manifest.json`.
pub fn build_site(src: &Path, out: &Path, options: &BuildOptions) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    let src = walk::absolute(src)?;
    if !src.is_dir() {
        return Err(BuildError::SourceNotAFolder(src));
    }
    let out = walk::absolute(out)?;
    if out.starts_with(&src) || src.starts_with(&out) {
        return Err(BuildError::Overlap { src, out });
    }
    walk::prepare_out(&out, options.clean, true)?;

    let mut nodes: Vec<Node> = walk::walk(&src)?
        .into_iter()
        .map(|file| Node {
            kind: Kind::of(&file.rel),
            rel: file.rel,
            source: file.bytes,
            text: String::new(),
            module: false,
            refs: Vec::new(),
            built: Vec::new(),
            file: String::new(),
            hashed: false,
        })
        .collect();
    let index: HashMap<String, usize> = nodes.iter().enumerate().map(|(i, node)| (node.rel.clone(), i)).collect();

    minify_all(&mut nodes, &index)?;
    for node in &mut nodes {
        let refs = std::mem::take(&mut node.refs);
        node.refs = refs
            .into_iter()
            .map(|(raw, _)| Ok::<_, BuildError>((raw.clone(), target(&index, &node.rel, &raw)?)))
            .collect::<Result<_, _>>()?;
    }
    finish_all(&mut nodes)?;

    let texts: Vec<usize> = (0..nodes.len()).filter(|&i| compress::is_text(&nodes[i].rel)).collect();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let inputs: Vec<&[u8]> = texts.iter().map(|&i| nodes[i].built.as_slice()).collect();
    let mut variants: Vec<compress::Variants> = vec![compress::Variants::default(); nodes.len()];
    for (&i, result) in texts.iter().zip(compress::compress_all(&inputs, threads)) {
        variants[i] = result.map_err(|source| BuildError::io("compressing", Path::new(&nodes[i].rel), source))?;
    }

    let manifest = manifest(&nodes, &variants);
    manifest.validate()?;
    let mut outputs: BTreeMap<String, &[u8]> = BTreeMap::new();
    for (node, variants) in nodes.iter().zip(&variants) {
        let files = std::iter::once((node.file.clone(), node.built.as_slice()))
            .chain(variants.kept.iter().map(|(_, ext, bytes)| (format!("{}.{ext}", node.file), bytes.as_slice())));
        for (path, bytes) in files {
            if outputs.insert(path.clone(), bytes).is_some() {
                return Err(BuildError::OutputCollision(path));
            }
        }
    }
    let manifest_json = manifest.to_json();
    walk::prepare_out(&out, options.clean, false)?;
    for (path, bytes) in
        outputs.iter().map(|(path, bytes)| (path.as_str(), *bytes)).chain([(MANIFEST_PATH, &manifest_json[..])])
    {
        let target = out.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|source| BuildError::io("creating", parent, source))?;
        }
        std::fs::write(&target, bytes).map_err(|source| BuildError::io("writing", &target, source))?;
    }

    Ok(report::report(&nodes, &variants, &manifest, out.join(MANIFEST_PATH), started.elapsed()))
}

fn utf8(node: &Node) -> Result<&str, BuildError> {
    std::str::from_utf8(&node.source).map_err(|_| BuildError::NotUtf8(node.rel.clone()))
}

/// Minifies HTML, CSS and JS and reads their references. JS goes last: whether a file is a
/// module depends on how HTML and other modules load it.
fn minify_all(nodes: &mut [Node], index: &HashMap<String, usize>) -> Result<(), BuildError> {
    let mut scans: Vec<Option<(bool, Vec<RawRef>)>> = Vec::with_capacity(nodes.len());
    for node in nodes.iter_mut() {
        let mut scan = None;
        match node.kind {
            Kind::Html => {
                let text = String::from_utf8(html::minify(utf8(node)?.as_bytes()))
                    .map_err(|_| BuildError::minify(&node.rel, "minify-html produced invalid UTF-8"))?;
                let found = html::references(&node.rel, &text).map_err(|e| BuildError::minify(&node.rel, e))?;
                node.refs = found.into_iter().map(|raw| (raw, None)).collect();
                node.text = text;
            }
            Kind::Css => {
                let (text, found) =
                    css::minify(&node.rel, utf8(node)?).map_err(|e| BuildError::minify(&node.rel, e))?;
                node.refs = found.into_iter().map(|raw| (raw, None)).collect();
                node.text = text;
            }
            Kind::Js => scan = Some(js::scan(utf8(node)?).map_err(|e| BuildError::minify(&node.rel, e))?),
            Kind::Other => {}
        }
        scans.push(scan);
    }

    // A file is a module when it has module syntax, or when it is loaded as one and never as a
    // classic script (where mangling its top-level names would break the globals it defines).
    let (mut as_module, mut as_classic) = (vec![false; nodes.len()], vec![false; nodes.len()]);
    let loads = nodes
        .iter()
        .zip(&scans)
        .flat_map(|(node, scan)| {
            let refs = scan.as_ref().map_or(&[][..], |(_, refs)| refs.as_slice());
            node.refs.iter().map(|(raw, _)| raw).chain(refs).map(move |raw| (node, raw))
        })
        .filter_map(|(node, raw)| Some((target(index, &node.rel, raw).ok()??, raw.kind)));
    for (target, kind) in loads {
        match kind {
            RefKind::Module | RefKind::ModulePreload => as_module[target] = true,
            RefKind::ClassicScript => as_classic[target] = true,
            RefKind::Subresource | RefKind::Preload | RefKind::Navigation => {}
        }
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let Some((syntax, _)) = scans[i] else { continue };
        node.module = syntax || (as_module[i] && !as_classic[i]);
        let text = js::minify(utf8(node)?, node.module).map_err(|e| BuildError::minify(&node.rel, e))?;
        let found = js::references(&text, node.module)
            .map_err(|e| BuildError::minify(&node.rel, format!("the minified output does not parse: {e}")))?;
        node.refs = found.into_iter().map(|raw| (raw, None)).collect();
        node.text = text;
    }
    Ok(())
}

/// The file `raw` (written in `from`) names: `None` for external references and navigations
/// to no file; an error for any other reference to no file.
fn target(index: &HashMap<String, usize>, from: &str, raw: &RawRef) -> Result<Option<usize>, BuildError> {
    let bad = |reason: String| BuildError::BadReference { file: from.to_owned(), reference: raw.url.clone(), reason };
    let path = match references::resolve(from, &raw.url).map_err(bad)? {
        Resolved::External => return Ok(None),
        Resolved::Local(path) => path,
    };
    match index.get(&path) {
        Some(&found) => Ok(Some(found)),
        None if raw.kind == RefKind::Navigation => Ok(None),
        None => Err(BuildError::MissingReference { file: from.to_owned(), reference: raw.url.clone(), resolved: path }),
    }
}

/// Rewrites, hashes and names every file, leaves first.
fn finish_all(nodes: &mut [Node]) -> Result<(), BuildError> {
    // Referenced non-HTML files are hashed; HTML pages keep their URLs whoever links them.
    for i in 0..nodes.len() {
        let targets: Vec<usize> = nodes[i]
            .refs
            .iter()
            .filter(|(raw, _)| raw.kind.hashes_target())
            .filter_map(|(_, target)| *target)
            .collect();
        for target in targets {
            if nodes[target].kind != Kind::Html {
                nodes[target].hashed = true;
            }
        }
    }
    // A file waits for every hashed file it names, preloads included (they follow the name).
    let edges: Vec<Vec<usize>> = nodes
        .iter()
        .map(|node| {
            let mut targets: Vec<usize> =
                node.refs.iter().filter_map(|(_, target)| *target).filter(|&target| nodes[target].hashed).collect();
            targets.sort_unstable();
            targets.dedup();
            targets
        })
        .collect();
    for component in graph::components(&edges) {
        if graph::is_cycle(&edges, &component) {
            if component.iter().all(|&member| nodes[member].kind == Kind::Js) {
                // No order settles their hashes: they keep their names (and are purged on change).
                for &member in &component {
                    nodes[member].hashed = false;
                }
            } else {
                let cycle = graph::cycle_through_first(&edges, &component);
                return Err(BuildError::Cycle(cycle.into_iter().map(|i| nodes[i].rel.clone()).collect()));
            }
        }
        for &member in &component {
            finish(nodes, member)?;
        }
    }
    Ok(())
}

/// Rewrites one file's references to the hashed names of the files it names (all finished
/// already), then hashes and names it.
fn finish(nodes: &mut [Node], at: usize) -> Result<(), BuildError> {
    let node = &nodes[at];
    let mut renamed: HashMap<&str, String> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    for (raw, target) in &node.refs {
        let Some(target) = target.filter(|&target| nodes[target].hashed) else { continue };
        let name = nodes[target].file.rsplit('/').next().unwrap_or_default();
        renamed.insert(raw.url.as_str(), references::rewrite_url(&raw.url, name));
        names.push(name);
    }
    let rel = node.rel.as_str();
    let lookup = |url: &str| renamed.get(url).cloned();
    let built: Vec<u8> = match node.kind {
        Kind::Other => node.source.clone(),
        _ if renamed.is_empty() => node.text.clone().into_bytes(),
        Kind::Html => html::rewrite(rel, &node.text, &mut |url, _| lookup(url))
            .map_err(|e| BuildError::minify(rel, e))?
            .into_bytes(),
        Kind::Css => css::rewrite(rel, &node.text, &lookup)
            .map_err(|e| BuildError::minify(rel, e))?
            .unwrap_or_else(|| node.text.clone())
            .into_bytes(),
        Kind::Js => js::rewrite(&node.text, node.module, &lookup)
            .map_err(|e| BuildError::minify(rel, e))?
            .unwrap_or_else(|| node.text.clone())
            .into_bytes(),
    };
    let text = String::from_utf8_lossy(&built);
    if let Some(lost) = names.iter().find(|name| !text.contains(**name)) {
        return Err(BuildError::LostReference { file: rel.to_owned(), name: (*lost).to_owned() });
    }
    let file = if node.hashed { hashed_name(rel, &hex::encode(Sha256::digest(&built))[..8]) } else { rel.to_owned() };
    let node = &mut nodes[at];
    node.built = built;
    node.file = file;
    Ok(())
}

/// `dir/name.<hash>.ext` (`dir/name.<hash>` without an extension).
fn hashed_name(rel: &str, hash: &str) -> String {
    let (folder, name) = rel.rsplit_once('/').map_or(("", rel), |(folder, name)| (folder, name));
    let name = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{hash}.{ext}"),
        _ => format!("{name}.{hash}"),
    };
    if folder.is_empty() { name } else { format!("{folder}/{name}") }
}

/// The surrogate key of a source path: `f:` and the path, with anything but letters, digits
/// and `-._~/` percent-encoded (commas split `Cache-Tag` headers, spaces `Surrogate-Key`).
fn file_key(rel: &str) -> String {
    let mut key = String::from("f:");
    for byte in rel.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            key.push(char::from(byte));
        } else {
            key.push_str(&format!("%{byte:02X}"));
        }
    }
    key
}

fn manifest(nodes: &[Node], variants: &[compress::Variants]) -> Manifest {
    let entries = nodes.iter().zip(variants).enumerate().map(|(at, (node, variants))| {
        let (mut css, mut assets, mut imports): (Vec<String>, Vec<String>, Vec<String>) = Default::default();
        for target in node.refs.iter().filter_map(|(_, target)| *target) {
            let referenced = &nodes[target];
            let (list, value) = match referenced.kind {
                // Pages a page links to are not its assets; a module importing itself neither.
                Kind::Html => continue,
                _ if target == at => continue,
                Kind::Css => (&mut css, &referenced.file),
                Kind::Js => (&mut imports, &referenced.rel),
                Kind::Other => (&mut assets, &referenced.file),
            };
            if !list.contains(value) {
                list.push(value.clone());
            }
        }
        let mut surrogate_keys = vec![file_key(&node.rel)];
        if node.kind == Kind::Html {
            surrogate_keys.push("html".to_owned());
        }
        let entry = ManifestEntry {
            file: node.file.clone(),
            src: node.rel.clone(),
            is_entry: node.kind == Kind::Html,
            css,
            assets,
            imports,
            size: node.built.len() as u64,
            hash: format!("sha256:{}", hex::encode(Sha256::digest(&node.built))),
            integrity: format!("sha384-{}", STANDARD.encode(Sha384::digest(&node.built))),
            surrogate_keys,
            encodings: variants.kept.iter().map(|(name, _, bytes)| ((*name).to_owned(), bytes.len() as u64)).collect(),
            stable: !node.hashed,
        };
        (node.rel.clone(), entry)
    });
    Manifest { entries: entries.collect() }
}
