//! The Kubernetes platform with the real kube client against the fake API server.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use dyno_scaler_core::conformance::{PlatformBackend, run_platform_conformance};
use dyno_scaler_core::*;
use dyno_scaler_kubernetes::fake::{DELETION_COST, FakeKubernetes};
use dyno_scaler_kubernetes::{KubernetesPlatform, Target};

/// A kube client for the fake, built from the kubeconfig it writes (plain http://, as `kubectl proxy` serves).
async fn platform(fake: &FakeKubernetes, targets: BTreeMap<String, Target>) -> KubernetesPlatform {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&fake.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    assert_eq!(config.default_namespace, "app", "the namespace comes from the context");
    let namespace = config.default_namespace.clone();
    KubernetesPlatform::new(kube::Client::try_from(config).unwrap(), namespace, targets)
}

struct Backend {
    fake: FakeKubernetes,
    platform: Arc<KubernetesPlatform>,
}

#[async_trait]
impl PlatformBackend for Backend {
    async fn add(&self, process_type: &str, quantity: u32) {
        self.fake.add_deployment(process_type, quantity);
    }
    async fn quantity(&self, process_type: &str) -> Option<u32> {
        self.fake.replicas(process_type)
    }
    async fn limit(&self, _: &str, _: u32) -> bool {
        false
    }
    fn knows_types(&self) -> bool {
        true
    }
    fn platform(&self) -> Arc<dyn Platform> {
        self.platform.clone()
    }
}

#[tokio::test]
async fn the_kubernetes_platform_keeps_the_platform_contract() {
    let fake = FakeKubernetes::start("app").await;
    let platform = Arc::new(platform(&fake, BTreeMap::new()).await);
    run_platform_conformance(&Backend { fake, platform }).await;
}

#[tokio::test]
async fn a_conflict_is_read_again_and_retried() {
    let fake = FakeKubernetes::start("app").await;
    fake.add_deployment("worker", 1);
    let p = platform(&fake, BTreeMap::new()).await;
    fake.conflict_next(2);
    p.set_quantity("worker", 3).await.unwrap();
    assert_eq!(fake.replicas("worker"), Some(3));
    let writes: Vec<u16> =
        fake.requests().iter().filter(|(m, path, _)| m == "PATCH" && path.contains("/scale")).map(|r| r.2).collect();
    assert_eq!(writes, vec![409, 409, 200], "each conflict read again, then written");
    // Every request is counted by its status, as the metrics show them: three reads, two refused writes, one write.
    let counted = p.telemetry().requests;
    assert_eq!((counted.get("409"), counted.get("200")), (Some(&2), Some(&4)), "{counted:?}");
    let answered = fake.requests().len() as u64;
    assert_eq!(counted.values().sum::<u64>(), answered, "{counted:?}");
}

/// A call's worth of conflicts (1 + 5 retries) is someone else writing replicas, not a refusal: the scaler reads
/// again and decides again next cycle, and never "does not ask again".
#[tokio::test]
async fn conflicts_that_outlast_a_call_are_read_again_next_cycle() {
    let fake = FakeKubernetes::start("app").await;
    fake.add_deployment("worker", 3);
    let p = Arc::new(platform(&fake, BTreeMap::new()).await);
    let e = {
        fake.conflict_next(6);
        p.set_quantity("worker", 4).await.unwrap_err()
    };
    assert!(matches!(e, PlatformError::Conflict { .. }) && !e.is_fatal(), "{e:?}");
    let queue = InMemoryQueue::new(Arc::new(SystemClock));
    queue.push_many("default", 20);
    let policy = Policy::new(PolicyConfig {
        max_workers: 10,
        rules: vec![DemandRule::JobsPerWorker(5)],
        ..PolicyConfig::classic()
    })
    .unwrap();
    let scaler = Scaler::builder("worker", Arc::new(queue), p, policy).build();
    fake.conflict_next(6);
    let first = scaler.reconcile().await.unwrap_err();
    assert!(matches!(&first, ScalerError::Platform { source: PlatformError::Conflict { .. }, .. }), "{first}");
    let second = scaler.reconcile().await.unwrap();
    assert_eq!(second.decision.gate, None, "{:?}", second.decision);
    assert_eq!((second.decision.to, fake.replicas("worker")), (4, Some(4)), "scaled at the next cycle");
}

