//! `CdnPurger`: one `AssetChange` in, its purge at every target, results and alerts out.
//!
//! Per target, each batch is remembered in Redis once the provider acknowledged it, so a
//! redelivered change (or a retry after one target failed) sends only what was not purged
//! yet. A target that stays unavailable or rate-limited through the retries makes the change
//! transient: the bus retries it, committing nothing. A target that refuses (bad credentials,
//! a request over its limits) gets an error result and the change moves on: resending cannot
//! help, and the result and its metric say what to fix.

use std::collections::BTreeMap;
use std::sync::Arc;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::edge::{Stale, rewarm_and_verify};
use super::metric;
use super::plan::{Plan, plan};
use super::settings::CdnPurgerSettings;
use crate::bus::{HandlerError, Inbound, Outbound, SchemaCatalog, Worker};
use crate::cdn::purge::{BatchOutcome, Target};
use crate::cdn::{AssetStore, AssetsSettings};
use crate::clock;
use crate::records::{Alert, AlertStatus, AssetChange, PurgeMethod, PurgeResult, PurgeStatus, Severity};
use crate::workers::WorkerConfig;

/// The CDN purger.
pub struct CdnPurger {
    settings: CdnPurgerSettings,
    assets: AssetsSettings,
    store: AssetStore,
    targets: Vec<Target>,
    redis: ConnectionManager,
    http: reqwest::Client,
    catalog: Arc<SchemaCatalog>,
    shutdown: CancellationToken,
}

