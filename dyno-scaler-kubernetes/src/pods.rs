//! The pods of a process type: listed by the scale's selector, ranked for a scale-down (idle before busy, then
//! the lowest deletion cost, the newest first), and the order of a shrink written onto them as deletion costs.

use std::collections::BTreeSet;

use dyno_scaler_core::PlatformError;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::{BUSY_COST, DELETION_COST, KubernetesPlatform, VICTIM_COST, map_err};

/// One process type's pods as last listed, and the hosts the queue says are busy.
#[derive(Debug, Default, Clone)]
pub(crate) struct Pods {
    /// Pod names with their deletion cost and age rank (higher: newer).
    listed: Vec<(String, i32, usize)>,
    /// Each pod with the mark of ours it carries (`VICTIM_COST`, `BUSY_COST`), if any.
    marks: Vec<(String, Option<i32>)>,
    pub(crate) busy: BTreeSet<String>,
}

impl Pods {
    /// The order the pods go in on a scale-down: idle before busy, then the lowest deletion cost, the newest first.
    pub(crate) fn order(&self) -> Vec<String> {
        let mut pods = self.listed.clone();
        pods.sort_by_key(|(name, cost, age)| (self.busy.contains(name), *cost, std::cmp::Reverse(*age)));
        pods.into_iter().map(|(n, _, _)| n).collect()
    }
}

impl KubernetesPlatform {
    /// Lists the pods of `process_type` (by the scale's selector) into the cache.
    pub(crate) async fn list_pods(&self, process_type: &str, scale: &Scale) -> Result<Vec<String>, PlatformError> {
        let selector = scale.status.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        // Metadata only (`as=PartialObjectMetadataList`): what ranks the pods, without their specs on the wire or
        // the code to read them in the binary.
        let params = ListParams::default().labels(&selector);
        let pods = self.timed("list pods", api.list_metadata(&params)).await.map_err(map_err)?;
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

    pub(crate) fn order(&self, process_type: &str) -> Vec<String> {
        self.pods.lock().expect("pods lock").get(process_type).map(Pods::order).unwrap_or_default()
    }

    /// Writes this shrink's order onto the pods: the victims lowest, the busy pods highest, and every other pod
    /// that still carries one of our marks back to neutral (the annotation removed), so no mark of an earlier
    /// shrink (one whose decrement failed, or was overtaken) ranks a pod that is busy now among the first to go.
    /// Only pods whose mark changes are patched.
    pub(crate) async fn mark_order(&self, process_type: &str, victims: &[String]) -> Result<(), PlatformError> {
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
    pub(crate) async fn unmark_victims(&self, process_type: &str, victims: &[String]) {
        for v in victims {
            if let Err(e) = self.set_cost(process_type, v, None).await {
                tracing::warn!(process_type, pod = %v, error = %e, "cannot clear the mark of a victim whose shrink failed; the next shrink rewrites it");
            }
        }
    }

    /// Writes `cost` as `pod`'s deletion cost (`None`: removes the annotation) and remembers it as the pod's mark.
    pub(crate) async fn set_cost(&self, process_type: &str, pod: &str, cost: Option<i32>) -> Result<(), kube::Error> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        let patch = Patch::Merge(json!({"metadata": {"annotations": {DELETION_COST: cost.map(|c| c.to_string())}}}));
        self.timed("patch pod", api.patch_metadata(pod, &PatchParams::default(), &patch)).await?;
        let mut cache = self.pods.lock().expect("pods lock");
        if let Some(m) = cache.get_mut(process_type).and_then(|p| p.marks.iter_mut().find(|(n, _)| n == pod)) {
            m.1 = cost;
        }
        Ok(())
    }
}
