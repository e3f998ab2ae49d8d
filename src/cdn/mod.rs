//! The CDN library: the asset pipeline that makes a build ([`build_site`]: minified,
//! content-hashed, precompressed, with its [`Manifest`]), where published builds live
//! ([`AssetStore`], [`publish`]), the origin that serves them to the edge ([`origin`]), what a
//! deploy must purge ([`purge_set`]), the edge APIs that purge it ([`provider`], [`purge`]) and
//! local contract servers of the SaaS APIs ([`contract`]).

pub mod build;
pub mod contract;
pub mod diff;
pub mod manifest;
pub mod origin;
pub mod provider;
pub mod publish;
pub mod purge;
pub mod settings;
pub mod store;

pub use build::{BuildError, BuildOptions, BuildReport, FileReport, Totals, build_site};
pub use diff::{PurgeSet, purge_set};
pub use manifest::{Manifest, ManifestEntry, ManifestError};
pub use settings::{AssetsSettings, OriginSettings};
pub use store::{AssetStore, StoreError, StoreKind, StoreSettings};
