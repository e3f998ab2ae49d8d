//! The CDN library (issue 15, in progress): what one build of a site produced
//! ([`Manifest`]), the asset pipeline that makes a build ([`build_site`]: minified, content-hashed,
//! precompressed) and what a deploy must purge at the edge ([`purge_set`]). Only the build does
//! I/O; the origin and the purger build on the manifest.

pub mod build;
pub mod diff;
pub mod manifest;

pub use build::{BuildError, BuildOptions, BuildReport, FileReport, Totals, build_site};
pub use diff::{PurgeSet, purge_set};
pub use manifest::{Manifest, ManifestEntry, ManifestError};
