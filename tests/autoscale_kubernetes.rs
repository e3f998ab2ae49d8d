//! The Kubernetes actuator and the manifests of `ops/k8s/` against the real kube-apiserver of
//! `ops/stack up` (with etcd; RBAC enforced). No kubelet or controller-manager runs there, so
//! Deployments get no pods: what is checked is everything the controller asks of the API and
//! everything the API server accepts of the manifests.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use frontier::config::Environment;
use frontier::settings::Settings;
use frontier::workers::autoscaler::{ActuatorError, ActuatorKind, KubernetesActuatorSettings, KubernetesDeployments};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Scope, pinned_kind};
use kube::{Client, Config};
use rdkafka::Message;
use serde_json::{Value, json};

fn kubeconfig_path() -> PathBuf {
    repo().join(".stack/kube/kubeconfig")
}

/// The stack's administrator (group `system:masters`).
async fn admin() -> Client {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!("no kubeconfig at {} ({e}): start the stack's kube-apiserver with `ops/stack up`", path.display())
    });
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let server = config.cluster_url.clone();
    let client = Client::try_from(config).unwrap();
    if let Err(error) = client.apiserver_version().await {
        panic!("the kube-apiserver at {server} does not answer ({error}): start it with `ops/stack up`");
    }
    client
}

/// A kubeconfig acting as `service_account` of `namespace`, with a token the API server mints.
async fn service_account_kubeconfig(admin: &Client, namespace: &str, service_account: &str) -> String {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(3600), ..TokenRequestSpec::default() }),
        ..TokenRequest::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .unwrap();
    let token = answer.status.and_then(|status| status.token).expect("a minted token");
    let stack = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    let cluster = stack.clusters[0].cluster.clone().expect("the stack's cluster");
    let ca = match (&cluster.certificate_authority_data, &cluster.certificate_authority) {
        (Some(data), _) => format!("certificate-authority-data: {data}"),
        (None, Some(path)) => format!("certificate-authority: {path}"),
        (None, None) => panic!("the stack's kubeconfig names no CA"),
    };
    let server = cluster.server.expect("the stack's server");
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: stack\n  cluster:\n    server: {server}\n    {ca}\n\
         users:\n- name: {service_account}\n  user:\n    token: {token}\n\
         contexts:\n- name: sa\n  context:\n    cluster: stack\n    user: {service_account}\n    namespace: {namespace}\n\
         current-context: sa\n"
    )
}

async fn client_from(kubeconfig: &str) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig).unwrap();
    Client::try_from(Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap()).unwrap()
}

/// Every document of the files `ops/k8s/kustomization.yaml` lists, in order.
fn manifests() -> Vec<Value> {
    let dir = repo().join("ops/k8s");
    let kustomization: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).unwrap();
    let files = kustomization["resources"].as_array().expect("kustomization.yaml lists resources");
    files
        .iter()
        .flat_map(|file| {
            let path = dir.join(file.as_str().unwrap());
            let text = std::fs::read_to_string(&path).unwrap();
            serde_saphyr::from_multiple::<Value>(&text)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
                .into_iter()
                .filter(|doc| !doc.is_null())
        })
        .collect()
}

/// `doc` moved from namespace `frontier` to `namespace` (as `kubectl apply -k` with another
/// namespace would), RoleBinding subjects included; the image tag as kustomize sets it.
fn retargeted(mut doc: Value, namespace: &str) -> Value {
    if doc["kind"] == "Namespace" {
        doc["metadata"]["name"] = json!(namespace);
    } else {
        assert_eq!(doc["metadata"]["namespace"], "frontier", "every object names its namespace: {doc}");
        doc["metadata"]["namespace"] = json!(namespace);
    }
    // `get_mut`, not indexing: indexing a missing key would add it (as null).
    if let Some(subjects) = doc.get_mut("subjects").and_then(Value::as_array_mut) {
        for subject in subjects {
            subject["namespace"] = json!(namespace);
        }
    }
    doc
}

