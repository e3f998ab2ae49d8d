//! Batch settings changed while running: every batcher follows `frontier.control.batching`
//! (written by the gateway's `PUT /v1/admin/batching/{model}`, operator role, audited) and
//! applies each model's newest [`BatchingOverride`] over its configured settings. A tombstone
//! returns the model to its configuration. Every instance converges on the same settings, and
//! a restarted one reads them back before its first job.

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics::counter;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::bus::SchemaCatalog;
use crate::bus::compacted::Snapshot;
use crate::inference::batcher::{BatchingSettings, InferenceBatcher};
use crate::records::BatchingOverride;

/// Overrides a batcher could not apply (undecodable, or invalid over its configuration).
pub const OVERRIDES_REFUSED: &str = "frontier_inference_batching_overrides_refused_total";

/// Applies the overrides in `snapshots` to `batcher` now and at every change, until `shutdown`.
/// `configured` holds each model's settings from the configuration.
pub async fn follow(
    batcher: Arc<InferenceBatcher>,
    configured: BTreeMap<String, BatchingSettings>,
    catalog: Arc<SchemaCatalog>,
    mut snapshots: watch::Receiver<Snapshot>,
    shutdown: CancellationToken,
) {
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        apply(&batcher, &configured, &catalog, &snapshot);
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
    }
}

/// Sets every model's settings to its configuration with its override (if any) on top.
pub fn apply(
    batcher: &InferenceBatcher,
    configured: &BTreeMap<String, BatchingSettings>,
    catalog: &SchemaCatalog,
    snapshot: &Snapshot,
) {
    for (model, base) in configured {
        let wanted = match snapshot.get(model) {
            None => base.clone(),
            Some(value) => match effective(base, catalog, value) {
                Ok((settings, by)) => {
                    if batcher.settings(model).as_ref() != Some(&settings) {
                        tracing::info!(%model, changed_by = by, ?settings, "batch settings overridden");
                    }
                    settings
                }
                Err(reason) => {
                    // The model keeps what it has: a bad override must not undo a good one.
                    tracing::error!(%model, %reason, "batch settings override refused");
                    counter!(OVERRIDES_REFUSED).increment(1);
                    continue;
                }
            },
        };
        if batcher.settings(model).as_ref() == Some(&wanted) {
            continue;
        }
        if let Err(error) = batcher.update_settings(model, wanted) {
            tracing::error!(%model, %error, "batch settings not applied");
            counter!(OVERRIDES_REFUSED).increment(1);
        }
    }
    for model in snapshot.keys().filter(|model| !configured.contains_key(*model)) {
        tracing::debug!(%model, "an override for a model this instance does not serve");
    }
}

/// `base` with the override in `value` on top, and who made it.
fn effective(
    base: &BatchingSettings,
    catalog: &SchemaCatalog,
    value: &[u8],
) -> Result<(BatchingSettings, String), String> {
    let record: BatchingOverride = catalog.decode_record(value).map_err(|error| error.to_string())?;
    let patch: serde_json::Value =
        serde_json::from_str(&record.settings).map_err(|error| format!("settings are not JSON: {error}"))?;
    let settings = base.patched(&patch).map_err(|error| error.to_string())?;
    Ok((settings, record.changed_by))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::workers::inference_batcher::admin::tests::batcher;

    fn catalog() -> SchemaCatalog {
        SchemaCatalog::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")).unwrap()
    }

    fn configured() -> BTreeMap<String, BatchingSettings> {
        BTreeMap::from([("m".to_owned(), BatchingSettings::default())])
    }

    /// A snapshot holding, for model `m`, an override of `settings`.
    fn overriding(catalog: &SchemaCatalog, settings: serde_json::Value) -> Snapshot {
        let record = BatchingOverride {
            model: "m".into(),
            settings: settings.to_string(),
            changed_by: "key:0123456789ab".into(),
            changed_at: 1,
            audit_id: "a".into(),
        };
        Arc::new(BTreeMap::from([("m".to_owned(), catalog.encode_record(&record).unwrap())]))
    }

    #[tokio::test]
    async fn an_override_changes_the_fields_it_names_over_the_configuration() {
        let (batcher, catalog) = (batcher(), catalog());
        apply(&batcher, &configured(), &catalog, &overriding(&catalog, json!({"max_queue_delay": "25ms"})));
        let settings = batcher.settings("m").unwrap();
        assert_eq!(settings.max_queue_delay, std::time::Duration::from_millis(25));
        assert_eq!(settings.max_batch_size, BatchingSettings::default().max_batch_size);
    }

    #[tokio::test]
    async fn a_removed_override_returns_the_model_to_its_configuration() {
        let (batcher, catalog) = (batcher(), catalog());
        apply(&batcher, &configured(), &catalog, &overriding(&catalog, json!({"adaptive": false})));
        assert!(!batcher.settings("m").unwrap().adaptive);
        apply(&batcher, &configured(), &catalog, &Snapshot::default());
        assert_eq!(batcher.settings("m").unwrap(), BatchingSettings::default());
    }

    #[tokio::test]
    async fn an_invalid_override_keeps_the_settings_in_force() {
        let (batcher, catalog) = (batcher(), catalog());
        apply(&batcher, &configured(), &catalog, &overriding(&catalog, json!({"aging_interval": "2s"})));
        let before = batcher.settings("m").unwrap();
        apply(&batcher, &configured(), &catalog, &overriding(&catalog, json!({"max_batch_size": 0})));
        assert_eq!(batcher.settings("m").unwrap(), before);
        let garbage = Arc::new(BTreeMap::from([("m".to_owned(), b"not avro".to_vec())]));
        apply(&batcher, &configured(), &catalog, &garbage);
        assert_eq!(batcher.settings("m").unwrap(), before);
    }
}
