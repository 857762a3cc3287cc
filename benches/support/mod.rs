//! What the Postgres benchmarks share: the median of timings and a snapshot's median over 30 reads.

use std::time::{Duration, Instant};

use dyno_scaler::core::QueueSource;

/// The median of `v`.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The median of 30 snapshots of `source` (after one to warm up), and the figures they read.
pub async fn time_snapshot(source: &dyn QueueSource) -> (Duration, String) {
    let s = source.snapshot().await.unwrap();
    let mut times = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        std::hint::black_box(source.snapshot().await.unwrap());
        times.push(t.elapsed());
    }
    let t = s.totals();
    (median(times), format!("ready {} running {} scheduled {}", t.ready, t.running, t.scheduled))
}