impl CdnPurger {
    /// A purger over its parts (built by `run`, or by a test).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: CdnPurgerSettings,
        assets: AssetsSettings,
        store: AssetStore,
        targets: Vec<Target>,
        redis: ConnectionManager,
        http: reqwest::Client,
        catalog: Arc<SchemaCatalog>,
        shutdown: CancellationToken,
    ) -> CdnPurger {
        for target in &targets {
            metric::register(&target.name);
        }
        CdnPurger { settings, assets, store, targets, redis, http, catalog, shutdown }
    }

    /// Purges `items` by `method` at `target`, batch by batch; the result, and whether a
    /// batch failed in a way a later try may fix.
    async fn purge(
        &self,
        change: &AssetChange,
        target: &Target,
        method: PurgeMethod,
        items: &[String],
    ) -> Result<(PurgeResult, bool), HandlerError> {
        let mut outcomes: Vec<BatchOutcome> = Vec::new();
        let mut remembered = 0;
        for batch in target.batches(method, items) {
            let key = remember_key(&change.id, &target.name, &batch.method, &batch.items);
            if self.remembered(&key).await? {
                remembered += 1;
                continue;
            }
            let outcome = target.send(batch, &self.settings.retry, &self.shutdown).await;
            let label = match &outcome.result {
                Ok(_) => "ok",
                Err(error) if error.is_retryable() => "failed",
                Err(_) => "refused",
            };
            metrics::counter!(metric::REQUESTS, "target" => target.name.clone(), "outcome" => label)
                .increment(u64::from(outcome.attempts));
            metrics::histogram!(metric::LATENCY, "target" => target.name.clone()).record(outcome.latency.as_secs_f64());
            if let Ok(ack) = &outcome.result {
                self.remember(&key).await?;
                metrics::counter!(metric::OBJECTS, "target" => target.name.clone()).increment(ack.purged.unwrap_or(0));
            } else if let Err(error) = &outcome.result {
                tracing::warn!(change = %change.id, target = %target.name, ?method, %error, "purge failed");
            }
            outcomes.push(outcome);
        }
        Ok(summarize(change, target, method, items, &outcomes, remembered))
    }

    async fn remembered(&self, key: &str) -> Result<bool, HandlerError> {
        let mut redis = self.redis.clone();
        redis.exists(key).await.map_err(|error| HandlerError::transient("redis", error.to_string()))
    }

    async fn remember(&self, key: &str) -> Result<(), HandlerError> {
        let mut redis = self.redis.clone();
        let seconds = self.settings.remember.as_secs().max(1);
        redis
            .set_ex::<_, _, ()>(key, 1, seconds)
            .await
            .map_err(|error| HandlerError::transient("redis", error.to_string()))
    }

    fn result_output(&self, result: &PurgeResult) -> Result<Outbound, HandlerError> {
        let payload = self.catalog.encode_record(result).map_err(|e| HandlerError::fatal("encode", e.to_string()))?;
        Ok(Outbound::new(self.settings.results_topic.as_str(), Some(result.change_id.clone().into_bytes()), payload))
    }

    fn alert_output(&self, change: &AssetChange, stale: &[Stale]) -> Result<Outbound, HandlerError> {
        let now = clock::now_millis();
        let labels: BTreeMap<String, String> = [("service", "cdn-purger"), ("kind", "stale_after_purge")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let urls: Vec<&str> = stale.iter().map(|s| s.url.as_str()).collect();
        let alert = Alert {
            fingerprint: crate::sla::fingerprint(ALERT, &labels),
            name: ALERT.to_owned(),
            severity: Severity::Warning,
            status: AlertStatus::Firing,
            labels,
            observed_value: stale.len() as f64,
            threshold: 0.0,
            window: String::new(),
            started_at: now,
            ended_at: None,
            summary: format!(
                "after purging change {} the edge still serves old content for {} URL(s): {} (expected {}, got {})",
                change.id,
                stale.len(),
                urls.join(", "),
                stale[0].expected,
                stale[0].served
            ),
            runbook_url: None,
            exemplars: vec![change.id.clone()],
            sent_at: now,
        };
        let payload = self.catalog.encode_record(&alert).map_err(|e| HandlerError::fatal("encode", e.to_string()))?;
        Ok(Outbound::new(self.settings.alerts_topic.as_str(), Some(alert.fingerprint.into_bytes()), payload))
    }

    async fn handle_change(&self, change: &AssetChange) -> Result<Vec<Outbound>, HandlerError> {
        let plan: Plan = plan(change, &self.store, &self.assets).await?;
        let mut results = Vec::new();
        let mut unavailable = Vec::new();
        for target in &self.targets {
            let by_keys = target.supports(PurgeMethod::SurrogateKey) && !plan.keys.is_empty();
            let mut work: Vec<(PurgeMethod, &[String])> = Vec::new();
            if by_keys {
                work.push((PurgeMethod::SurrogateKey, &plan.keys));
            }
            let urls = if by_keys { &plan.uncovered_urls } else { &plan.urls };
            if !urls.is_empty() && target.supports(PurgeMethod::Url) {
                work.push((PurgeMethod::Url, urls));
            }
            if work.is_empty() {
                results.push(skipped(change, target, PurgeMethod::Url, "nothing to purge"));
            }
            for (method, items) in work {
                let (result, retry) = self.purge(change, target, method, items).await?;
                if retry {
                    unavailable.push(format!("{}: {}", target.name, result.error.clone().unwrap_or_default()));
                }
                results.push(result);
            }
        }
        if !unavailable.is_empty() {
            // The batches that went through are remembered; the retry sends the rest.
            return Err(HandlerError::transient("provider_unavailable", unavailable.join("; ")));
        }
        let purged_now = results.iter().any(|result| result.status == PurgeStatus::Ok && result.attempts > 0);
        let mut outputs = results.iter().map(|result| self.result_output(result)).collect::<Result<Vec<_>, _>>()?;
        if purged_now && self.settings.rewarm_max > 0 && !plan.expected.is_empty() {
            let files = &plan.expected[..plan.expected.len().min(self.settings.rewarm_max)];
            let stale = rewarm_and_verify(
                &self.http,
                files,
                self.settings.verify_attempts,
                self.settings.fetch_timeout,
                self.settings.verify,
            )
            .await;
            metrics::counter!(metric::REWARMED).increment(files.len() as u64);
            if !stale.is_empty() {
                metrics::counter!(metric::STALE).increment(stale.len() as u64);
                tracing::error!(change = %change.id, ?stale, "the edge still serves old content after the purge");
                outputs.push(self.alert_output(change, &stale)?);
            }
        }
        Ok(outputs)
    }
}

