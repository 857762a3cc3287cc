//! Bad data must not freeze a process type: a key of the wrong type, garbage timestamps. The bad part is skipped,
//! counted and named; the rest of the reading stands (work still scales up, nothing scales down).

use std::time::Duration;

use dyno_scaler_core::conformance::ConformanceBackend;
use dyno_scaler_core::{Direction, Policy, PolicyConfig, PolicyInput, PolicyState, Snapshot};
use dyno_scaler_test_support::unique;
use redis::AsyncCommands;

use super::{Backend, Version, now};

fn decide(snap: &Snapshot, current: u32) -> dyno_scaler_core::Decision {
    let policy =
        Policy::new(PolicyConfig { max_workers: 5, down_delay: Duration::ZERO, ..PolicyConfig::classic() }).unwrap();
    let input = PolicyInput {
        process_type: "worker",
        snapshot: snap,
        current,
        now: std::time::SystemTime::now(),
        platform_limit: None,
        placements: None,
        source_threads: None,
    };
    policy.decide(&input, &PolicyState::default()).0
}

async fn backend() -> Backend {
    Backend::new(Some(unique("bad")), None, Version::V6).await
}

#[tokio::test]
async fn a_queue_key_of_the_wrong_type_is_skipped_and_named() {
    let b = backend().await;
    let mut c = b.conn.clone();
    for _ in 0..30 {
        b.push_raw("default", &b.job("default", now() - 1.0, Some(now() - 1.0))).await;
    }
    // A `queues` member whose key is a hash.
    let _: () = c.sadd(b.k("queues"), "broken").await.unwrap();
    let _: () = c.hset(b.k("queue:broken"), "oops", "1").await.unwrap();
    let source = b.source(None).await;
    let snap = source.queue.snapshot().await.expect("one bad key does not fail the reading");
    assert_eq!(snap.queues["default"].ready, 30, "the rest of the reading stands");
    assert!(snap.unreadable.iter().any(|u| u.contains("queue:broken")), "{:?}", snap.unreadable);
    assert!(snap.skipped >= 1);
    // Work still scales up; nothing scales down while part of the reading is missing.
    assert_eq!(decide(&snap, 0).to, 2);
    let d = decide(&snap, 5);
    assert_eq!(d.direction(), Direction::Hold, "{}", d.reason);
    assert!(d.reason.contains("could not be read"), "{}", d.reason);
}

#[tokio::test]
async fn processes_stored_as_a_list_and_work_as_a_string_are_skipped() {
    let b = backend().await;
    let mut c = b.conn.clone();
    b.push_raw("default", &b.job("default", now(), Some(now()))).await;
    let id = b.process("worker.1", "default", 1, 1.0).await;
    // The process's work hash replaced by a string: its busy count still reads, its jobs cannot.
    let _: () = c.del(b.k(&format!("{id}:workers"))).await.unwrap();
    let _: () = c.set(b.k(&format!("{id}:workers")), "garbage").await.unwrap();
    let snap = b.source(None).await.queue.snapshot().await.unwrap();
    assert_eq!(snap.workers.as_ref().unwrap().len(), 1);
    assert!(snap.unreadable.iter().any(|u| u.ends_with(":workers: WRONGTYPE")), "{:?}", snap.unreadable);
    // The whole `processes` set as a list.
    let _: () = c.del(b.k("processes")).await.unwrap();
    let _: () = c.rpush(b.k("processes"), &id).await.unwrap();
    let snap = b.source(None).await.queue.snapshot().await.unwrap();
    assert_eq!(snap.queues["default"].ready, 1);
    assert!(snap.unreadable.iter().any(|u| u.ends_with("processes: WRONGTYPE")), "{:?}", snap.unreadable);
    assert_eq!(decide(&snap, 3).direction(), Direction::Hold);
}

#[tokio::test]
async fn a_schedule_set_of_the_wrong_type_and_garbage_timestamps() {
    let b = backend().await;
    let mut c = b.conn.clone();
    let _: () = c.set(b.k("retry"), "not a zset").await.unwrap();
    // Timestamps 0 and far in the future are garbage, not a 56-year-old job.
    b.push_raw("default", &b.job("default", 0.0, Some(0.0))).await;
    b.push_raw("zero", r#"{"queue":"zero","class":"X","args":[],"enqueued_at":-5}"#).await;
    b.push_raw("future", &b.job("future", now() + 400_000.0, Some(now() + 400_000.0))).await;
    // A due schedule entry scored 0: due (ready), but no latency from it.
    let _: () = c.zadd(b.k("schedule"), b.job("sched", now(), None), 0).await.unwrap();
    let snap = b.source(None).await.queue.snapshot().await.unwrap();
    let t = snap.totals();
    assert_eq!(t.ready, 4, "every job is still counted: {:?}", snap.queues);
    assert_eq!(t.oldest_ready_age, None, "no latency from garbage timestamps: {:?}", snap.queues);
    assert!(snap.skipped >= 3, "garbage timestamps and the bad key are counted: {}", snap.skipped);
    assert!(snap.unreadable.iter().any(|u| u.contains("retry")), "{:?}", snap.unreadable);
    // A latency target does not scale to max on garbage.
    let policy = Policy::new(PolicyConfig {
        max_workers: 10,
        rules: vec![dyno_scaler_core::DemandRule::LatencyTarget(Duration::from_secs(30))],
        ..PolicyConfig::classic()
    })
    .unwrap();
    let input = PolicyInput::new("worker", &snap, 1);
    assert!(policy.decide(&input, &PolicyState::default()).0.to < 10);
}
