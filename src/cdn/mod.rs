//! The CDN library (issue 15, in progress): what one build of a site produced
//! ([`Manifest`]) and what a deploy must purge at the edge ([`purge_set`]), the CDN providers'
//! purge adapters ([`provider`]) and local contract servers for their APIs ([`contract`]). The
//! asset build, the origin and the purger build on it.

pub mod contract;
pub mod diff;
pub mod manifest;
pub mod provider;

pub use diff::{PurgeSet, purge_set};
pub use manifest::{Manifest, ManifestEntry, ManifestError};
