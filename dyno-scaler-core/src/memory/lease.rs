//! [`InMemoryLease`]: leases and pauses held in memory, for tests of several scalers sharing one process type.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::SourceError;
use crate::lease::{Lease, LeaseState, Pause};

#[derive(Debug, Default)]
struct Shared {
    /// Holder and expiry by process type.
    leases: BTreeMap<String, (String, SystemTime)>,
    pauses: BTreeMap<String, Pause>,
    campaigns: u64,
}

/// One process type's lease in a store held in memory; clones and [`InMemoryLease::other`] share the store.
/// Expiry reads the clock it was made with, so a [`ManualClock`](crate::ManualClock) drives it exactly.
///
/// ```
/// use dyno_scaler_core::lease::Lease;
/// use dyno_scaler_core::memory::InMemoryLease;
/// use dyno_scaler_core::ManualClock;
/// use std::{sync::Arc, time::Duration};
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// let clock = Arc::new(ManualClock::at_secs(0));
/// let lease = InMemoryLease::new(clock.clone(), "worker");
/// assert!(lease.campaign("a", Duration::from_secs(10)).await.unwrap().held);
/// assert_eq!(lease.campaign("b", Duration::from_secs(10)).await.unwrap().holder.as_deref(), Some("a"));
/// clock.advance(Duration::from_secs(10));
/// assert!(lease.campaign("b", Duration::from_secs(10)).await.unwrap().held, "a's lease ran out");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct InMemoryLease {
    clock: Arc<dyn Clock>,
    process_type: String,
    shared: Arc<Mutex<Shared>>,
    /// This handle's connection cut, if it is.
    cut: Arc<Mutex<Option<String>>>,
}

impl InMemoryLease {
    /// `process_type`'s lease in a new store.
    pub fn new(clock: Arc<dyn Clock>, process_type: &str) -> Self {
        Self { clock, process_type: process_type.to_owned(), shared: Arc::default(), cut: Arc::default() }
    }

    /// A new handle on `process_type`'s lease in the same store, as another scaler instance holds it (its
    /// connection is cut apart from this one's; clones share this one's).
    pub fn other(&self, process_type: &str) -> Self {
        Self { process_type: process_type.to_owned(), cut: Arc::default(), ..self.clone() }
    }

    /// Makes every call of this handle (and its clones) fail with `message`, as a connection to the store cut
    /// apart, or work again with `None`.
    pub fn set_failure(&self, message: Option<&str>) {
        *self.cut.lock().expect("lease lock") = message.map(str::to_owned);
    }

    /// How many campaigns reached the store.
    pub fn campaigns(&self) -> u64 {
        self.with(|s| s.campaigns)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        f(&mut self.shared.lock().expect("lease lock"))
    }

    fn reach(&self) -> Result<(), SourceError> {
        match &*self.cut.lock().expect("lease lock") {
            Some(m) => Err(SourceError::Unavailable { source_name: "memory".into(), message: m.clone(), cause: None }),
            None => Ok(()),
        }
    }

    fn state(&self, s: &Shared, me: Option<&str>) -> LeaseState {
        let now = self.clock.now();
        let holder = s.leases.get(&self.process_type).filter(|(_, until)| now < *until).map(|(h, _)| h.clone());
        let held = me.is_some() && holder.as_deref() == me;
        LeaseState { held, holder, pause: s.pauses.get(&self.process_type).cloned() }
    }
}

#[async_trait]
impl Lease for InMemoryLease {
    fn store(&self) -> &str {
        "memory"
    }

    async fn campaign(&self, me: &str, ttl: Duration) -> Result<LeaseState, SourceError> {
        let now = self.clock.now();
        self.with(|s| {
            self.reach()?;
            s.campaigns += 1;
            let free = self.state(s, None).holder.is_none_or(|h| h == me);
            if free {
                s.leases.insert(self.process_type.clone(), (me.to_owned(), now + ttl));
            }
            Ok(self.state(s, Some(me)))
        })
    }

    async fn read(&self) -> Result<LeaseState, SourceError> {
        self.with(|s| {
            self.reach()?;
            Ok(self.state(s, None))
        })
    }

    async fn release(&self, me: &str) -> Result<(), SourceError> {
        self.with(|s| {
            self.reach()?;
            if s.leases.get(&self.process_type).is_some_and(|(h, _)| h == me) {
                s.leases.remove(&self.process_type);
            }
            Ok(())
        })
    }

    async fn set_pause(&self, pause: Option<&Pause>) -> Result<(), SourceError> {
        self.with(|s| {
            self.reach()?;
            match pause {
                Some(p) => s.pauses.insert(self.process_type.clone(), p.clone()),
                None => s.pauses.remove(&self.process_type),
            };
            Ok(())
        })
    }
}
