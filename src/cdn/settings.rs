//! `[assets]`: where published sites are stored, the site's public address, and the origin
//! that serves them to the edge. Shared by `frontier assets publish`, `frontier run
//! asset-origin` and the CDN purger.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::store::{StoreKind, StoreSettings};
use crate::config::InvalidSetting;

/// `[assets]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssetsSettings {
    /// Where published sites are kept (`[assets.store]`, `kind = "file"` or `"s3"`).
    pub store: StoreSettings,
    /// The site's address as users load it, through the edge: the purger builds the URLs it
    /// purges, re-warms and verifies from it.
    pub public_url: String,
    /// How long the files of a replaced build stay servable, for pages still open in
    /// browsers that load them later.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// The origin server.
    pub origin: OriginSettings,
}

impl Default for AssetsSettings {
    fn default() -> Self {
        AssetsSettings {
            store: StoreSettings::default(),
            public_url: "http://127.0.0.1:6081".to_owned(),
            grace: Duration::from_secs(7 * 24 * 3600),
            origin: OriginSettings::default(),
        }
    }
}

/// `[assets.origin]`: `frontier run asset-origin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginSettings {
    /// Where it listens (the edge's backend; `ops/varnish/frontier.vcl` expects 8088).
    pub listen: SocketAddr,
    /// Browser lifetime of entry points (`max-age`): short, since their content changes
    /// under the same URL.
    #[serde(with = "humantime_serde")]
    pub entry_max_age: Duration,
    /// How long an entry point past its lifetime may still be used while it is revalidated
    /// (`stale-while-revalidate`; Varnish takes it as the object's grace).
    #[serde(with = "humantime_serde")]
    pub entry_stale_while_revalidate: Duration,
    /// Edge lifetime of entry points (`s-maxage`): long, since every deploy purges what
    /// changed.
    #[serde(with = "humantime_serde")]
    pub edge_max_age: Duration,
    /// Lifetime of a 404, short so a file published later is found soon even unpurged.
    #[serde(with = "humantime_serde")]
    pub not_found_max_age: Duration,
    /// Bytes of file content kept in memory (content-addressed, so never stale).
    pub memory_bytes: u64,
}

impl Default for OriginSettings {
    fn default() -> Self {
        OriginSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            entry_max_age: Duration::from_secs(60),
            entry_stale_while_revalidate: Duration::from_secs(600),
            edge_max_age: Duration::from_secs(86_400),
            not_found_max_age: Duration::from_secs(10),
            memory_bytes: 64 * 1024 * 1024,
        }
    }
}

impl AssetsSettings {
    /// Checks what serde cannot; keys are relative to `[assets]`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let url = reqwest::Url::parse(&self.public_url)
            .map_err(|error| InvalidSetting::new("public_url", format!("`{}`: {error}", self.public_url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(InvalidSetting::new("public_url", format!("`{}` is not an http(s) URL", self.public_url)));
        }
        if self.store.kind == StoreKind::S3 && self.store.bucket.is_empty() {
            return Err(InvalidSetting::new("store.bucket", "must name a bucket"));
        }
        Ok(())
    }

    /// The public URL of a file of the site (`file` without its leading slash).
    pub fn url_of(&self, file: &str) -> String {
        format!("{}/{}", self.public_url.trim_end_matches('/'), file.trim_start_matches('/'))
    }
}
