//! The autoscaler: sizes the other workers' consumer groups from their lag, rates and resource
//! use ([`crate::autoscale`]'s policy) and starts and stops their instances.
//!
//! `frontier run autoscaler` runs one controller (it is meant to run once per set of groups:
//! two would both act). It consumes the workers' status reports (`bus.status_topic`) for CPU
//! and memory; every `interval` it samples each sized group from the brokers, decides, sends
//! the decision to `decisions_topic` and applies it with its [`Actuator`]: local processes
//! ([`LocalProcesses`]) or a Kubernetes Deployment per worker ([`KubernetesDeployments`],
//! `ops/k8s/`). On shutdown the instances keep running; the next controller adopts them.
//! `frontier autoscale status` shows what it runs and decided; `frontier autoscale plan` what
//! it would decide now, changing nothing.

mod actuator;
pub mod kubernetes;
pub mod local;
mod metric;
pub mod plan;
mod settings;
pub mod status;
mod worker;

use std::sync::Arc;

use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;

pub use actuator::{Actuator, ActuatorError};
pub use kubernetes::{KubernetesDeployments, Replicas};
pub use local::{Crash, InstanceRecord, LocalProcesses};
pub use plan::{GroupPlan, Planned, plan};
pub use settings::{ActuatorKind, AutoscalerSettings, KubernetesActuatorSettings, LocalActuatorSettings};
pub use status::{GroupStatus, status};
pub use worker::Autoscaler;

use super::{Shared, WorkerGroup};
use crate::autoscale::LagSampler;
use crate::bus::{BusError, ConsumerLoop, LoopOptions, LoopReport, SchemaCatalog};

/// Why the autoscaler could not run.
#[derive(Debug, thiserror::Error)]
pub enum AutoscalerError {
    /// The lag sampler's Kafka clients could not be created.
    #[error("creating the lag sampler: {0}")]
    Sampler(#[from] KafkaError),
    /// The actuator cannot start: an unusable state folder, no cluster configuration.
    #[error("the actuator: {0}")]
    Actuator(#[from] ActuatorError),
    /// The path of this program (which the instances run) is unknown.
    #[error("finding the frontier program the instances run: {0}")]
    Program(std::io::Error),
    /// The consumer loop failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// `frontier run autoscaler`: sizes `groups` (those with a policy in `settings`) until
/// `shutdown`, starting instances of this same program.
pub async fn run(
    shared: &Shared,
    settings: &AutoscalerSettings,
    groups: Vec<WorkerGroup>,
    catalog: Arc<SchemaCatalog>,
    shutdown: CancellationToken,
) -> Result<LoopReport, AutoscalerError> {
    let sampler = LagSampler::new(&shared.kafka, settings.sample_timeout)?;
    let actuator = Arc::new(match settings.actuator {
        ActuatorKind::Local => {
            let program = std::env::current_exe().map_err(AutoscalerError::Program)?;
            Actuator::Local(Arc::new(LocalProcesses::open(&settings.local, program, Vec::new())?))
        }
        ActuatorKind::Kubernetes => {
            Actuator::Kubernetes(Box::new(KubernetesDeployments::connect(&settings.kubernetes).await?))
        }
    });
    let worker = Arc::new(Autoscaler::new(settings, groups, sampler, actuator, catalog.clone()));
    let options = LoopOptions::new(&shared.bus, shared.group_id(settings), vec![shared.bus.status_topic.clone()]);
    Ok(ConsumerLoop::new(&shared.kafka, options, worker, catalog)?.run(shutdown).await?)
}