/// A stalled API call fails at the call timeout (logged) instead of blocking the cycle; the next call after the
/// stall answers.
#[tokio::test]
async fn a_stalled_call_times_out() {
    let fake = FakeKubernetes::start("app").await;
    fake.add_deployment("worker", 2);
    let p = platform(&fake, BTreeMap::new()).await.with_call_timeout(std::time::Duration::from_millis(300));
    fake.stall(std::time::Duration::from_secs(5));
    let started = std::time::Instant::now();
    let e = p.current_quantity("worker").await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "bounded: {:?}", started.elapsed());
    assert!(matches!(e, PlatformError::Unavailable { .. }) && !e.is_fatal(), "{e:?}");
    assert!(e.to_string().contains("get scale: no answer within 300ms"), "{e}");
    let e = p.set_quantity("worker", 3).await.unwrap_err();
    assert!(e.to_string().contains("no answer within"), "{e}");
    assert_eq!(p.telemetry().requests.get("error"), Some(&2), "counted as unanswered");
    fake.stall(std::time::Duration::ZERO);
    assert_eq!(p.current_quantity("worker").await.unwrap(), 2);
}

#[tokio::test]
async fn rbac_refusals_and_unknown_targets_are_clear_and_fatal() {
    let fake = FakeKubernetes::start("app").await;
    fake.add_deployment("worker", 1);
    let p = platform(&fake, BTreeMap::new()).await;
    fake.forbid("patch", "deployments/scale");
    let e = p.set_quantity("worker", 2).await.unwrap_err();
    assert!(matches!(e, PlatformError::Forbidden { .. }) && e.is_fatal(), "{e:?}");
    assert!(e.to_string().contains("cannot patch resource \"deployments/scale\""), "{e}");
    assert_eq!(fake.replicas("worker"), Some(1), "nothing changed");
    let e = p.current_quantity("nosuch").await.unwrap_err();
    assert!(
        matches!(e, PlatformError::NotFound { .. }) && e.to_string().contains("deployments.apps \"nosuch\" not found"),
        "{e}"
    );
}

#[tokio::test]
async fn a_busy_pod_is_never_the_victim_idle_ones_are_marked_before_the_decrement() {
    let fake = FakeKubernetes::start("app").await;
    // Unmarked, the ReplicaSet removes the newest pod first: the one this test makes busy would be stopped.
    fake.add_deployment("unmarked", 3);
    let newest = fake.pods("unmarked")[2].clone();
    fake.scale("unmarked", 2);
    assert!(!fake.pods("unmarked").contains(&newest), "the newest pod goes first without marks");
    fake.add_deployment("worker", 3);
    let p = Arc::new(platform(&fake, BTreeMap::new()).await);
    let pods = fake.pods("worker");
    let busy = pods[2].clone();
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    let workers: Vec<WorkerInfo> = pods
        .iter()
        .map(|pod| {
            WorkerInfo::new(format!("{pod}:1:abc"), Some(pod.clone()), u32::from(*pod == busy))
                .with_beat(Some(clock.now()))
        })
        .collect();
    queue.set_workers(Some(workers));
    queue.add_running("default", 1);
    let policy = Policy::new(PolicyConfig {
        max_workers: 5,
        down_delay: std::time::Duration::ZERO,
        quiet_victims: false,
        ..PolicyConfig::classic()
    })
    .unwrap();
    let scaler = Scaler::builder("worker", Arc::new(queue.clone()), p.clone(), policy).clock(clock.clone()).build();
    // The policy trusts an idle worker once seen idle on two heartbeats.
    let mut r = scaler.reconcile().await.unwrap();
    for _ in 0..3 {
        if r.decision.to < r.decision.from {
            break;
        }
        clock.advance(std::time::Duration::from_secs(5));
        queue.heartbeat();
        r = scaler.reconcile().await.unwrap();
    }
    assert_eq!((r.decision.from, r.decision.to), (3, 1), "{}", r.decision.reason);
    assert_eq!(fake.replicas("worker"), Some(1));
    assert_eq!(fake.pods("worker"), vec![busy.clone()], "the busy pod is the one left");
    assert_eq!(fake.annotation(&busy, DELETION_COST).as_deref(), Some("1000"), "the busy pod is marked to go last");
    let patches: Vec<String> = fake.requests().into_iter().filter(|(m, _, _)| m == "PATCH").map(|r| r.1).collect();
    assert_eq!(patches.len(), 4, "two victims and the busy pod marked, then the decrement: {patches:?}");
    assert!(patches[..3].iter().all(|p| p.contains("/pods/")) && patches[3].contains("/scale"), "{patches:?}");
}

