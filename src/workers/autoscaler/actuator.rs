//! `Actuator`: what turns the controller's targets into running instances, chosen by
//! `[workers.autoscaler] actuator`. Both keep the same contract: `running` is what the group is
//! asked to run now, `scale` brings it to a target, `reap` reports instances that ended without
//! being asked to (Kubernetes restarts its own, so it reports none).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::kubernetes::KubernetesDeployments;
use super::local::{Crash, LocalProcesses};

/// Why an actuator failed.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    /// A file of the state folder could not be read or written.
    #[error("{action} {path}: {source}")]
    State {
        /// What was done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The worker process could not be started.
    #[error("starting `frontier run {worker}`: {source}")]
    Spawn {
        /// The worker.
        worker: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No client configuration was found or it is unusable.
    #[error("Kubernetes client configuration (KUBECONFIG, ~/.kube/config or the pod's ServiceAccount): {0}")]
    KubeConfig(#[source] kube::Error),
    /// The worker's Deployment does not exist.
    #[error(
        "no Deployment {namespace}/{deployment} for worker {worker} (apply ops/k8s/, or set kubernetes.deployment_prefix)"
    )]
    NoDeployment {
        /// The worker.
        worker: String,
        /// Its namespace.
        namespace: String,
        /// The Deployment looked for.
        deployment: String,
    },
    /// RBAC refused the request.
    #[error(
        "forbidden to {action} {namespace}/{deployment}'s scale: {message} (the controller's ServiceAccount needs ops/k8s/autoscaler.yaml's Role)"
    )]
    Forbidden {
        /// `read` or `patch`.
        action: &'static str,
        /// The namespace.
        namespace: String,
        /// The Deployment.
        deployment: String,
        /// The API server's words.
        message: String,
    },
    /// Any other failure of a request to the API server.
    #[error("{action} {namespace}/{deployment}'s scale: {source}")]
    Kubernetes {
        /// `read` or `patch`.
        action: &'static str,
        /// The namespace.
        namespace: String,
        /// The Deployment.
        deployment: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer within `kubernetes.request_timeout`.
    #[error("{action} {namespace}/{deployment}'s scale: no answer within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// `read` or `patch`.
        action: &'static str,
        /// The namespace.
        namespace: String,
        /// The Deployment.
        deployment: String,
        /// The limit.
        timeout: Duration,
    },
}

/// The actuator the controller drives.
pub enum Actuator {
    /// Processes on this machine.
    Local(Arc<LocalProcesses>),
    /// Deployments of a Kubernetes cluster (boxed: a client is large, and one exists).
    Kubernetes(Box<KubernetesDeployments>),
}

impl Actuator {
    /// How many instances `worker` is asked to run now (not counting those stopping).
    pub async fn running(&self, worker: &str) -> Result<u32, ActuatorError> {
        match self {
            Actuator::Local(local) => Ok(local.running(worker)),
            Actuator::Kubernetes(cluster) => cluster.replicas(worker).await,
        }
    }

    /// Brings `worker` to `desired` instances; returns how many it runs after the call.
    pub async fn scale(&self, worker: &str, desired: u32) -> Result<u32, ActuatorError> {
        match self {
            Actuator::Local(local) => local.scale(worker, desired),
            Actuator::Kubernetes(cluster) => cluster.scale(worker, desired).await,
        }
    }

    /// The instances that ended without being asked to since the last call.
    pub fn reap(&self) -> Result<Vec<Crash>, ActuatorError> {
        match self {
            Actuator::Local(local) => local.reap(),
            // The kubelet restarts a crashed container (with its own backoff) and the
            // Deployment controller replaces a lost pod: nothing for the controller to do.
            Actuator::Kubernetes(_) => Ok(Vec::new()),
        }
    }
}
