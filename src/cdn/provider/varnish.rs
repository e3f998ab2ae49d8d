//! Varnish with vmod xkey, as `ops/varnish/frontier.vcl` configures it: `PURGE` with an
//! `xkey-purge` or `xkey-softpurge` header purges by surrogate key, a plain `PURGE` purges one
//! URL (every `Vary` variant; `X-Purge-Soft: 1` marks it stale instead), and `BAN` with
//! `X-Ban-Url` bans by URL regex, evaluated by the ban lurker. Each answers 200 with the number
//! of objects hit in `X-Purged`.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{Limits, ProviderError, PurgeAck, PurgeBatch, PurgeMethod, refused};

/// `[[workers.cdn_purger.targets]] provider = "varnish"`: a Varnish edge with the project's VCL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarnishSettings {
    /// Where the edge listens; purge requests go here, addressed to each URL's own host.
    #[serde(default = "default_edge")]
    pub edge: String,
    /// Surrogate keys per `xkey` request. xkey takes any number in one header; the limit
    /// only bounds one request's size.
    #[serde(default = "default_max_keys")]
    pub max_keys_per_request: usize,
    /// Deadline of one purge request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_edge() -> String {
    "http://127.0.0.1:6081".to_owned()
}
fn default_max_keys() -> usize {
    256
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Default for VarnishSettings {
    fn default() -> Self {
        VarnishSettings { edge: default_edge(), max_keys_per_request: default_max_keys(), timeout: default_timeout() }
    }
}

impl VarnishSettings {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        let url = Url::parse(&self.edge).map_err(|error| format!("edge `{}`: {error}", self.edge))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("edge `{}` is not an http(s) URL", self.edge));
        }
        if self.max_keys_per_request == 0 {
            return Err("max_keys_per_request must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// A Varnish edge the purger talks to.
#[derive(Debug, Clone)]
pub struct VarnishEdge {
    client: Client,
    edge: Url,
    settings: VarnishSettings,
}

impl VarnishEdge {
    /// An adapter for `settings` (validated first).
    pub fn new(client: Client, settings: &VarnishSettings) -> Result<VarnishEdge, String> {
        settings.validate()?;
        let edge = Url::parse(&settings.edge).map_err(|error| error.to_string())?;
        Ok(VarnishEdge { client, edge, settings: settings.clone() })
    }

    /// Where the edge listens.
    pub fn edge(&self) -> &Url {
        &self.edge
    }

    /// A local edge has no documented rate limit; the bucket only keeps a runaway purger from
    /// starving the edge's worker threads.
    pub fn limits(&self) -> Limits {
        Limits {
            max_urls: 1,
            max_keys: self.settings.max_keys_per_request,
            max_body_bytes: None,
            requests_per_second: 500.0,
            burst: 500,
            methods: vec![PurgeMethod::SurrogateKey, PurgeMethod::Url, PurgeMethod::Ban],
            soft_purge: true,
        }
    }

    /// Sends one purge request.
    pub async fn purge(&self, batch: &PurgeBatch) -> Result<PurgeAck, ProviderError> {
        let purge = Method::from_bytes(b"PURGE").map_err(|error| refused(error.to_string()))?;
        let request = match batch.method {
            PurgeMethod::SurrogateKey => {
                let header = if batch.soft { "xkey-softpurge" } else { "xkey-purge" };
                self.client.request(purge, self.edge.clone()).header(header, batch.items.join(" "))
            }
            PurgeMethod::Url => {
                let [url] = batch.items.as_slice() else {
                    return Err(refused(format!("a URL purge takes one URL, got {}", batch.items.len())));
                };
                let (target, host) = self.addressed(url)?;
                let request = self.client.request(purge, target).header(reqwest::header::HOST, host);
                if batch.soft { request.header("X-Purge-Soft", "1") } else { request }
            }
            PurgeMethod::Ban => {
                let [expression] = batch.items.as_slice() else {
                    return Err(refused(format!("a ban takes one expression, got {}", batch.items.len())));
                };
                let ban = Method::from_bytes(b"BAN").map_err(|error| refused(error.to_string()))?;
                self.client.request(ban, self.edge.clone()).header("X-Ban-Url", expression)
            }
        };
        let response =
            request.timeout(self.settings.timeout).send().await.map_err(|error| ProviderError::transport(&error))?;
        let status = response.status();
        let purged = response
            .headers()
            .get("X-Purged")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        let retry = super::retry_after(response.headers());
        if status == StatusCode::OK {
            return Ok(PurgeAck { http_status: status.as_u16(), purged, provider_id: None });
        }
        let body = response.text().await.unwrap_or_default();
        Err(ProviderError::from_status(status.as_u16(), retry, &body))
    }

    /// The edge URL to send a request for public `url` to, and the `Host` it is addressed to:
    /// the edge caches by the URL's own host, so a purge must name it.
    pub fn addressed(&self, url: &str) -> Result<(Url, String), ProviderError> {
        let public = Url::parse(url).map_err(|error| refused(format!("URL `{url}`: {error}")))?;
        let host = match (public.host_str(), public.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(refused(format!("URL `{url}` has no host"))),
        };
        let mut target = self.edge.clone();
        target.set_path(public.path());
        target.set_query(public.query());
        Ok((target, host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge() -> VarnishEdge {
        VarnishEdge::new(Client::new(), &VarnishSettings::default()).unwrap()
    }

    #[test]
    fn a_public_url_is_sent_to_the_edge_under_its_own_host() {
        let (target, host) = edge().addressed("https://assets.example.com/app/index.html?v=1").unwrap();
        assert_eq!(target.as_str(), "http://127.0.0.1:6081/app/index.html?v=1");
        assert_eq!(host, "assets.example.com");
    }

    #[test]
    fn an_edge_that_is_not_a_url_is_refused_at_start() {
        let settings = VarnishSettings { edge: "varnish:6081".into(), ..VarnishSettings::default() };
        assert!(VarnishEdge::new(Client::new(), &settings).is_err());
    }

    #[test]
    fn url_purges_and_bans_go_one_per_request() {
        assert_eq!(edge().limits().max_items(PurgeMethod::Url), 1);
        assert_eq!(edge().limits().max_items(PurgeMethod::SurrogateKey), 256);
    }
}
