//! Bad data must not freeze a process type: keys of the wrong type and garbage timestamps are skipped, counted
//! and named; the rest of the reading stands.

use std::time::{Duration, SystemTime};

use dyno_scaler_core::conformance::ConformanceBackend;
use dyno_scaler_core::{Direction, Policy, PolicyConfig, PolicyInput, PolicyState};
use dyno_scaler_test_support::unique;
use redis::AsyncCommands;

use super::Backend;

#[tokio::test]
async fn wrong_types_are_skipped_and_the_rest_is_read() {
    let b = Backend::new(unique("rbad"), None, false).await;
    let mut c = b.conn.clone();
    for _ in 0..30 {
        b.push_payload("images", r#"{"class":"ImageResizer","args":[1]}"#).await;
    }
    let _: () = c.sadd(b.k("queues"), "broken").await.unwrap();
    let _: () = c.hset(b.k("queue:broken"), "x", "1").await.unwrap();
    let id = b.worker("images", Some(Duration::from_secs(1)), Some("images")).await;
    let _: () = c.del(b.k(&format!("worker:{id}"))).await.unwrap();
    let _: () = c.hset(b.k(&format!("worker:{id}")), "x", "1").await.unwrap();
    let _: () = c.set(b.k("delayed_queue_schedule"), "oops").await.unwrap();
    let snap = b.source(None).await.queue.snapshot().await.expect("bad keys do not fail the reading");
    assert_eq!(snap.queues["images"].ready, 30);
    for key in ["queue:broken", "delayed_queue_schedule"] {
        assert!(snap.unreadable.iter().any(|u| u.contains(key)), "{key} named in {:?}", snap.unreadable);
    }
    assert!(snap.unreadable.iter().any(|u| u.contains(&format!("worker:{id}"))), "{:?}", snap.unreadable);
    let policy =
        Policy::new(PolicyConfig { max_workers: 5, down_delay: Duration::ZERO, ..PolicyConfig::classic() }).unwrap();
    let decide = |current| {
        let input = PolicyInput {
            process_type: "worker",
            snapshot: &snap,
            current,
            now: SystemTime::now(),
            platform_limit: None,
            placements: None,
            source_threads: None,
        };
        policy.decide(&input, &PolicyState::default()).0
    };
    assert_eq!(decide(0).to, 2, "work still scales up");
    assert_eq!(decide(5).direction(), Direction::Hold, "nothing scales down on a partial reading");
    // The worker set itself as a string.
    let _: () = c.del(b.k("workers")).await.unwrap();
    let _: () = c.set(b.k("workers"), "x").await.unwrap();
    let snap = b.source(None).await.queue.snapshot().await.unwrap();
    assert!(snap.unreadable.iter().any(|u| u.ends_with("workers: WRONGTYPE")), "{:?}", snap.unreadable);
}

#[tokio::test]
async fn garbage_timestamps_give_no_latency() {
    let b = Backend::new(unique("rts"), None, false).await;
    b.push_payload("a", r#"{"class":"X","args":[],"timestamp":0}"#).await;
    b.push_payload("b", r#"{"class":"X","args":[],"timestamp":99999999999}"#).await;
    let snap = b.source(None).await.queue.snapshot().await.unwrap();
    assert_eq!(snap.totals().ready, 2);
    assert_eq!(snap.totals().oldest_ready_age, None, "{:?}", snap.queues);
    assert_eq!(snap.skipped, 2);
}

#[tokio::test]
async fn latency_is_measured_against_the_exact_clock_not_the_second() {
    let b = Backend::new(unique("rexact"), None, false).await;
    // Wait until the clock is past the middle of a second, so that an age measured against the second rounded down
    // reads at least half a second low.
    let frac = || SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64().fract();
    while !(0.55..0.75).contains(&frac()) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let enqueued = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64() - 2.0;
    b.push_payload("images", &format!(r#"{{"class":"X","args":[],"timestamp":{enqueued:.3}}}"#)).await;
    let snap = b.source(None).await.queue.snapshot().await.unwrap();
    let age = snap.queues["images"].oldest_ready_age.expect("the payload has a time").as_secs_f64();
    assert!((1.99..2.5).contains(&age), "{age}");
}
