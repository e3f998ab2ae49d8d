//! `AssetStore`: where published sites live, on the local filesystem (the embedded default) or
//! any S3-compatible store, through `object_store`.
//!
//! Layout under the configured prefix:
//!
//! ```text
//! blobs/<sha256 hex>            a file's bytes as built (identity)
//! blobs/<sha256 hex>.br|.zst|.gz  its precompressed variants
//! manifests/<manifest hex>.json   each published build's manifest (immutable)
//! current.json                   which manifest is live, and the ones retired within the grace
//! ```
//!
//! Everything but `current.json` is content-addressed and never rewritten, so a deploy uploads
//! only new content, the origin can cache it forever, and a file of an earlier build stays
//! servable while its manifest is within the grace period (pages still open in browsers).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::manifest::{Manifest, ManifestError};

/// `[assets.store]`: where published sites are kept. A flat table rather than one per kind, so
/// `FRONTIER_ASSETS__STORE__KIND=s3` and friends override a file store field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `file` (a local folder, the default) or `s3` (any S3-compatible bucket).
    pub kind: StoreKind,
    /// The folder of a `file` store (created when missing).
    pub root: std::path::PathBuf,
    /// The endpoint of an `s3` store, e.g. `http://127.0.0.1:9000`; none means AWS's regional
    /// endpoint.
    pub endpoint: Option<String>,
    /// The bucket of an `s3` store.
    pub bucket: String,
    /// The region an `s3` store signs with.
    pub region: String,
    /// The environment variable holding the `s3` store's access key id.
    pub access_key_id_env: String,
    /// The environment variable holding the `s3` store's secret access key.
    pub secret_access_key_env: String,
}

/// The kinds of asset store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A local folder.
    File,
    /// An S3-compatible bucket (AWS S3, Versity Gateway, MinIO, Ceph RGW, ...).
    S3,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            kind: StoreKind::File,
            root: ".stack/assets".into(),
            endpoint: None,
            bucket: "frontier-assets".to_owned(),
            region: "us-east-1".to_owned(),
            access_key_id_env: "AWS_ACCESS_KEY_ID".to_owned(),
            secret_access_key_env: "AWS_SECRET_ACCESS_KEY".to_owned(),
        }
    }
}

impl StoreSettings {
    /// A file store in `root`.
    pub fn file(root: impl Into<std::path::PathBuf>) -> StoreSettings {
        StoreSettings { kind: StoreKind::File, root: root.into(), ..StoreSettings::default() }
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be set up (bad endpoint, missing credentials).
    #[error("asset store: {0}")]
    Config(String),
    /// The object is not there.
    #[error("`{0}` is not in the asset store")]
    NotFound(String),
    /// Reading or writing failed (network, permissions, disk).
    #[error("asset store, `{path}`: {source}")]
    Io {
        /// The object.
        path: String,
        /// What failed.
        #[source]
        source: object_store::Error,
    },
    /// A manifest in the store is not valid.
    #[error("manifest `{id}` in the asset store: {source}")]
    Manifest {
        /// Its id.
        id: String,
        /// What is wrong.
        #[source]
        source: ManifestError,
    },
    /// `current.json` is not what this module writes.
    #[error("current.json in the asset store: {0}")]
    Pointer(String),
}

/// Which build is live, and the builds retired within the grace period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Current {
    /// The live manifest's id.
    pub manifest: String,
    /// When it went live, ms since the epoch.
    pub published_at: i64,
    /// Earlier builds whose hashed files are still served, newest first.
    #[serde(default)]
    pub retired: Vec<Retired>,
}

/// An earlier build still within its grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retired {
    /// Its manifest id.
    pub manifest: String,
    /// When the next build replaced it, ms since the epoch.
    pub retired_at: i64,
}

/// A published site's objects.
#[derive(Debug, Clone)]
pub struct AssetStore {
    store: Arc<dyn ObjectStore>,
    description: String,
}