/// Server-side apply of `doc` with `params`, whatever its kind.
async fn apply(client: &Client, doc: &Value, params: &PatchParams) -> Result<DynamicObject, kube::Error> {
    let (group, version) = match doc["apiVersion"].as_str().unwrap().split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", doc["apiVersion"].as_str().unwrap()),
    };
    let gvk = GroupVersionKind::gvk(group, version, doc["kind"].as_str().unwrap());
    let (resource, capabilities) = pinned_kind(client, &gvk).await?;
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => {
            Api::namespaced_with(client.clone(), doc["metadata"]["namespace"].as_str().unwrap(), &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    api.patch(doc["metadata"]["name"].as_str().unwrap(), params, &Patch::Apply(doc)).await
}

/// A namespace of this test's own, left behind: without a controller-manager a deleted
/// namespace never finishes terminating, and the stack's etcd is scratch space.
struct TestNamespace {
    client: Client,
    name: String,
}

impl TestNamespace {
    async fn create(client: &Client) -> TestNamespace {
        let name = format!("frontier-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let namespace: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await.unwrap();
        TestNamespace { client: client.clone(), name }
    }

    /// Applies every manifest of `ops/k8s/` here (the Namespace itself aside).
    async fn apply_manifests(&self) {
        let params = PatchParams::apply("frontier-tests").validation_strict();
        for doc in manifests().into_iter().filter(|doc| doc["kind"] != "Namespace") {
            let doc = retargeted(doc, &self.name);
            apply(&self.client, &doc, &params).await.unwrap_or_else(|e| panic!("{} refused: {e}", doc["metadata"]));
        }
    }

    async fn replicas(&self, deployment: &str) -> Option<i32> {
        let api = Api::<Deployment>::namespaced(self.client.clone(), &self.name);
        api.get(deployment).await.unwrap().spec.replicas
    }
}

fn actuator_settings(namespace: &str) -> KubernetesActuatorSettings {
    KubernetesActuatorSettings { namespace: Some(namespace.to_owned()), ..KubernetesActuatorSettings::default() }
}

#[tokio::test]
async fn every_manifest_is_accepted_by_the_api_server_under_strict_field_validation() {
    let client = admin().await;
    let namespace = TestNamespace::create(&client).await;
    let dry_run = PatchParams::apply("frontier-tests").validation_strict().dry_run();
    let docs = manifests();
    let kinds: Vec<&str> = docs.iter().map(|doc| doc["kind"].as_str().unwrap()).collect();
    for kind in ["Namespace", "ConfigMap", "Job", "Deployment", "PodDisruptionBudget", "Service", "Role"] {
        assert!(kinds.contains(&kind), "ops/k8s/ has a {kind}: {kinds:?}");
    }
    for doc in &docs {
        let doc = retargeted(doc.clone(), &namespace.name);
        apply(&client, &doc, &dry_run).await.unwrap_or_else(|e| panic!("{} refused: {e}", doc["metadata"]));
    }
}

#[tokio::test]
async fn strict_validation_refuses_a_field_kubernetes_does_not_know() {
    // The check above is only worth something if a mistake fails it.
    let client = admin().await;
    let namespace = TestNamespace::create(&client).await;
    let mut deployment = manifests().into_iter().find(|doc| doc["kind"] == "Deployment").unwrap();
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = json!({});
    let doc = retargeted(deployment, &namespace.name);
    let refused = apply(&client, &doc, &PatchParams::apply("frontier-tests").validation_strict().dry_run()).await;
    let error = refused.expect_err("an unknown field is refused").to_string();
    assert!(error.contains("readinessProbes"), "{error}");
}

#[test]
fn the_config_map_s_configuration_loads_and_sizes_only_deployments_the_controller_may_scale() {
    let docs = manifests();
    let config_map = docs.iter().find(|doc| doc["kind"] == "ConfigMap").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("production.toml"), config_map["data"]["production.toml"].as_str().unwrap())
        .unwrap();
    let settings = Settings::load(Environment::Production, dir.path()).unwrap();
    let autoscaler = &settings.workers.autoscaler;
    assert_eq!(autoscaler.actuator, ActuatorKind::Kubernetes);
    assert!(!autoscaler.groups.is_empty());

    let role =
        docs.iter().find(|doc| doc["kind"] == "Role" && doc["metadata"]["name"] == "frontier-autoscaler").unwrap();
    let allowed: Vec<&str> =
        role["rules"][0]["resourceNames"].as_array().unwrap().iter().map(|name| name.as_str().unwrap()).collect();
    for worker in autoscaler.groups.keys() {
        let name = format!("{}{worker}", autoscaler.kubernetes.deployment_prefix);
        let deployment = docs
            .iter()
            .find(|doc| doc["kind"] == "Deployment" && doc["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("sized worker {worker} has a Deployment {name}"));
        assert!(deployment["spec"]["replicas"].is_null(), "{name} leaves replicas to the autoscaler");
        assert!(allowed.contains(&name.as_str()), "the Role lets the controller scale {name}");
        let command = &deployment["spec"]["template"]["spec"]["containers"][0]["command"];
        assert_eq!(command, &json!(["frontier", "run", worker]));
    }
}

#[tokio::test]
async fn the_controller_s_service_account_scales_its_deployments_and_nothing_else() {
    let admin = admin().await;
    let namespace = TestNamespace::create(&admin).await;
    namespace.apply_manifests().await;
    let kubeconfig = service_account_kubeconfig(&admin, &namespace.name, "frontier-autoscaler").await;
    let actuator = KubernetesDeployments::new(client_from(&kubeconfig).await, &actuator_settings(&namespace.name));

    assert_eq!(actuator.replicas("serve").await.unwrap(), 1, "a Deployment without replicas starts at 1");
    assert_eq!(actuator.scale("serve", 3).await.unwrap(), 3);
    assert_eq!(namespace.replicas("frontier-serve").await, Some(3));
    let deployments = Api::<Deployment>::namespaced(admin.clone(), &namespace.name);
    let serve = deployments.get("frontier-serve").await.unwrap();

    // An unchanged size is read, not written.
    let version = serve.metadata.resource_version;
    assert_eq!(actuator.scale("serve", 3).await.unwrap(), 3);
    assert_eq!(deployments.get("frontier-serve").await.unwrap().metadata.resource_version, version);

    // The Role names the Deployments it may scale; the controller's own is not one of them.
    match actuator.scale("autoscaler", 2).await {
        Err(ActuatorError::Forbidden { action, deployment, .. }) => {
            assert_eq!((action, deployment.as_str()), ("read", "frontier-autoscaler"));
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    assert_eq!(namespace.replicas("frontier-autoscaler").await, Some(1));
}

#[tokio::test]
async fn a_deploy_rolls_every_worker_deployment_and_skips_workers_the_cluster_does_not_run() {
    let admin = admin().await;
    let namespace = TestNamespace::create(&admin).await;
    namespace.apply_manifests().await;
    let deployments = KubernetesDeployments::new(admin.clone(), &actuator_settings(&namespace.name));
    let groups = settings().worker_groups();

    let restarted = frontier::deploy::rollout::restart_kubernetes(&deployments, &groups, &[], "cafe01").await.unwrap();
    assert!(restarted.contains(&"serve".to_owned()), "{restarted:?}");
    let api = Api::<Deployment>::namespaced(admin.clone(), &namespace.name);
    let serve = api.get("frontier-serve").await.unwrap();
    let template = serve.spec.template.metadata.unwrap().annotations.unwrap();
    assert_eq!(template["frontier.io/config-hash"], "cafe01", "the pods are replaced by the Deployment's strategy");
    assert!(template.contains_key("frontier.io/restarted-at"));
    let strategy = api.get("frontier-serve").await.unwrap().spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(
        strategy.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0)),
        "a rollout never runs fewer pods"
    );
    for worker in restarted {
        api.get(&format!("frontier-{worker}")).await.unwrap();
    }
}

#[tokio::test]
async fn a_worker_without_a_deployment_is_named_in_the_error() {
    let admin = admin().await;
    let namespace = TestNamespace::create(&admin).await;
    let actuator = KubernetesDeployments::new(admin.clone(), &actuator_settings(&namespace.name));
    match actuator.scale("passthrough", 2).await {
        Err(error @ ActuatorError::NoDeployment { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&format!("{}/frontier-passthrough", namespace.name)), "{message}");
            assert!(message.contains("ops/k8s/"), "{message}");
        }
        other => panic!("expected NoDeployment, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_scales_a_backlogged_group_s_deployment_as_its_service_account() {
    let admin = admin().await;
    let namespace = TestNamespace::create(&admin).await;
    namespace.apply_manifests().await;
    let kubeconfig_dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_dir.path().join("config");
    std::fs::write(&kubeconfig, service_account_kubeconfig(&admin, &namespace.name, "frontier-autoscaler").await)
        .unwrap();

    let kafka = settings();
    let [decisions_topic, status] = common::process::topics(&kafka, "autoscale.k8s", ["decisions", "status"]).await;
    let input = unique("autoscale.k8s.in");
    create_topics(&kafka, &[&input], 3).await;
    let records = (0..330).map(|i| (Some(format!("k{i}")), format!("m{i}").into_bytes())).collect();
    produce(&kafka, &input, records).await;
    let group = unique("autoscale.k8s.group");
    let _member = member_after(&group, &input, 30);

    let policy = "FRONTIER_WORKERS__AUTOSCALER__GROUPS__SERVE__";
    let env = [
        ("KUBECONFIG", kubeconfig.to_string_lossy().into_owned()),
        ("FRONTIER_WORKERS__AUTOSCALER__ACTUATOR", "kubernetes".to_owned()),
        ("FRONTIER_WORKERS__AUTOSCALER__KUBERNETES__NAMESPACE", namespace.name.clone()),
        ("FRONTIER_BUS__STATUS_TOPIC", status),
        ("FRONTIER_WORKERS__AUTOSCALER__DECISIONS_TOPIC", decisions_topic.clone()),
        ("FRONTIER_WORKERS__AUTOSCALER__GROUP_ID", unique("autoscale.k8s.controller")),
        ("FRONTIER_WORKERS__AUTOSCALER__INTERVAL", "1s".to_owned()),
        (&format!("{policy}MIN_INSTANCES"), "1".to_owned()),
        (&format!("{policy}MAX_INSTANCES"), "3".to_owned()),
        (&format!("{policy}SIZING__KIND"), "lag".to_owned()),
        (&format!("{policy}SIZING__LAG_THRESHOLD"), "100".to_owned()),
        ("FRONTIER_WORKERS__SERVE__INPUT_TOPIC", input.clone()),
        ("FRONTIER_WORKERS__SERVE__GROUP_ID", group.clone()),
    ];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (&**k, v.clone())).collect();
    let mut controller = common::process::Worker::start("autoscaler", &env);

    // 300 waiting / 100 per instance: 3 instances, which the topic's 3 partitions allow.
    let started = Instant::now();
    while namespace.replicas("frontier-serve").await != Some(3) {
        controller.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "frontier-serve has {:?} replicas; the controller's log:\n{}",
            namespace.replicas("frontier-serve").await,
            controller.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The controller decides every second: what is on the topic after 3 s holds the step up.
    let decisions = read_topic(&kafka, &decisions_topic, usize::MAX, Duration::from_secs(3));
    let decision = decoded_json(&catalog(), &decisions).into_iter().find(|d| d["action"] == "scale_up").unwrap();
    assert_eq!((decision["consumer_group"].as_str(), decision["desired_instances"].as_i64()), (Some(&*group), Some(3)));
    assert!(decisions.iter().all(|message| message.key() == Some(group.as_bytes())));

    // `frontier autoscale status` with the controller's settings reads the Deployment.
    let stdout = common::process::succeeds(&["autoscale", "status"], &env);
    let line = format!("Deployment {}/frontier-serve: 3 replica(s) asked for, 0 pod(s) exist", namespace.name);
    assert!(stdout.contains(&line), "{stdout}");
}
