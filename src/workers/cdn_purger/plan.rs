//! What one `AssetChange` asks to purge: for a deploy, the difference between its two
//! manifests; for a single asset, its URL and keys as given.

use crate::bus::HandlerError;
use crate::cdn::{AssetStore, AssetsSettings, Manifest, StoreError, purge_set};
use crate::records::AssetChange;

/// A file the edge must serve fresh after the purge, and what fresh is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Its public URL.
    pub url: String,
    /// `sha256:<hex>` of its identity bytes: the origin's `ETag`.
    pub hash: String,
    /// The precompressed variants the edge may cache beside identity.
    pub encodings: Vec<String>,
    /// An entry point (re-warmed and verified first).
    pub entry: bool,
}

/// The purge of one change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Public URLs of everything purged.
    pub urls: Vec<String>,
    /// Public URLs that no purged surrogate key covers (purged by URL even where keys work).
    pub uncovered_urls: Vec<String>,
    /// Surrogate keys to purge.
    pub keys: Vec<String>,
    /// What the edge must serve after the purge, entry points first.
    pub expected: Vec<Expected>,
}

/// The plan for `change`; a change that can never be purged (a malformed path, a manifest that
/// is missing or invalid) is rejected, a store that cannot be reached is transient.
pub async fn plan(change: &AssetChange, store: &AssetStore, assets: &AssetsSettings) -> Result<Plan, HandlerError> {
    let Some(manifest_id) = &change.manifest_id else {
        return single_asset(change, assets);
    };
    let new = manifest(store, manifest_id).await?;
    let old = match &change.previous_manifest_id {
        Some(id) => Some(manifest(store, id).await?),
        None => None,
    };
    let set = purge_set(old.as_ref(), &new);
    let urls: Vec<String> =
        set.urls.iter().flat_map(|path| with_alias(path)).map(|path| assets.url_of(&path)).collect();
    let covered = |path: &str| {
        let file = path.trim_start_matches('/');
        let carried = |manifest: &Manifest| {
            manifest
                .entries
                .values()
                .filter(|entry| entry.file == file)
                .any(|entry| entry.surrogate_keys.iter().any(|key| set.keys.contains(key)))
        };
        carried(&new) || old.as_ref().is_some_and(carried)
    };
    let uncovered_urls = set
        .urls
        .iter()
        .filter(|path| !covered(path))
        .flat_map(|path| with_alias(path))
        .map(|path| assets.url_of(&path))
        .collect();
    let mut expected: Vec<Expected> = new
        .entries
        .values()
        .filter(|entry| set.urls.iter().any(|path| path.trim_start_matches('/') == entry.file))
        .flat_map(|entry| {
            with_alias(&entry.file).into_iter().map(|file| Expected {
                url: assets.url_of(&file),
                hash: entry.hash.clone(),
                encodings: entry.encodings.keys().cloned().collect(),
                entry: entry.is_entry,
            })
        })
        .collect();
    expected.sort_by_key(|expected| !expected.entry);
    Ok(Plan { urls, uncovered_urls, keys: set.keys, expected })
}

/// A path and the other URL the origin serves it under: a folder's `index.html` is also its
/// folder (`/reports/index.html` and `/reports/`), a separate object at every edge.
fn with_alias(path: &str) -> Vec<String> {
    let mut paths = vec![path.to_owned()];
    if let Some(folder) = path.strip_suffix("index.html")
        && (folder.is_empty() || folder.ends_with('/'))
    {
        paths.push(if folder.is_empty() { "/".to_owned() } else { folder.to_owned() });
    }
    paths
}

async fn manifest(store: &AssetStore, id: &str) -> Result<Manifest, HandlerError> {
    store.manifest(id).await.map_err(|error| match error {
        StoreError::NotFound(_) => HandlerError::rejected("manifest_missing", error.to_string()),
        StoreError::Manifest { .. } => HandlerError::rejected("manifest_invalid", error.to_string()),
        StoreError::Config(_) | StoreError::Io { .. } | StoreError::Pointer(_) => {
            HandlerError::transient("asset_store", error.to_string())
        }
    })
}

/// A change of one asset, published by something other than `assets publish` (a report, a
/// chart): its URL and its keys, as given.
fn single_asset(change: &AssetChange, assets: &AssetsSettings) -> Result<Plan, HandlerError> {
    let path = &change.asset_path;
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) || path.contains("/../") {
        return Err(HandlerError::rejected(
            "invalid_change",
            format!("asset_path `{path}` is not an absolute URL path"),
        ));
    }
    let url = match &change.asset_url {
        Some(url) => {
            let parsed = reqwest::Url::parse(url)
                .map_err(|error| HandlerError::rejected("invalid_change", format!("asset_url `{url}`: {error}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(HandlerError::rejected("invalid_change", format!("asset_url `{url}` is not http(s)")));
            }
            url.clone()
        }
        None => assets.url_of(path),
    };
    for key in &change.surrogate_keys {
        if key.is_empty()
            || key.len() > crate::cdn::manifest::MAX_KEY_BYTES
            || key.chars().any(|c| c.is_whitespace() || c == ',')
        {
            return Err(HandlerError::rejected(
                "invalid_change",
                format!("surrogate key `{key}` would split or overflow at an edge"),
            ));
        }
    }
    Ok(Plan {
        urls: vec![url.clone()],
        uncovered_urls: vec![url],
        keys: change.surrogate_keys.clone(),
        expected: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ChangeType;

    fn change(path: &str, url: Option<&str>, keys: &[&str]) -> AssetChange {
        AssetChange {
            id: "c1".into(),
            asset_path: path.into(),
            asset_url: url.map(str::to_owned),
            change: ChangeType::Updated,
            content_hash: None,
            surrogate_keys: keys.iter().map(|key| (*key).to_owned()).collect(),
            manifest_id: None,
            previous_manifest_id: None,
            changed_at: 0,
        }
    }

    fn rejected(result: Result<Plan, HandlerError>) -> String {
        match result {
            Err(HandlerError::Rejected { kind, reason, .. }) => format!("{kind}: {reason}"),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn a_single_asset_is_purged_by_its_public_url_and_keys() {
        let plan =
            single_asset(&change("/reports/q1.pdf", None, &["symbol:AAPL"]), &AssetsSettings::default()).unwrap();
        assert_eq!(plan.urls, ["http://127.0.0.1:6081/reports/q1.pdf"]);
        assert_eq!(plan.keys, ["symbol:AAPL"]);
    }

    #[test]
    fn a_single_asset_change_that_could_never_purge_is_rejected_with_the_reason() {
        let assets = AssetsSettings::default();
        assert!(rejected(single_asset(&change("reports/q1.pdf", None, &[]), &assets)).contains("absolute URL path"));
        assert!(rejected(single_asset(&change("/a/../../etc", None, &[]), &assets)).starts_with("invalid_change"));
        assert!(rejected(single_asset(&change("/a", Some("ftp://x/a"), &[]), &assets)).contains("not http"));
        assert!(rejected(single_asset(&change("/a", None, &["two words"]), &assets)).contains("would split"));
    }

    #[test]
    fn a_folder_s_index_is_also_purged_as_the_folder() {
        assert_eq!(with_alias("/index.html"), ["/index.html", "/"]);
        assert_eq!(with_alias("/reports/index.html"), ["/reports/index.html", "/reports/"]);
        assert_eq!(with_alias("reports/index.html"), ["reports/index.html", "reports/"]);
        assert_eq!(with_alias("/myindex.html"), ["/myindex.html"]);
    }
}