impl AssetStore {
    /// Opens the store `settings` names.
    pub fn open(settings: &StoreSettings) -> Result<AssetStore, StoreError> {
        match settings.kind {
            StoreKind::File => {
                let root = &settings.root;
                std::fs::create_dir_all(root)
                    .map_err(|error| StoreError::Config(format!("creating {}: {error}", root.display())))?;
                let store = LocalFileSystem::new_with_prefix(root)
                    .map_err(|error| StoreError::Config(format!("{}: {error}", root.display())))?;
                Ok(AssetStore { store: Arc::new(store), description: format!("file:{}", root.display()) })
            }
            StoreKind::S3 => {
                let StoreSettings { endpoint, bucket, region, access_key_id_env, secret_access_key_env, .. } = settings;
                let env = |name: &str| {
                    std::env::var(name)
                        .map_err(|_| StoreError::Config(format!("the S3 store needs the environment variable {name}")))
                };
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(env(access_key_id_env)?)
                    .with_secret_access_key(env(secret_access_key_env)?);
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
                }
                let store = builder.build().map_err(|error| StoreError::Config(error.to_string()))?;
                let where_ = endpoint.as_deref().unwrap_or("aws");
                Ok(AssetStore { store: Arc::new(store), description: format!("s3://{bucket} at {where_}") })
            }
        }
    }

    /// Where the store is, for logs.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The key of a blob: a file's bytes by hash, with an encoding's suffix for a variant.
    pub fn blob_path(hash: &str, encoding: Option<&str>) -> String {
        let hex = hash.strip_prefix("sha256:").unwrap_or(hash);
        match encoding.and_then(suffix) {
            Some(suffix) => format!("blobs/{hex}.{suffix}"),
            None => format!("blobs/{hex}"),
        }
    }

    /// Reads an object.
    pub async fn get(&self, path: &str) -> Result<Bytes, StoreError> {
        let location = StorePath::from(path);
        let result = self.store.get(&location).await.map_err(|error| io(path, error))?;
        result.bytes().await.map_err(|error| io(path, error))
    }

    /// Writes an object.
    pub async fn put(&self, path: &str, bytes: Bytes) -> Result<(), StoreError> {
        let location = StorePath::from(path);
        self.store.put(&location, PutPayload::from(bytes)).await.map_err(|error| io(path, error))?;
        Ok(())
    }

    /// Whether an object exists.
    pub async fn exists(&self, path: &str) -> Result<bool, StoreError> {
        match self.store.head(&StorePath::from(path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(io(path, error)),
        }
    }

    /// Reads and validates a manifest by id.
    pub async fn manifest(&self, id: &str) -> Result<Manifest, StoreError> {
        let bytes = self.get(&manifest_path(id)?).await?;
        let manifest =
            Manifest::from_json(&bytes).map_err(|source| StoreError::Manifest { id: id.to_owned(), source })?;
        // Content-addressed: a manifest that does not hash to its id was tampered with or torn.
        if manifest.id() != id {
            return Err(StoreError::Manifest {
                id: id.to_owned(),
                source: ManifestError::Syntax(format!("its content hashes to {}", manifest.id())),
            });
        }
        Ok(manifest)
    }

    /// Writes a manifest under its id.
    pub async fn put_manifest(&self, manifest: &Manifest) -> Result<String, StoreError> {
        let id = manifest.id();
        self.put(&manifest_path(&id)?, Bytes::from(manifest.to_json())).await?;
        Ok(id)
    }

    /// Which build is live; `None` before the first publish.
    pub async fn current(&self) -> Result<Option<Current>, StoreError> {
        match self.get(CURRENT).await {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|error| StoreError::Pointer(error.to_string()))
            }
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Makes `manifest` the live build, keeping the one it replaces (and earlier ones) within
    /// `grace`; returns the new pointer.
    pub async fn promote(&self, manifest: &str, now_ms: i64, grace: Duration) -> Result<Current, StoreError> {
        let previous = self.current().await?;
        let mut retired = Vec::new();
        if let Some(previous) = previous {
            if previous.manifest != manifest {
                retired.push(Retired { manifest: previous.manifest, retired_at: now_ms });
            }
            let horizon = now_ms.saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
            retired.extend(previous.retired.into_iter().filter(|r| r.retired_at >= horizon && r.manifest != manifest));
        }
        let current = Current { manifest: manifest.to_owned(), published_at: now_ms, retired };
        // A plain JSON struct of strings and integers: serializing cannot fail.
        let bytes = serde_json::to_vec_pretty(&current).unwrap_or_default();
        self.put(CURRENT, Bytes::from(bytes)).await?;
        Ok(current)
    }
}

