//! The Redis lease keeps the lease contract against a real server.

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::Secret;
use dyno_scaler_core::conformance::run_lease_conformance;
use dyno_scaler_core::lease::Lease;
use dyno_scaler_redis::lease::RedisLease;
use dyno_scaler_redis::{TlsVerify, connect};
use dyno_scaler_test_support::{redis_url, unique};

#[tokio::test]
async fn the_redis_lease_keeps_the_lease_contract() {
    let url = Secret::new(redis_url());
    let prefix = format!("{}:", unique("lease"));
    let make = |pt: &str| {
        let conn = connect("test", &url, TlsVerify::Full, Duration::from_secs(2)).unwrap();
        Arc::new(RedisLease::new(conn, ("test", &url), &prefix, pt)) as Arc<dyn Lease>
    };
    run_lease_conformance(&make, Duration::from_millis(400), true).await;
}

#[tokio::test]
async fn the_redis_store_keeps_the_store_contract() {
    let url = Secret::new(redis_url());
    let conn = connect("test", &url, TlsVerify::Full, Duration::from_secs(2)).unwrap();
    let store = dyno_scaler_redis::RedisStore::new(conn, "test", &url, &format!("{}:", unique("store")));
    dyno_scaler_core::conformance::run_store_conformance(Arc::new(store), Duration::from_millis(400)).await;
}
