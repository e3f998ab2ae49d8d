//! `KubernetesDeployments`: the actuator for a cluster. Each sized worker runs as the
//! Deployment `<deployment_prefix><worker>` (`ops/k8s/`); the controller reads and patches its
//! `scale` subresource, as `kubectl scale` and the HorizontalPodAutoscaler do. The Deployment
//! controller then adds or removes pods; a removed pod gets SIGTERM and its
//! `terminationGracePeriodSeconds` to drain and commit, as a local instance does; the kubelet
//! restarts a crashed one. The manifests leave `replicas` unset, so re-applying them never
//! undoes the controller's size.
//!
//! The count the policy reads is the scale's `spec.replicas` (what the group is asked to run),
//! as the HPA reads it: pods still starting count, so a scale-up is not asked for twice.

use std::future::Future;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::Scale;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Config};

use super::actuator::ActuatorError;
use super::settings::KubernetesActuatorSettings;

/// The Kubernetes actuator.
pub struct KubernetesDeployments {
    api: Api<Deployment>,
    namespace: String,
    settings: KubernetesActuatorSettings,
}

/// A Deployment's scale: asked for and existing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    /// `spec.replicas`: what it is asked to run.
    pub desired: u32,
    /// `status.replicas`: the pods that exist now.
    pub current: u32,
}

impl KubernetesDeployments {
    /// The actuator on the cluster of the usual client configuration (`KUBECONFIG`,
    /// `~/.kube/config`, else the pod's ServiceAccount), each request bounded by
    /// `request_timeout`.
    pub async fn connect(settings: &KubernetesActuatorSettings) -> Result<KubernetesDeployments, ActuatorError> {
        let mut config =
            Config::infer().await.map_err(|error| ActuatorError::KubeConfig(kube::Error::InferConfig(error)))?;
        config.connect_timeout = Some(settings.request_timeout);
        config.read_timeout = Some(settings.request_timeout);
        config.write_timeout = Some(settings.request_timeout);
        let client = Client::try_from(config).map_err(ActuatorError::KubeConfig)?;
        Ok(KubernetesDeployments::new(client, settings))
    }

    /// The actuator acting through `client`: in `settings.namespace`, else the client's.
    pub fn new(client: Client, settings: &KubernetesActuatorSettings) -> KubernetesDeployments {
        let namespace = settings.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
        KubernetesDeployments { api: Api::namespaced(client, &namespace), namespace, settings: settings.clone() }
    }

    /// The namespace the Deployments are in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name of `worker`'s Deployment.
    pub fn deployment_of(&self, worker: &str) -> String {
        format!("{}{worker}", self.settings.deployment_prefix)
    }

    /// `worker`'s Deployment's scale.
    pub async fn replicas_of(&self, worker: &str) -> Result<Replicas, ActuatorError> {
        let name = self.deployment_of(worker);
        let scale = self.request("read", worker, self.api.get_scale(&name)).await?;
        Ok(replicas(&scale))
    }

    /// How many instances `worker` is asked to run (`spec.replicas`).
    pub async fn replicas(&self, worker: &str) -> Result<u32, ActuatorError> {
        Ok(self.replicas_of(worker).await?.desired)
    }

    /// Sets `worker`'s Deployment to `desired` replicas, unless it already is (the controller
    /// applies its targets every tick: an unchanged size costs one read, no write).
    pub async fn scale(&self, worker: &str, desired: u32) -> Result<u32, ActuatorError> {
        let before = self.replicas(worker).await?;
        if before == desired {
            return Ok(before);
        }
        let name = self.deployment_of(worker);
        let params = PatchParams { field_manager: Some(self.settings.field_manager.clone()), ..PatchParams::default() };
        let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": desired } }));
        let scale = self.request("patch", worker, self.api.patch_scale(&name, &params, &patch)).await?;
        let after = replicas(&scale).desired;
        tracing::info!(worker, namespace = %self.namespace, deployment = %name, from = before, to = after, "patched the Deployment's scale");
        Ok(after)
    }

    /// Rolls `worker`'s Deployment, as `kubectl rollout restart` does: new pod-template
    /// annotations (the release's config hash and the time) make the Deployment controller
    /// replace its pods by its strategy (ops/k8s: maxSurge 1, maxUnavailable 0, so the group
    /// never runs fewer pods). Returns the Deployment's generation after the patch.
    pub async fn restart(&self, worker: &str, config_hash: &str, at_rfc3339: &str) -> Result<i64, ActuatorError> {
        let name = self.deployment_of(worker);
        let params = PatchParams { field_manager: Some(self.settings.field_manager.clone()), ..PatchParams::default() };
        let annotations =
            serde_json::json!({ "frontier.io/restarted-at": at_rfc3339, "frontier.io/config-hash": config_hash });
        let patch =
            Patch::Merge(serde_json::json!({ "spec": { "template": { "metadata": { "annotations": annotations } } } }));
        let deployment = self.request("patch", worker, self.api.patch(&name, &params, &patch)).await?;
        let generation = deployment.metadata.generation.unwrap_or(0);
        tracing::info!(worker, namespace = %self.namespace, deployment = %name, generation, "restarted the Deployment's pods");
        Ok(generation)
    }

    /// Runs one API request within `request_timeout`, naming its failure.
    async fn request<T>(
        &self,
        action: &'static str,
        worker: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ActuatorError> {
        let (namespace, deployment) = (self.namespace.clone(), self.deployment_of(worker));
        let timeout = self.settings.request_timeout;
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(ActuatorError::Timeout { action, namespace, deployment, timeout }),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
                Err(ActuatorError::NoDeployment { worker: worker.to_owned(), namespace, deployment })
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 403 => {
                Err(ActuatorError::Forbidden { action, namespace, deployment, message: status.message })
            }
            Ok(Err(source)) => Err(ActuatorError::Kubernetes { action, namespace, deployment, source }),
        }
    }
}

/// A scale's replicas; negative or missing counts (never sent by a valid server) read as 0.
fn replicas(scale: &Scale) -> Replicas {
    let count = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    Replicas {
        desired: count(scale.spec.as_ref().and_then(|spec| spec.replicas)),
        current: count(scale.status.as_ref().map(|status| status.replicas)),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::autoscaling::v1::{ScaleSpec, ScaleStatus};

    use super::*;

    #[test]
    fn a_scale_reads_as_asked_for_and_existing_replicas() {
        let scale = Scale {
            spec: Some(ScaleSpec { replicas: Some(4) }),
            status: Some(ScaleStatus { replicas: 2, ..ScaleStatus::default() }),
            ..Scale::default()
        };
        assert_eq!(replicas(&scale), Replicas { desired: 4, current: 2 });
    }

    #[test]
    fn a_scale_without_counts_reads_as_zero_not_as_an_error() {
        let negative = Scale { spec: Some(ScaleSpec { replicas: Some(-1) }), ..Scale::default() };
        assert_eq!(replicas(&negative), Replicas { desired: 0, current: 0 });
        assert_eq!(replicas(&Scale::default()), Replicas { desired: 0, current: 0 });
    }
}