/// The pointer to the live build.
pub const CURRENT: &str = "current.json";

/// The key of a manifest: its id is `sha256:<32 hex>`, refused otherwise so an id from a
/// message cannot name another object.
pub fn manifest_path(id: &str) -> Result<String, StoreError> {
    let hex = id.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Err(StoreError::Manifest {
            id: id.to_owned(),
            source: ManifestError::Syntax("a manifest id is `sha256:` and 32 lowercase hex digits".to_owned()),
        });
    }
    Ok(format!("manifests/{hex}.json"))
}

/// The file suffix of a content encoding the build produces.
pub fn suffix(encoding: &str) -> Option<&'static str> {
    match encoding {
        "br" => Some("br"),
        "zstd" => Some("zst"),
        "gzip" => Some("gz"),
        _ => None,
    }
}

fn io(path: &str, error: object_store::Error) -> StoreError {
    match error {
        object_store::Error::NotFound { .. } => StoreError::NotFound(path.to_owned()),
        source => StoreError::Io { path: path.to_owned(), source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdn::manifest::tests::{entry, manifest};

    fn store() -> (tempfile::TempDir, AssetStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = AssetStore::open(&StoreSettings::file(dir.path())).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_manifest_reads_back_under_its_id() {
        let (_dir, store) = store();
        let built = manifest(vec![entry("index.html", "index.html", "<html>")]);
        let id = store.put_manifest(&built).await.unwrap();
        assert_eq!(store.manifest(&id).await.unwrap(), built);
    }

    #[tokio::test]
    async fn a_manifest_id_that_names_another_object_is_refused() {
        let (_dir, store) = store();
        assert!(matches!(store.manifest("sha256:../../current").await, Err(StoreError::Manifest { .. })));
    }

    #[tokio::test]
    async fn a_manifest_whose_content_does_not_match_its_id_is_refused() {
        let (_dir, store) = store();
        let built = manifest(vec![entry("index.html", "index.html", "<html>")]);
        let other = manifest(vec![entry("about.html", "about.html", "<html>")]);
        store.put(&manifest_path(&built.id()).unwrap(), Bytes::from(other.to_json())).await.unwrap();
        assert!(matches!(store.manifest(&built.id()).await, Err(StoreError::Manifest { .. })));
    }

    #[tokio::test]
    async fn promoting_keeps_the_replaced_build_within_the_grace_period_only() {
        let (_dir, store) = store();
        let hour = Duration::from_secs(3600);
        store.promote("sha256:a", 0, hour).await.unwrap();
        store.promote("sha256:b", 1_000, hour).await.unwrap();
        let current = store.promote("sha256:c", 4_000_000, hour).await.unwrap();
        assert_eq!(current.manifest, "sha256:c");
        let retired: Vec<&str> = current.retired.iter().map(|r| r.manifest.as_str()).collect();
        assert_eq!(retired, ["sha256:b"], "a, retired at 1 s, is past the hour at 4,000 s");
    }

    #[tokio::test]
    async fn a_missing_object_is_not_found() {
        let (_dir, store) = store();
        assert!(matches!(store.get("blobs/00").await, Err(StoreError::NotFound(_))));
        assert!(store.current().await.unwrap().is_none());
    }
}