#[tokio::test]
async fn check_access_names_the_missing_rights() {
    let fake = FakeKubernetes::start("app").await;
    fake.add_deployment("worker", 1);
    let p = platform(&fake, BTreeMap::new()).await;
    assert_eq!(p.check_access("worker").await.unwrap(), Vec::<String>::new(), "all granted");
    fake.forbid("patch", "pods");
    fake.forbid("patch", "deployments/scale");
    assert_eq!(p.check_access("worker").await.unwrap(), vec!["patch deployments/scale", "patch pods"]);
    let e = p.check_access("nosuch").await.unwrap_err();
    assert!(matches!(e, PlatformError::NotFound { .. }), "an unknown target: {e:?}");
}

#[test]
fn targets_parse_and_bad_ones_say_how_to_write_them() {
    assert_eq!("deployment/sidekiq".parse::<Target>(), Ok(Target::Deployment("sidekiq".into())));
    assert_eq!("statefulset/jobs".parse::<Target>(), Ok(Target::StatefulSet("jobs".into())));
    let e = "pod/x".parse::<Target>().unwrap_err();
    assert!(e.contains("deployment/NAME or statefulset/NAME"), "{e}");
}

#[tokio::test]
async fn the_fake_answers_metadata_only_where_asked_as_the_api_server_does() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    let fake = FakeKubernetes::start("app").await;
    fake.add_deployment("worker", 2);
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&fake.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), "app");
    let lp = ListParams::default().labels("app=worker");
    let full = pods.list(&lp).await.unwrap();
    assert_eq!(full.types.kind, "PodList");
    assert!(full.items[0].spec.is_some(), "a full list carries the specs");
    let meta = pods.list_metadata(&lp).await.unwrap();
    assert_eq!(
        (meta.types.kind.as_str(), meta.types.api_version.as_str()),
        ("PartialObjectMetadataList", "meta.k8s.io/v1")
    );
    assert_eq!(meta.items.len(), 2);
    assert_eq!(meta.items[0].types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
    assert_eq!(meta.items[0].metadata.name, full.items[0].metadata.name);
}

/// What the queue says: `busy` pods run a job, the rest are idle.
fn hosts(pods: &[String], busy: &[&String]) -> Hosts {
    let workers = pods
        .iter()
        .map(|pod| WorkerInfo::new(format!("{pod}:1:abc"), Some(pod.clone()), u32::from(busy.contains(&pod))))
        .collect();
    Hosts::of(&Snapshot::default().with_workers(workers))
}

#[tokio::test]
async fn a_failed_shrink_leaves_no_mark_that_gets_a_pod_busy_since_deleted() {
    let fake = FakeKubernetes::start("app").await;
    fake.add_deployment("worker", 3);
    let p = platform(&fake, BTreeMap::new()).await;
    let pods = fake.pods("worker");
    let newest = pods[2].clone();
    // A shrink 3 -> 2 marks the newest idle pod, then its decrement is refused.
    let idle = hosts(&pods, &[]);
    p.formation("worker", &idle, false).await.unwrap();
    fake.forbid("patch", "deployments/scale");
    assert!(p.scale(&ScaleRequest::new("worker", 2, &idle)).await.is_err());
    assert_eq!(fake.replicas("worker"), Some(3));
    assert_eq!(fake.annotation(&newest, DELETION_COST), None, "the failed shrink's mark is cleared");
    // Someone else leaves a victim's mark behind (or the clearing failed): it must not count either.
    fake.permit("patch", "deployments/scale");
    let patch = kube::api::Patch::Merge(serde_json::json!({"metadata": {"annotations": {DELETION_COST: "-1000"}}}));
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&fake.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let pods_api =
        kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(kube::Client::try_from(config).unwrap(), "app");
    pods_api.patch_metadata(&newest, &kube::api::PatchParams::default(), &patch).await.unwrap();
    // The marked pod now runs a job; the next shrink must take an idle pod and leave it.
    let busy = hosts(&pods, &[&newest]);
    p.formation("worker", &busy, false).await.unwrap();
    p.scale(&ScaleRequest::new("worker", 2, &busy)).await.unwrap();
    assert_eq!(fake.replicas("worker"), Some(2));
    assert!(fake.pods("worker").contains(&newest), "the busy pod was deleted: {:?}", fake.pods("worker"));
    assert_eq!(fake.annotation(&newest, DELETION_COST).as_deref(), Some("1000"), "busy: highest");
    let kept_idle = fake.pods("worker").into_iter().find(|n| *n != newest).unwrap();
    assert_eq!(fake.annotation(&kept_idle, DELETION_COST), None, "the rest neutral");
}
