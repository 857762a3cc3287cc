//! The `Store` trait: where a process type's lease, pause and learned summary are kept, apart from the queue.
//!
//! By default a source's own store serves (the Redis of Sidekiq and Resque, the database of the Postgres sources),
//! so nothing more needs configuring; a source with no store of its own (an HTTP API, a custom source) can be
//! given one ([`crate::Source::with_store`]) and still be leased and paused.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::SourceError;
use crate::lease::Lease;

/// A store every scaler instance of an app reaches.
///
/// ```
/// use dyno_scaler_core::{InMemoryStore, Store};
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// let store = InMemoryStore::new();
/// store.remember("worker", r#"{"v":1}"#).await.unwrap();
/// assert_eq!(store.recall("worker").await.unwrap().as_deref(), Some(r#"{"v":1}"#));
/// let lease = store.lease("worker");
/// assert!(lease.campaign("me", std::time::Duration::from_secs(15)).await.unwrap().held);
/// # });
/// ```
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// What it is (`redis`, `postgres`, `memory`).
    fn name(&self) -> &str;

    /// Whether it keeps learned summaries and pauses (a Postgres store does only with a learned table).
    fn remembers(&self) -> bool {
        true
    }

    /// The lease (and pause) of `process_type`: a handle of its own, as one scaler instance holds it.
    fn lease(&self, process_type: &str) -> Arc<dyn Lease>;

    /// Keeps `summary` (what the policy learned for `process_type`: a few KB of JSON); the last write wins.
    async fn remember(&self, process_type: &str, summary: &str) -> Result<(), SourceError>;

    /// The summary last kept for `process_type`, if any.
    async fn recall(&self, process_type: &str) -> Result<Option<String>, SourceError>;
}
