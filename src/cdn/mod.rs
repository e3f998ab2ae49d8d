//! The CDN library: what one build of a site produced ([`Manifest`]), where published builds
//! live ([`AssetStore`]), the origin that serves them to the edge ([`origin`]), what a deploy
//! must purge ([`purge_set`]) and the edge APIs that purge it ([`provider`]).

pub mod diff;
pub mod manifest;
pub mod origin;
pub mod provider;
pub mod publish;
pub mod purge;
pub mod settings;
pub mod store;

pub use diff::{PurgeSet, purge_set};
pub use manifest::{Manifest, ManifestEntry, ManifestError};
pub use settings::{AssetsSettings, OriginSettings};
pub use store::{AssetStore, StoreError, StoreSettings};
