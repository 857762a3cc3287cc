//! [`InMemoryStore`]: a [`Store`] held in memory: leases, pauses and learned summaries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::clock::{Clock, SystemClock};
use crate::error::SourceError;
use crate::lease::Lease;
use crate::store::Store;

use super::InMemoryLease;

/// A store held in memory; clones share it. Its leases expire by the clock it was made with.
#[derive(Debug, Clone)]
pub struct InMemoryStore {
    leases: InMemoryLease,
    learned: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store whose leases expire by `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self { leases: InMemoryLease::new(clock, ""), learned: Arc::default() }
    }

    /// `process_type`'s lease as a concrete handle (to cut its connection in a test: [`InMemoryLease::set_failure`]).
    pub fn lease_handle(&self, process_type: &str) -> InMemoryLease {
        self.leases.other(process_type)
    }

    /// Forgets every learned summary.
    pub fn forget(&self) {
        self.learned.lock().expect("store lock").clear();
    }
}

#[async_trait]
impl Store for InMemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    fn lease(&self, process_type: &str) -> Arc<dyn Lease> {
        Arc::new(self.lease_handle(process_type))
    }

    async fn remember(&self, process_type: &str, summary: &str) -> Result<(), SourceError> {
        self.learned.lock().expect("store lock").insert(process_type.to_owned(), summary.to_owned());
        Ok(())
    }

    async fn recall(&self, process_type: &str) -> Result<Option<String>, SourceError> {
        Ok(self.learned.lock().expect("store lock").get(process_type).cloned())
    }
}
