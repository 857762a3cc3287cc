//! What the scaler loop publishes to KEDA: the count each process type's last decision set. KEDA and the HPA
//! change the replicas; dyno-scaler only decides.

use std::collections::HashMap;
use std::sync::Mutex;

use dyno_scaler_core::{Platform, PlatformError};
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

    async fn current_quantity(&self, process_type: &str) -> Result<u32, PlatformError> {
        Ok(self.count(process_type))
    }

    async fn set_quantity(&self, process_type: &str, quantity: u32) -> Result<(), PlatformError> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match counts.get_mut(process_type) {
            Some(c) => *c = quantity,
            None => {
                counts.insert(process_type.to_owned(), quantity);
            }
        }
        Ok(())
    }
}
