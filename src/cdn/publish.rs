//! Publishing a build to the asset store: upload what the store does not hold yet, then the
//! manifest, then make it live, in that order, so the origin never points at a file that is
//! not there. The `AssetChange` for the purger is returned, for the caller to send.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::manifest::{Manifest, ManifestEntry, ManifestError};
use super::store::{AssetStore, StoreError, suffix};
use crate::records::{AssetChange, ChangeType};

/// Where `frontier assets build` writes the manifest inside its output (Vite's place).
pub const MANIFEST_PATH: &str = ".vite/manifest.json";

/// Uploads at once.
const CONCURRENCY: usize = 8;

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The build's manifest could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid.
    #[error("{path}: {source}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ManifestError,
    },
    /// A file on disk is not the one the manifest describes (edited after the build).
    #[error("{path} does not match the manifest ({reason}); build again")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// How it differs.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a publish did.
#[derive(Debug, Clone)]
pub struct PublishReport {
    /// The manifest now live.
    pub manifest_id: String,
    /// The one it replaced.
    pub previous_manifest_id: Option<String>,
    /// Objects uploaded (files and variants) and their bytes.
    pub uploaded: (usize, u64),
    /// Objects the store already held.
    pub unchanged: usize,
    /// The change to send to the purger; `None` when the build was already live.
    pub change: Option<AssetChange>,
}

/// Publishes the build in `dir` (the output of `frontier assets build`) to `store`.
pub async fn publish_dir(
    store: &AssetStore,
    dir: &Path,
    public_url: &str,
    grace: Duration,
    now_ms: i64,
) -> Result<PublishReport, PublishError> {
    let manifest_file = dir.join(MANIFEST_PATH);
    let bytes =
        std::fs::read(&manifest_file).map_err(|source| PublishError::Read { path: manifest_file.clone(), source })?;
    let manifest =
        Manifest::from_json(&bytes).map_err(|source| PublishError::Manifest { path: manifest_file, source })?;

    let mut objects: Vec<(PathBuf, String)> = Vec::new();
    for entry in manifest.entries.values() {
        objects.extend(objects_of(dir, entry)?);
    }
    let uploads = objects.into_iter().map(|(path, key)| async move {
        if store.exists(&key).await? {
            return Ok::<_, PublishError>(None);
        }
        let bytes = std::fs::read(&path).map_err(|source| PublishError::Read { path: path.clone(), source })?;
        let size = bytes.len() as u64;
        store.put(&key, Bytes::from(bytes)).await?;
        Ok(Some(size))
    });
    let outcomes: Vec<Result<Option<u64>, PublishError>> =
        futures::stream::iter(uploads).buffer_unordered(CONCURRENCY).collect().await;
    let (mut uploaded, mut unchanged) = ((0, 0), 0);
    for outcome in outcomes {
        match outcome? {
            Some(size) => uploaded = (uploaded.0 + 1, uploaded.1 + size),
            None => unchanged += 1,
        }
    }

    let manifest_id = store.put_manifest(&manifest).await?;
    let previous_manifest_id = store.current().await?.map(|current| current.manifest);
    if previous_manifest_id.as_deref() == Some(manifest_id.as_str()) {
        return Ok(PublishReport { manifest_id, previous_manifest_id, uploaded, unchanged, change: None });
    }
    store.promote(&manifest_id, now_ms, grace).await?;
    let change = AssetChange {
        id: uuid::Uuid::new_v4().to_string(),
        asset_path: "/".to_owned(),
        asset_url: Some(public_url.to_owned()),
        change: if previous_manifest_id.is_some() { ChangeType::Updated } else { ChangeType::Created },
        content_hash: Some(manifest_id.clone()),
        surrogate_keys: Vec::new(),
        manifest_id: Some(manifest_id.clone()),
        previous_manifest_id: previous_manifest_id.clone(),
        changed_at: now_ms,
    };
    Ok(PublishReport { manifest_id, previous_manifest_id, uploaded, unchanged, change: Some(change) })
}

/// The file and its variants on disk, checked against the entry, with their store keys.
fn objects_of(dir: &Path, entry: &ManifestEntry) -> Result<Vec<(PathBuf, String)>, PublishError> {
    let path = dir.join(&entry.file);
    let bytes = std::fs::read(&path).map_err(|source| PublishError::Read { path: path.clone(), source })?;
    let hash = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    if hash != entry.hash || bytes.len() as u64 != entry.size {
        return Err(PublishError::Mismatch {
            path,
            reason: format!("its hash is {hash}, the manifest says {}", entry.hash),
        });
    }
    let mut objects = vec![(path.clone(), AssetStore::blob_path(&entry.hash, None))];
    for (encoding, size) in &entry.encodings {
        let Some(suffix) = suffix(encoding) else {
            return Err(PublishError::Mismatch { path, reason: format!("unknown encoding `{encoding}`") });
        };
        let variant = dir.join(format!("{}.{suffix}", entry.file));
        let on_disk =
            std::fs::metadata(&variant).map_err(|source| PublishError::Read { path: variant.clone(), source })?;
        if on_disk.len() != *size {
            return Err(PublishError::Mismatch {
                path: variant,
                reason: format!("{} bytes, the manifest says {size}", on_disk.len()),
            });
        }
        objects.push((variant, AssetStore::blob_path(&entry.hash, Some(encoding))));
    }
    Ok(objects)
}
