//! The contract every [`Platform`] keeps, run by the in-memory platform and by each platform's faithful fake.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::PlatformError;
use crate::platform::{Hosts, Placement, Platform, PlatformExt};

/// A platform's backend the suite can arrange (a fake server, or the in-memory platform itself). Process types
/// used by the suite are `alpha` and `beta`.
#[async_trait]
pub trait PlatformBackend: Send + Sync {
    /// Makes `process_type` exist with `quantity` processes running.
    async fn add(&self, process_type: &str, quantity: u32);
    /// The quantity the backend holds for `process_type`, read around the platform.
    async fn quantity(&self, process_type: &str) -> Option<u32>;
    /// Caps `process_type` at `limit` (an account or plan limit); `false` when the backend has no such thing.
    async fn limit(&self, process_type: &str, limit: u32) -> bool;
    /// Whether the platform refuses a process type the backend does not have (the in-memory one has them all).
    fn knows_types(&self) -> bool;
    /// The platform under test, over the backend.
    fn platform(&self) -> Arc<dyn Platform>;
}

/// Runs every case of the contract; panics with a message naming the broken rule.
pub async fn run_platform_conformance(b: &dyn PlatformBackend) {
    let p = b.platform();
    reads_what_it_sets(b, p.as_ref()).await;
    process_types_apart(b, p.as_ref()).await;
    victims_and_placements_agree(b, p.as_ref()).await;
    refuses_what_it_cannot(b, p.as_ref()).await;
}

async fn reads_what_it_sets(b: &dyn PlatformBackend, p: &dyn Platform) {
    b.add("alpha", 2).await;
    assert_eq!(p.current_quantity("alpha").await.expect("read"), 2, "reads the quantity the backend holds");
    for q in [5, 5, 1, 0] {
        p.set_quantity("alpha", q).await.unwrap_or_else(|e| panic!("set {q}: {e}"));
        assert_eq!(b.quantity("alpha").await, Some(q), "sets the absolute quantity {q} (setting it twice is fine)");
        assert_eq!(p.current_quantity("alpha").await.expect("read"), q, "reads back {q}");
    }
    p.set_quantity("alpha", 3).await.expect("set");
    if let Some(list) = p.list_processes("alpha").await.expect("list") {
        assert_eq!(list.len(), 3, "lists the processes it runs: {list:?}");
        let mut names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 3, "process names are distinct: {list:?}");
    }
}

async fn process_types_apart(b: &dyn PlatformBackend, p: &dyn Platform) {
    b.add("alpha", 3).await;
    b.add("beta", 1).await;
    p.set_quantity("alpha", 0).await.expect("set");
    assert_eq!(p.current_quantity("beta").await.expect("read"), 1, "another process type is left alone");
    assert_eq!(b.quantity("beta").await, Some(1));
}

async fn victims_and_placements_agree(b: &dyn PlatformBackend, p: &dyn Platform) {
    b.add("alpha", 4).await;
    let mut hosts = Hosts::default();
    if let Some(list) = p.list_processes("alpha").await.expect("list") {
        hosts.named.extend(list.into_iter().map(|i| i.name));
    }
    hosts.named.extend(["alpha.1", "alpha.2", "alpha.3", "alpha.4", "beta.1"].map(String::from));
    let f = p.formation("alpha", &hosts, true).await.expect("read");
    assert_eq!(f.quantity, 4);
    assert_eq!(f.placements.len(), hosts.named.len(), "every host of the request is placed: {f:?}");
    let Some(victims) = f.victims(1) else {
        // A platform that cannot name its victims places nobody of its own.
        for i in 1..=4 {
            assert_eq!(f.placements.get(&format!("alpha.{i}")), Some(&Placement::Unknown));
        }
        return;
    };
    assert_eq!(victims.len(), 3, "4 -> 1 stops three: {victims:?}");
    for v in &victims {
        match f.placements.get(v) {
            Some(Placement::Stops(k)) => assert!(*k < 3, "victim {v} is among the first three to stop, not {k}"),
            other => panic!("victim {v} is placed {other:?}"),
        }
    }
    if let Some(list) = p.list_processes("alpha").await.expect("list") {
        for keep in list.iter().filter(|i| !victims.contains(&i.name)) {
            match f.placements.get(&keep.name) {
                Some(Placement::Stops(k)) => assert!(*k >= 3, "{} survives 4 -> 1 yet is placed {k}", keep.name),
                other => panic!("{} is placed {other:?}", keep.name),
            }
        }
    }
    assert_eq!(f.placements.get("beta.1"), Some(&Placement::Elsewhere), "another type's process is elsewhere");
    assert_eq!(f.victims(4).map(|v| v.len()), Some(0), "no change stops nobody");
}

async fn refuses_what_it_cannot(b: &dyn PlatformBackend, p: &dyn Platform) {
    if b.knows_types() {
        let e = p.current_quantity("gamma").await.expect_err("an unknown process type is an error");
        assert!(matches!(e, PlatformError::NotFound { .. }), "unknown type: {e:?}");
        assert!(e.is_fatal(), "and not worth asking again: {e:?}");
        let e = p.set_quantity("gamma", 1).await.expect_err("setting an unknown process type is an error");
        assert!(matches!(e, PlatformError::NotFound { .. }), "unknown type: {e:?}");
    }
    b.add("alpha", 1).await;
    if b.limit("alpha", 2).await {
        let e = p.set_quantity("alpha", 3).await.expect_err("above the limit");
        match e {
            PlatformError::LimitExceeded { requested, .. } => assert_eq!(requested, 3),
            other => panic!("above the limit: {other:?}"),
        }
        assert_eq!(b.quantity("alpha").await, Some(1), "a refused change changes nothing");
        p.set_quantity("alpha", 2).await.expect("at the limit");
    }
}
