//! dyno-scaler's [`Platform`] for Kubernetes: scales a Deployment or StatefulSet through its `/scale` subresource
//! (with the read `resourceVersion`; a 409 is read again and retried) and, unlike Heroku, chooses the pods a
//! scale-down stops: idle pods first (as the queue's worker records say, a Sidekiq process naming its pod), marked
//! with a low `controller.kubernetes.io/pod-deletion-cost` just before the decrement, so the ReplicaSet deletes them.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::{Formation, Hosts, Placement, Platform, PlatformError, ProcessInfo, ScaleRequest};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::Scale;

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

#[cfg(feature = "fake")]
pub mod fake;
mod pods;

use pods::Pods;

/// The annotation the ReplicaSet controller ranks pods by on a scale-down (lower goes first).
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// The cost given to the chosen victims.
pub const VICTIM_COST: i32 = -1000;
/// The cost given to the pods the queue says are busy at a shrink, so the ReplicaSet takes them last whatever else
/// it ranks by.
pub const BUSY_COST: i32 = 1000;
/// How many times a write refused with 409 Conflict is read again and retried.
const CONFLICT_RETRIES: u32 = 5;
/// The longest one API request may take by default ([`KubernetesPlatform::with_call_timeout`]).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a process type scales: `deployment/NAME` or `statefulset/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Deployment.
    Deployment(String),
    /// A StatefulSet (which deletes its highest ordinal first: victims are named, not chosen).
    StatefulSet(String),
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().split_once('/') {
            Some(("deployment" | "deployments" | "deploy", n)) if !n.is_empty() => Ok(Self::Deployment(n.into())),
            Some(("statefulset" | "statefulsets" | "sts", n)) if !n.is_empty() => Ok(Self::StatefulSet(n.into())),
            _ => Err(format!("{s:?} is not a target; write deployment/NAME or statefulset/NAME")),
        }
    }
}

impl Target {
    /// The workload's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Deployment(n) | Self::StatefulSet(n) => n,
        }
    }
}

/// Scales Deployments and StatefulSets of one namespace.
pub struct KubernetesPlatform {
    client: Client,
    namespace: String,
    targets: BTreeMap<String, Target>,
    pods: Mutex<BTreeMap<String, Pods>>,
    /// Requests sent, by HTTP status (`"error"`: no answer).
    requests: Mutex<BTreeMap<String, u64>>,
    /// The longest one request may take.
    call_timeout: Duration,
}

impl std::fmt::Debug for KubernetesPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesPlatform")
            .field("namespace", &self.namespace)
            .field("targets", &self.targets)
            .finish()
    }
}

fn map_err(e: kube::Error) -> PlatformError {
    match e {
        kube::Error::Api(s) => {
            let message = s.message.clone();
            match s.code {
                401 => PlatformError::Unauthorized { message },
                403 => PlatformError::Forbidden {
                    id: "forbidden".into(),
                    message: format!("{message} (see the Role in deploy/kubernetes)"),
                },
                404 => PlatformError::NotFound { message },
                429 => PlatformError::RateLimited { message },
                // Another writer got there first: read again next cycle, never a refusal.
                409 => PlatformError::Conflict { message },
                c if c >= 500 => PlatformError::Unavailable { message, cause: None },
                c => PlatformError::Rejected { status: c, id: s.reason.clone(), message },
            }
        }
        other => PlatformError::Unavailable { message: other.to_string(), cause: None },
    }
}

