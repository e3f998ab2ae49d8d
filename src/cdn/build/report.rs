//! What a build did, file by file and in total, for the command line's table and `--json`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::Node;
use super::compress::Variants;
use crate::cdn::manifest::Manifest;

/// What one file became.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// Source path (the manifest key).
    pub src: String,
    /// Built path.
    pub file: String,
    /// Bytes of the source.
    pub source_bytes: u64,
    /// Bytes as built (minified), identity encoding.
    pub built_bytes: u64,
    /// Bytes of each variant kept (absent: none smaller than the file, or not text).
    pub br: Option<u64>,
    /// See `br`.
    pub zstd: Option<u64>,
    /// See `br`.
    pub gzip: Option<u64>,
}

impl FileReport {
    /// The smallest of the file and its variants: what the best-equipped client downloads.
    pub fn best_bytes(&self) -> u64 {
        [self.br, self.zstd, self.gzip].into_iter().flatten().fold(self.built_bytes, u64::min)
    }
}

/// Totals over a build, where each encoding's figure is what a client accepting only that
/// encoding downloads: the variant where one was kept, the file otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Files built.
    pub files: usize,
    /// Bytes of the sources.
    pub source_bytes: u64,
    /// Bytes as built (minified, identity).
    pub built_bytes: u64,
    /// Downloaded with brotli.
    pub br_bytes: u64,
    /// Downloaded with zstd.
    pub zstd_bytes: u64,
    /// Downloaded with gzip.
    pub gzip_bytes: u64,
    /// Downloaded with the best encoding per file.
    pub best_bytes: u64,
}

/// What a build did.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// Every file, by source path.
    pub files: Vec<FileReport>,
    /// Sums over `files`.
    pub totals: Totals,
    /// The manifest's id ([`Manifest::id`]).
    pub manifest_id: String,
    /// Where the manifest was written.
    pub manifest_path: PathBuf,
    /// Wall-clock time of the build, in milliseconds.
    pub elapsed_ms: u64,
}

/// The report of a finished build: `nodes` as built, with their kept `variants`.
pub(crate) fn report(
    nodes: &[Node],
    variants: &[Variants],
    manifest: &Manifest,
    manifest_path: PathBuf,
    elapsed: Duration,
) -> BuildReport {
    let files: Vec<FileReport> = nodes
        .iter()
        .zip(variants)
        .map(|(node, variants)| {
            let size = |name: &str| variants.kept.iter().find(|(n, _, _)| *n == name).map(|(_, _, b)| b.len() as u64);
            FileReport {
                src: node.rel.clone(),
                file: node.file.clone(),
                source_bytes: node.source.len() as u64,
                built_bytes: node.built.len() as u64,
                br: size("br"),
                zstd: size("zstd"),
                gzip: size("gzip"),
            }
        })
        .collect();
    let totals = files.iter().fold(Totals::default(), |mut totals, file| {
        totals.files += 1;
        totals.source_bytes += file.source_bytes;
        totals.built_bytes += file.built_bytes;
        totals.br_bytes += file.br.unwrap_or(file.built_bytes);
        totals.zstd_bytes += file.zstd.unwrap_or(file.built_bytes);
        totals.gzip_bytes += file.gzip.unwrap_or(file.built_bytes);
        totals.best_bytes += file.best_bytes();
        totals
    });
    BuildReport {
        files,
        totals,
        manifest_id: manifest.id(),
        manifest_path,
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    }
}
