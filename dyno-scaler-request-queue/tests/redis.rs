//! The request-queue source against a real Redis, its keys written as the gem's middleware writes them (the e2e
//! test runs the middleware itself under Puma): the window's complete seconds merged, the unsettled ones left out,
//! a missing middleware unreadable, no traffic a reading of zero.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyno_scaler_core::QueueSource;
use dyno_scaler_request_queue::{RequestQueueConfig, RequestQueueSource};
use dyno_scaler_test_support::{redis_url, unique};

async fn conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

fn source(ns: &str) -> RequestQueueSource {
    let mut c = RequestQueueConfig::new(redis_url());
    c.namespace = ns.to_owned();
    c.window = Duration::from_secs(4);
    RequestQueueSource::new(c).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A second's hash: `reqs` requests of `queue_ms` each (bucket `h`), 40 ms in the app.
async fn second(c: &mut redis::aio::MultiplexedConnection, ns: &str, s: u64, reqs: u64, queue_ms: u64, h: usize) {
    let key = format!("{ns}:dyno-scaler:rq:web:{s}");
    let fields: Vec<(String, u64)> = vec![
        ("reqs".into(), reqs),
        ("n".into(), reqs),
        ("sum".into(), reqs * queue_ms * 1000),
        ("max".into(), queue_ms * 1000),
        ("app".into(), reqs * 40_000),
        (format!("h{h}"), reqs),
    ];
    let _: () = redis::cmd("HSET").arg(&key).arg(fields).query_async(c).await.unwrap();
    let _: () = redis::cmd("EXPIRE").arg(&key).arg(120).query_async(c).await.unwrap();
}

#[tokio::test]
async fn the_window_of_complete_seconds_is_merged_and_the_unsettled_ones_left_out() {
    let ns = unique("rq");
    let mut c = conn().await;
    let t = now();
    // 4 complete seconds of 25 requests at 30 ms (bucket h5: 25 ms < q <= 50 ms)...
    for s in t - 5..=t - 2 {
        second(&mut c, &ns, s, 25, 30, 5).await;
    }
    // ... and the current and the previous second (still being flushed): 1000 slow requests, not read.
    for s in [t - 1, t] {
        second(&mut c, &ns, s, 1000, 2000, 10).await;
    }
    let _: () =
        redis::cmd("SET").arg(format!("{ns}:dyno-scaler:rq:web:alive")).arg(t).query_async(&mut c).await.unwrap();
    let snap = source(&ns).snapshot().await.unwrap();
    let r = snap.requests.expect("request stats");
    // A second may pass between the writes and the reading: the window then holds 3 or 4 of the settled seconds.
    assert!(r.requests == 100 || r.requests == 75, "{r:?}");
    assert!((r.service_secs - 0.040).abs() < 1e-9, "{r:?}");
    assert!((r.queue_mean_secs - 0.030).abs() < 1e-9, "{r:?}");
    assert!(
        r.queue_pct_secs > 0.025 && r.queue_pct_secs <= 0.030,
        "the p95 within the bucket, never above the max: {r:?}"
    );
    let q = &snap.queues["requests"];
    assert_eq!(q.running, (r.rate * 0.040).round() as u64);
    assert!(snap.unreadable.is_empty());
}

#[tokio::test]
async fn without_the_middleware_the_reading_is_unreadable_and_with_it_no_traffic_is_zero() {
    let ns = unique("rq");
    let snap = source(&ns).snapshot().await.unwrap();
    assert!(snap.requests.is_none() && snap.unreadable.len() == 1, "{snap:?}");
    assert!(snap.unreadable[0].contains("DynoScaler::QueueTime"), "{:?}", snap.unreadable);
    let mut c = conn().await;
    let _: () =
        redis::cmd("SET").arg(format!("{ns}:dyno-scaler:rq:web:alive")).arg(1).query_async(&mut c).await.unwrap();
    let snap = source(&ns).snapshot().await.unwrap();
    let r = snap.requests.expect("a reading");
    assert_eq!((r.requests, r.rate), (0, 0.0));
    assert!(snap.unreadable.is_empty());
}

#[tokio::test]
async fn a_field_or_a_value_that_is_not_a_count_is_skipped_and_counted() {
    let ns = unique("rq");
    let mut c = conn().await;
    let t = now();
    second(&mut c, &ns, t - 3, 10, 5, 2).await;
    let _: () = redis::cmd("HSET")
        .arg(format!("{ns}:dyno-scaler:rq:web:{}", t - 2))
        .arg("h99")
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let many = format!("{ns}:dyno-scaler:rq:web:{}", t - 4);
    let _: () = redis::cmd("HSET").arg(many).arg("reqs").arg("many").query_async(&mut c).await.unwrap();
    let _: () =
        redis::cmd("SET").arg(format!("{ns}:dyno-scaler:rq:web:alive")).arg(t).query_async(&mut c).await.unwrap();
    let snap = source(&ns).snapshot().await.unwrap();
    assert_eq!(snap.skipped, 2, "{snap:?}");
    assert_eq!(snap.requests.unwrap().requests, 10);
}