impl KubernetesPlatform {
    /// The platform over `client` in `namespace`; a process type without a target scales `deployment/<type>`.
    pub fn new(client: Client, namespace: impl Into<String>, targets: BTreeMap<String, Target>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            targets,
            pods: Mutex::default(),
            requests: Mutex::default(),
            call_timeout: CALL_TIMEOUT,
        }
    }

    /// The same platform with `timeout` as the longest one API request may take (default [`CALL_TIMEOUT`]): a
    /// request that takes longer fails as unavailable, logged, and the cycle holds.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// One request, bounded by the call timeout and counted by the status it got.
    async fn timed<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        let r = match tokio::time::timeout(self.call_timeout, call).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(
                    call = what,
                    timeout_ms = self.call_timeout.as_millis() as u64,
                    "Kubernetes API call timed out"
                );
                Err(kube::Error::Service(format!("{what}: no answer within {:?}", self.call_timeout).into()))
            }
        };
        self.counted(r)
    }

    /// The platform configured as `kubectl` would be: in-cluster, else `KUBECONFIG` (or `~/.kube/config`);
    /// the namespace is `namespace`, else the in-cluster one or the kubeconfig context's.
    pub async fn infer(namespace: Option<String>, targets: BTreeMap<String, Target>) -> Result<Self, String> {
        let config = kube::Config::infer().await.map_err(|e| format!("no Kubernetes configuration: {e}"))?;
        let namespace = namespace.unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| format!("cannot build the Kubernetes client: {e}"))?;
        Ok(Self::new(client, namespace, targets))
    }

    /// Counts one request by the status it got (every API call this platform makes answers 200 on success).
    fn counted<T>(&self, r: Result<T, kube::Error>) -> Result<T, kube::Error> {
        let status = match &r {
            Ok(_) => "200".to_owned(),
            Err(kube::Error::Api(s)) => s.code.to_string(),
            Err(_) => "error".to_owned(),
        };
        *self.requests.lock().expect("requests lock").entry(status).or_default() += 1;
        r
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// What `process_type` scales.
    pub fn target(&self, process_type: &str) -> Target {
        self.targets.get(process_type).cloned().unwrap_or_else(|| Target::Deployment(process_type.to_owned()))
    }

    async fn get_scale(&self, t: &Target) -> Result<Scale, PlatformError> {
        let (deployments, sets) = (
            Api::<Deployment>::namespaced(self.client.clone(), &self.namespace),
            Api::<StatefulSet>::namespaced(self.client.clone(), &self.namespace),
        );
        let r = match t {
            Target::Deployment(n) => self.timed("get scale", deployments.get_scale(n)).await,
            Target::StatefulSet(n) => self.timed("get scale", sets.get_scale(n)).await,
        };
        r.map_err(map_err)
    }

    async fn patch_scale(&self, t: &Target, rv: Option<String>, replicas: u32) -> Result<Scale, kube::Error> {
        let patch = Patch::Merge(json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": replicas}}));
        let pp = PatchParams::default();
        let (deployments, sets) = (
            Api::<Deployment>::namespaced(self.client.clone(), &self.namespace),
            Api::<StatefulSet>::namespaced(self.client.clone(), &self.namespace),
        );
        match t {
            Target::Deployment(n) => self.timed("patch scale", deployments.patch_scale(n, &pp, &patch)).await,
            Target::StatefulSet(n) => self.timed("patch scale", sets.patch_scale(n, &pp, &patch)).await,
        }
    }

    /// What `check` verifies: the target of `process_type` exists, and this identity may get and patch its scale and
    /// list and patch its pods (asked as `kubectl auth can-i` asks: SelfSubjectAccessReviews). The missing rights,
    /// as `verb resource` (empty: all there).
    pub async fn check_access(&self, process_type: &str) -> Result<Vec<String>, PlatformError> {
        use k8s_openapi::api::authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        };
        let target = self.target(process_type);
        self.get_scale(&target).await?;
        let resource = match target {
            Target::Deployment(_) => "deployments",
            Target::StatefulSet(_) => "statefulsets",
        };
        let api = Api::<SelfSubjectAccessReview>::all(self.client.clone());
        let mut missing = Vec::new();
        for (verb, group, res, sub) in [
            ("get", "apps", resource, "scale"),
            ("patch", "apps", resource, "scale"),
            ("list", "", "pods", ""),
            ("patch", "", "pods", ""),
        ] {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(self.namespace.clone()),
                        verb: Some(verb.into()),
                        group: Some(group.into()),
                        resource: Some(res.into()),
                        subresource: (!sub.is_empty()).then(|| sub.to_owned()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let pp = kube::api::PostParams::default();
            let answer = self.timed("access review", api.create(&pp, &review)).await.map_err(map_err)?;
            if !answer.status.is_some_and(|s| s.allowed) {
                missing.push(if sub.is_empty() { format!("{verb} {res}") } else { format!("{verb} {res}/{sub}") });
            }
        }
        Ok(missing)
    }
}

#[async_trait]
impl Platform for KubernetesPlatform {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn telemetry(&self) -> dyno_scaler_core::PlatformTelemetry {
        dyno_scaler_core::PlatformTelemetry::new(self.requests.lock().expect("requests lock").clone(), None)
    }

    /// The replicas of `/scale`, the pods listed (to know which go first), where each host stands and the stop
    /// order: a StatefulSet's highest ordinal first; a Deployment's idle pods first (the hosts' busy ones last).
    async fn formation(&self, process_type: &str, hosts: &Hosts, _fresh: bool) -> Result<Formation, PlatformError> {
        self.hear(process_type, hosts);
        let scale = self.get_scale(&self.target(process_type)).await?;
        self.list_pods(process_type, &scale).await?;
        let quantity = scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
        let placements = hosts.named.iter().map(|h| (h.clone(), self.place(process_type, quantity, h))).collect();
        Ok(Formation::new(quantity).placed(placements, Some(self.victims(process_type, quantity, 0))))
    }

    /// Sets `/scale`'s replicas; a Deployment's scale-down first marks its victims (idle pods first, by the
    /// request's busy hosts) with the lowest pod-deletion cost, chosen from a fresh listing.
    async fn scale(&self, request: &ScaleRequest<'_>) -> Result<(), PlatformError> {
        let (process_type, quantity) = (request.process_type, request.quantity);
        self.hear(process_type, request.hosts);
        let target = self.target(process_type);
        for attempt in 0..=CONFLICT_RETRIES {
            let scale = self.get_scale(&target).await?;
            let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
            let mut victims = Vec::new();
            if quantity < current && matches!(target, Target::Deployment(_)) {
                // Choose the victims now, from a fresh listing, and write this shrink's order before the decrement.
                self.list_pods(process_type, &scale).await?;
                victims = self.order(process_type).into_iter().take((current - quantity) as usize).collect();
                self.mark_order(process_type, &victims).await?;
                tracing::info!(process_type, victims = ?victims, "marked the scale-down's victims");
            }
            match self.patch_scale(&target, scale.metadata.resource_version.clone(), quantity).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_RETRIES => {
                    tracing::debug!(process_type, attempt, "409 Conflict on /scale: reading again");
                }
                Err(e) => {
                    self.unmark_victims(process_type, &victims).await;
                    return Err(map_err(e));
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn list_processes(&self, process_type: &str) -> Result<Option<Vec<ProcessInfo>>, PlatformError> {
        let scale = self.get_scale(&self.target(process_type)).await?;
        let names = self.list_pods(process_type, &scale).await?;
        Ok(Some(names.into_iter().map(|name| ProcessInfo::new(name, "up")).collect()))
    }
}

impl KubernetesPlatform {
    /// Hears which pods the queue's workers keep busy, so idle ones go first.
    fn hear(&self, process_type: &str, hosts: &Hosts) {
        self.pods.lock().expect("pods lock").entry(process_type.to_owned()).or_default().busy = hosts.busy.clone();
    }

    fn victims(&self, process_type: &str, from: u32, to: u32) -> Vec<String> {
        if let Target::StatefulSet(n) = self.target(process_type) {
            return (to..from).rev().map(|i| format!("{n}-{i}")).collect();
        }
        self.order(process_type).into_iter().take(from.saturating_sub(to) as usize).collect()
    }

    fn place(&self, process_type: &str, current: u32, host: &str) -> Placement {
        if let Target::StatefulSet(n) = self.target(process_type) {
            return match host.strip_prefix(&format!("{n}-")).and_then(|i| i.parse::<u32>().ok()) {
                Some(i) if i < current => Placement::Stops(current - 1 - i),
                _ => Placement::Elsewhere,
            };
        }
        match self.order(process_type).iter().position(|p| p == host) {
            Some(k) => Placement::Stops(k as u32),
            None => Placement::Elsewhere,
        }
    }
}
