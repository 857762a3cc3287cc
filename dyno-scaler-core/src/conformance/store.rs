//! The contract every [`Store`] keeps: its summaries, and its leases by the lease suite.

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;

/// Runs the store's contract: what it keeps comes back per process type, the last write winning (where it
/// [`remembers`](Store::remembers)), and its leases keep the lease suite ([`super::run_lease_conformance`]) with
/// `ttl`. The store holds nothing for the process types `alpha`, `beta` and `conformance*` at the start.
pub async fn run_store_conformance(store: Arc<dyn Store>, ttl: Duration) {
    remembers(store.as_ref()).await;
    let make = |pt: &str| store.lease(pt);
    super::run_lease_conformance(&make, ttl, store.remembers()).await;
}

/// What it keeps comes back, per process type, and the last write wins; a store that keeps nothing says so.
pub(super) async fn remembers(store: &dyn Store) {
    if !store.remembers() {
        store.remember("conformance", "{}").await.expect("a store that keeps nothing takes a summary");
        assert_eq!(store.recall("conformance").await.ok().flatten(), None, "it says it keeps nothing");
        return;
    }
    assert_eq!(store.recall("conformance").await.unwrap(), None, "nothing kept yet after reset");
    store.remember("conformance", r#"{"v":1}"#).await.unwrap();
    store.remember("conformance", r#"{"v":2}"#).await.unwrap();
    assert_eq!(store.recall("conformance").await.unwrap().as_deref(), Some(r#"{"v":2}"#));
    assert_eq!(store.recall("conformance-other").await.unwrap(), None);
}
