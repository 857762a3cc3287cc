//! dyno-scaler's [`Platform`] for Kubernetes: scales a Deployment or StatefulSet through its `/scale` subresource
//! (with the read `resourceVersion`; a 409 is read again and retried) and, unlike Heroku, chooses the pods a
//! scale-down stops: idle pods first (as the queue's worker records say, a Sidekiq process naming its pod), marked
//! with a low `controller.kubernetes.io/pod-deletion-cost` just before the decrement, so the ReplicaSet deletes them.
#![deny(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use dyno_scaler_core::{Placement, Platform, PlatformError, ProcessInfo, Snapshot};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

#[cfg(feature = "fake")]
pub mod fake;

/// The annotation the ReplicaSet controller ranks pods by on a scale-down (lower goes first).
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// The cost given to the chosen victims.
pub const VICTIM_COST: i32 = -1000;
/// The cost given to the pods the queue says are busy at a shrink, so the ReplicaSet takes them last whatever else
/// it ranks by.
pub const BUSY_COST: i32 = 1000;
/// How many times a write refused with 409 Conflict is read again and retried.
const CONFLICT_RETRIES: u32 = 5;

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

/// One process type's pods as last listed, and the hosts the queue says are busy.
#[derive(Debug, Default, Clone)]
struct Pods {
    /// Pod names with their deletion cost and age rank (higher: newer).
    listed: Vec<(String, i32, usize)>,
    /// Each pod with the mark of ours it carries (`VICTIM_COST`, `BUSY_COST`), if any.
    marks: Vec<(String, Option<i32>)>,
    busy: BTreeSet<String>,
}

impl Pods {
    /// The order the pods go in on a scale-down: idle before busy, then the lowest deletion cost, the newest first.
    fn order(&self) -> Vec<String> {
        let mut pods = self.listed.clone();
        pods.sort_by_key(|(name, cost, age)| (self.busy.contains(name), *cost, std::cmp::Reverse(*age)));
        pods.into_iter().map(|(n, _, _)| n).collect()
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
        Self { client, namespace: namespace.into(), targets, pods: Mutex::default(), requests: Mutex::default() }
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
        let r = match t {
            Target::Deployment(n) => {
                Api::<Deployment>::namespaced(self.client.clone(), &self.namespace).get_scale(n).await
            }
            Target::StatefulSet(n) => {
                Api::<StatefulSet>::namespaced(self.client.clone(), &self.namespace).get_scale(n).await
            }
        };
        self.counted(r).map_err(map_err)
    }

    async fn patch_scale(&self, t: &Target, rv: Option<String>, replicas: u32) -> Result<Scale, kube::Error> {
        let patch = Patch::Merge(json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": replicas}}));
        let pp = PatchParams::default();
        let r = match t {
            Target::Deployment(n) => {
                Api::<Deployment>::namespaced(self.client.clone(), &self.namespace).patch_scale(n, &pp, &patch).await
            }
            Target::StatefulSet(n) => {
                Api::<StatefulSet>::namespaced(self.client.clone(), &self.namespace).patch_scale(n, &pp, &patch).await
            }
        };
        self.counted(r)
    }

    /// Lists the pods of `process_type` (by the scale's selector) into the cache.
    async fn list_pods(&self, process_type: &str, scale: &Scale) -> Result<Vec<String>, PlatformError> {
        let selector = scale.status.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        // Metadata only (`as=PartialObjectMetadataList`): what ranks the pods, without their specs on the wire or
        // the code to read them in the binary.
        let pods = self.counted(api.list_metadata(&ListParams::default().labels(&selector)).await).map_err(map_err)?;
        // (name, deletion cost, creation time, resource version), sorted oldest first for the age rank.
        let mut listed: Vec<_> = pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| {
                let m = &p.metadata;
                let cost = m.annotations.as_ref().and_then(|a| a.get(DELETION_COST)).and_then(|c| c.parse().ok());
                let rv = m.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
                (m.name.clone().unwrap_or_default(), cost, m.creation_timestamp.clone(), rv)
            })
            .collect();
        // Our own marks say what an earlier shrink wanted, not what this one should: they rank as neutral, and the
        // next shrink rewrites them.
        let ours = |c: &Option<i32>| c.filter(|c| *c == VICTIM_COST || *c == BUSY_COST);
        let marks = listed.iter().map(|(n, c, _, _)| (n.clone(), ours(c))).collect();
        for pod in &mut listed {
            if ours(&pod.1).is_some() {
                pod.1 = None;
            }
        }
        listed.sort_by(|a, b| (&a.2, a.3).cmp(&(&b.2, b.3)));
        let names = listed.iter().map(|p| p.0.clone()).collect();
        let mut cache = self.pods.lock().expect("pods lock");
        let entry = cache.entry(process_type.to_owned()).or_default();
        entry.listed = listed.into_iter().enumerate().map(|(i, (n, c, _, _))| (n, c.unwrap_or(0), i)).collect();
        entry.marks = marks;
        Ok(names)
    }

