//! The CDN library (issue 15, in progress): what one build of a site produced
//! ([`Manifest`]) and what a deploy must purge at the edge ([`purge_set`]). No I/O: the asset
//! build, the origin and the purger build on it.

pub mod diff;
pub mod manifest;
pub mod origin;
pub mod provider;
pub mod settings;
pub mod store;

pub use diff::{PurgeSet, purge_set};
pub use manifest::{Manifest, ManifestEntry, ManifestError};