/// Name of the alert raised when the edge still serves old content after a purge.
pub const ALERT: &str = "CdnStaleAfterPurge";

impl Worker for CdnPurger {
    fn name(&self) -> &'static str {
        super::CdnPurgerSettings::NAME
    }

    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        let change: AssetChange = message.record()?;
        if change.id.trim().is_empty() {
            return Err(HandlerError::rejected("invalid_change", "the change has no id, so it cannot be purged once"));
        }
        self.handle_change(&change).await
    }
}

/// The Redis key remembering one acknowledged batch of one change at one target.
fn remember_key(change: &str, target: &str, method: &PurgeMethod, items: &[String]) -> String {
    let mut digest = Sha256::new();
    digest.update(format!("{method:?}").as_bytes());
    for item in items {
        digest.update((item.len() as u64).to_be_bytes());
        digest.update(item.as_bytes());
    }
    let hash = hex::encode(&digest.finalize()[..12]);
    let change_hash = hex::encode(&Sha256::digest(change.as_bytes())[..12]);
    format!("frontier:cdn:purged:{change_hash}:{target}:{hash}")
}

fn skipped(change: &AssetChange, target: &Target, method: PurgeMethod, why: &str) -> PurgeResult {
    tracing::debug!(change = %change.id, target = %target.name, why, "skipped");
    PurgeResult {
        change_id: change.id.clone(),
        target: target.name.clone(),
        method,
        keys: Vec::new(),
        status: PurgeStatus::Skipped,
        http_status: None,
        error: None,
        attempts: 0,
        latency_ms: 0.0,
        purged_at: clock::now_millis(),
    }
}

/// One result for a target and method from its batches' outcomes, and whether a failure may
/// be fixed by trying again.
fn summarize(
    change: &AssetChange,
    target: &Target,
    method: PurgeMethod,
    items: &[String],
    outcomes: &[BatchOutcome],
    remembered: usize,
) -> (PurgeResult, bool) {
    if outcomes.is_empty() {
        let why = if remembered > 0 { "already purged for this change" } else { "nothing to purge" };
        return (skipped(change, target, method, why), false);
    }
    let failed: Vec<&BatchOutcome> = outcomes.iter().filter(|outcome| outcome.result.is_err()).collect();
    let retry = failed.iter().any(|outcome| outcome.result.as_ref().is_err_and(|error| error.is_retryable()));
    let last = outcomes.last();
    let http_status = last.and_then(|outcome| match &outcome.result {
        Ok(ack) => Some(i32::from(ack.http_status)),
        Err(error) => error.http_status().map(i32::from),
    });
    let error = failed
        .first()
        .and_then(|outcome| outcome.result.as_ref().err())
        .map(|error| format!("{} of {} request(s) failed; first: {error}", failed.len(), outcomes.len()));
    let result = PurgeResult {
        change_id: change.id.clone(),
        target: target.name.clone(),
        method,
        keys: items.to_vec(),
        status: if failed.is_empty() { PurgeStatus::Ok } else { PurgeStatus::Error },
        http_status,
        error,
        attempts: i32::try_from(outcomes.iter().map(|outcome| outcome.attempts).sum::<u32>()).unwrap_or(i32::MAX),
        latency_ms: outcomes.iter().map(|outcome| outcome.latency.as_secs_f64() * 1000.0).fold(0.0, f64::max),
        purged_at: clock::now_millis(),
    };
    (result, retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remembered_key_differs_per_change_target_and_batch() {
        let items = vec!["f:index.html".to_owned()];
        let a = remember_key("c1", "edge", &PurgeMethod::SurrogateKey, &items);
        assert_ne!(a, remember_key("c2", "edge", &PurgeMethod::SurrogateKey, &items));
        assert_ne!(a, remember_key("c1", "fastly", &PurgeMethod::SurrogateKey, &items));
        assert_ne!(a, remember_key("c1", "edge", &PurgeMethod::Url, &items));
        assert_eq!(a, remember_key("c1", "edge", &PurgeMethod::SurrogateKey, &items));
    }
}