    fn order(&self, process_type: &str) -> Vec<String> {
        self.pods.lock().expect("pods lock").get(process_type).map(Pods::order).unwrap_or_default()
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
            let answer = api.create(&kube::api::PostParams::default(), &review).await.map_err(map_err)?;
            if !answer.status.is_some_and(|s| s.allowed) {
                missing.push(if sub.is_empty() { format!("{verb} {res}") } else { format!("{verb} {res}/{sub}") });
            }
        }
        Ok(missing)
    }

    /// Writes this shrink's order onto the pods: the victims lowest, the busy pods highest, and every other pod
    /// that still carries one of our marks back to neutral (the annotation removed), so no mark of an earlier
    /// shrink (one whose decrement failed, or was overtaken) ranks a pod that is busy now among the first to go.
    /// Only pods whose mark changes are patched.
    async fn mark_order(&self, process_type: &str, victims: &[String]) -> Result<(), PlatformError> {
        let (marks, busy) = {
            let cache = self.pods.lock().expect("pods lock");
            cache.get(process_type).map(|p| (p.marks.clone(), p.busy.clone())).unwrap_or_default()
        };
        for (pod, now) in marks {
            let want = if victims.contains(&pod) {
                Some(VICTIM_COST)
            } else if busy.contains(&pod) {
                Some(BUSY_COST)
            } else {
                None
            };
            if want != now {
                self.set_cost(process_type, &pod, want).await.map_err(map_err)?;
            }
        }
        Ok(())
    }

    /// After a decrement that did not happen: the victims back to neutral (best effort; the next shrink rewrites
    /// every mark anyway), so a replica change by someone else does not take a pod marked for a shrink that failed.
    async fn unmark_victims(&self, process_type: &str, victims: &[String]) {
        for v in victims {
            if let Err(e) = self.set_cost(process_type, v, None).await {
                tracing::warn!(process_type, pod = %v, error = %e, "cannot clear the mark of a victim whose shrink failed; the next shrink rewrites it");
            }
        }
    }

    /// Writes `cost` as `pod`'s deletion cost (`None`: removes the annotation) and remembers it as the pod's mark.
    async fn set_cost(&self, process_type: &str, pod: &str, cost: Option<i32>) -> Result<(), kube::Error> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        let patch = Patch::Merge(json!({"metadata": {"annotations": {DELETION_COST: cost.map(|c| c.to_string())}}}));
        self.counted(api.patch_metadata(pod, &PatchParams::default(), &patch).await)?;
        let mut cache = self.pods.lock().expect("pods lock");
        if let Some(m) = cache.get_mut(process_type).and_then(|p| p.marks.iter_mut().find(|(n, _)| n == pod)) {
            m.1 = cost;
        }
        Ok(())
    }
}

#[async_trait]
impl Platform for KubernetesPlatform {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn telemetry(&self) -> dyno_scaler_core::PlatformTelemetry {
        dyno_scaler_core::PlatformTelemetry {
            requests: self.requests.lock().expect("requests lock").clone(),
            rate_limit_remaining: None,
        }
    }

    async fn current_quantity(&self, process_type: &str) -> Result<u32, PlatformError> {
        let scale = self.get_scale(&self.target(process_type)).await?;
        self.list_pods(process_type, &scale).await?;
        Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32)
    }

    async fn set_quantity(&self, process_type: &str, quantity: u32) -> Result<(), PlatformError> {
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

    /// Hears which pods the queue's workers keep busy, so idle ones go first.
    fn hear(&self, process_type: &str, snapshot: &Snapshot) {
        let busy = snapshot.workers.iter().flatten().filter(|w| w.busy > 0).filter_map(|w| w.dyno.clone()).collect();
        self.pods.lock().expect("pods lock").entry(process_type.to_owned()).or_default().busy = busy;
    }

    fn victims(&self, process_type: &str, from: u32, to: u32) -> Option<Vec<String>> {
        if let Target::StatefulSet(n) = self.target(process_type) {
            return Some((to..from).rev().map(|i| format!("{n}-{i}")).collect());
        }
        Some(self.order(process_type).into_iter().take(from.saturating_sub(to) as usize).collect())
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

    async fn list_processes(&self, process_type: &str) -> Result<Option<Vec<ProcessInfo>>, PlatformError> {
        let scale = self.get_scale(&self.target(process_type)).await?;
        let names = self.list_pods(process_type, &scale).await?;
        Ok(Some(names.into_iter().map(|name| ProcessInfo { name, state: "up".into() }).collect()))
    }
}
