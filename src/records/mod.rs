//! One Rust type per Avro record of `schemas/`, shared by every producer and consumer of it.
//!
//! Each type is field for field its schema (serde names are the Avro field names, enums the
//! symbols), implements [`Record`], and is checked against its `.avsc` by this module's tests: a
//! field added to a schema and not to its type, or the other way round, fails them. Workers
//! read with [`crate::bus::Inbound::record`] and write with [`crate::bus::SchemaCatalog::encode_record`].

mod alert;
mod assets;
mod audit;
mod autoscale;
mod cache_heat;
mod cache_invalidation;
mod common;
mod control;
mod inference;
mod query;
mod request;
mod request_completed;
mod response;
mod slo_counters;
mod slow_query;
mod worker_status;

#[cfg(test)]
mod tests;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use alert::{Alert, AlertStatus, Severity};
pub use assets::{AssetChange, ChangeType, IndexAction, IndexRecommendation, PurgeMethod, PurgeResult, PurgeStatus};
pub use audit::{AuditEvent, AuditOutcome};
pub use autoscale::{AutoscaleDecision, PartitionHealth, ScaleAction};
pub use cache_heat::{CacheHeat, KeyCount};
pub use cache_invalidation::CacheInvalidation;
pub use common::{CacheLayer, Priority, RequestStatus};
pub use control::BatchingOverride;
pub use inference::{Classification, InferenceJob, InferenceResult, JobStatus, Task};
pub use query::{QueryEvent, QueryStatus};
pub use request::{AnalysisRequest, ParamValue};
pub use request_completed::RequestCompleted;
pub use response::{AnalysisResponse, ErrorDetail};
pub use slo_counters::{MinuteCount, SloCounters, SloMinuteCounts};
pub use slow_query::{SlowQueryFinding, SlowQueryKind};
pub use worker_status::WorkerStatus;

/// A Rust type that is exactly one Avro record of `schemas/`.
pub trait Record: Serialize + DeserializeOwned {
    /// The record's full name, e.g. `frontier.serving.AnalysisRequest`.
    const NAME: &'static str;
    /// Its schema file under `schemas/`, e.g. `request.avsc`.
    const SCHEMA_FILE: &'static str;
}

macro_rules! record {
    ($type:ty, $name:literal, $file:literal) => {
        impl Record for $type {
            const NAME: &'static str = $name;
            const SCHEMA_FILE: &'static str = $file;
        }
    };
}

record!(Alert, "frontier.sla.Alert", "alert.avsc");
record!(AuditEvent, "frontier.audit.AuditEvent", "audit_event.avsc");
record!(AssetChange, "frontier.cdn.AssetChange", "asset_change.avsc");
record!(BatchingOverride, "frontier.control.BatchingOverride", "batching_override.avsc");
record!(AutoscaleDecision, "frontier.autoscale.ScaleDecision", "autoscale_decision.avsc");
record!(CacheHeat, "frontier.cache.CacheHeat", "cache_heat.avsc");
record!(CacheInvalidation, "frontier.cache.Invalidation", "cache_invalidation.avsc");
record!(PurgeResult, "frontier.cdn.PurgeResult", "cdn_purge_result.avsc");
record!(QueryEvent, "frontier.db.QueryEvent", "db_query_event.avsc");
record!(IndexRecommendation, "frontier.db.IndexRecommendation", "index_recommendation.avsc");
record!(InferenceJob, "frontier.inference.InferenceJob", "inference_job.avsc");
record!(InferenceResult, "frontier.inference.InferenceResult", "inference_result.avsc");
record!(AnalysisRequest, "frontier.serving.AnalysisRequest", "request.avsc");
record!(RequestCompleted, "frontier.sla.RequestCompleted", "request_completed.avsc");
record!(AnalysisResponse, "frontier.serving.AnalysisResponse", "response.avsc");
record!(SloCounters, "frontier.sla.SloCounters", "slo_counters.avsc");
record!(SlowQueryFinding, "frontier.db.SlowQueryFinding", "slow_query_finding.avsc");
record!(WorkerStatus, "frontier.sla.WorkerStatus", "worker_status.avsc");
