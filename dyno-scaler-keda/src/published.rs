//! What the scaler loop publishes to KEDA: the count each process type's last decision set. KEDA and the HPA
//! change the replicas; dyno-scaler only decides.

use std::collections::HashMap;
use std::sync::Mutex;

use dyno_scaler_core::{Formation, Hosts, Platform, PlatformError, ScaleRequest};
use tonic::async_trait;

/// The [`Platform`] of the KEDA mode: setting a quantity publishes it as the count `GetMetrics` is answered from,
/// and the current quantity is the count last published. KEDA's external-scaler protocol carries no replica count
/// (a request names the ScaledObject and its metadata), and the HPA drives the replicas to the published count
/// (target 1 per replica, within the ScaledObject's bounds), so the last count published is what the policy
/// decides from. One number per process type, whatever the number of cycles: nothing else is kept.
#[derive(Debug, Default)]
pub struct Published {
    counts: Mutex<HashMap<String, u32>>,
}

impl Published {
    /// Nothing published yet: every process type at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The count last published for `process_type` (0 before any).
    pub fn count(&self, process_type: &str) -> u32 {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).get(process_type).copied().unwrap_or(0)
    }

    /// How many process types have a count (one entry each, never more).
    pub fn len(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing was published yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Platform for Published {
    fn name(&self) -> &str {
        "keda"
    }

    /// The count last published (KEDA's HPA owns the replicas; no host is placed).
    async fn formation(&self, process_type: &str, _hosts: &Hosts, _fresh: bool) -> Result<Formation, PlatformError> {
        Ok(Formation::new(self.count(process_type)))
    }

    /// Publishes the count for KEDA's next `GetMetrics`.
    async fn scale(&self, request: &ScaleRequest<'_>) -> Result<(), PlatformError> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match counts.get_mut(request.process_type) {
            Some(c) => *c = request.quantity,
            None => {
                counts.insert(request.process_type.to_owned(), request.quantity);
            }
        }
        Ok(())
    }
}
