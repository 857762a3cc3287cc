//! `record`'s reckoning: arrivals from counts, busy time from lagging heartbeats.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyno_scaler_core::{QueueStats, Snapshot, WorkerInfo};
use dyno_scaler_simulator::record::Recorder;
use dyno_scaler_simulator::trace;

const T0: u64 = 1_800_000_000;

fn at(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_secs_f64(secs)
}

/// One Sidekiq process of 5 threads beating every 5 s (at 3, 8, 13, ...): `busy` and the counter as published at its
/// last beat, the queue read live.
fn reading(t: f64, ready: u64, busy_at: impl Fn(f64) -> u32, done_at: impl Fn(f64) -> u64) -> Snapshot {
    let beat = if t < 3.0 { None } else { Some(3.0 + ((t - 3.0) / 5.0).floor() * 5.0) };
    let busy = beat.map_or(0, &busy_at);
    let mut s = Snapshot::default()
        .with_workers(vec![WorkerInfo::new("worker.1:4:abc", Some("worker.1".into()), busy).with_beat(beat.map(at))]);
    s.processed = Some(100 + beat.map_or(0, &done_at));
    s.threads = Some(5);
    s.add("default", QueueStats::new(ready, u64::from(busy), 0));
    s
}

#[test]
fn waiting_jobs_keep_every_thread_busy_and_a_stale_beat_is_settled_by_the_next() {
    // 50 jobs of 1.2 s pushed at 1 s on 5 threads: every thread busy until 13 s, the queue empty from 11.8 s.
    let busy_at = |b: f64| if b < 13.0 { 5 } else { 0 };
    let done_at = |b: f64| (((b - 1.0) / 1.2).floor() as u64 * 5).min(50);
    let ready_at = |t: f64| if t < 1.0 { 0 } else { 50u64.saturating_sub(5 + ((t - 1.0) / 1.2).floor() as u64 * 5) };
    let mut r = Recorder::default();
    let mut t = 0.0;
    while t <= 20.0 {
        r.observe(at(t), &reading(t, ready_at(t), busy_at, done_at));
        t += 0.25;
    }
    assert_eq!(r.jobs(), 50);
    // The truth is 60 job-seconds. Holding each beat's count until the next would count 5 threads from the
    // first beat (3 s) to the one after the end (18 s): 75. With the waiting rule and the next beat settling the
    // rest, the error is the last jobs' run after the queue emptied (1.2 s at most).
    let busy = r.busy_secs();
    assert!((busy - 60.0).abs() <= 6.0, "{busy}");
    let t = trace::load_csv("r.csv", &r.csv()).unwrap();
    assert_eq!(t.jobs.len(), 50);
    assert!((t.work().as_secs_f64() - busy).abs() < 0.1, "the jobs' run times add up to the busy time");
    // The jobs fetched before the first beat show it: they are counted when it comes, within a heartbeat.
    assert!(t.jobs.iter().all(|j| j.arrived_at <= 5.0), "they arrived within a heartbeat");
}

#[test]
fn a_dip_in_the_counts_is_not_counted_twice() {
    // A job fetched between two beats leaves `ready` before `busy` shows it: the count dips, then returns.
    let mut r = Recorder::default();
    let snap = |ready: u64, running: u64, processed: u64| {
        let mut s = Snapshot::default();
        s.processed = Some(processed);
        s.add("default", QueueStats::new(ready, running, 0));
        s
    };
    r.observe(at(0.0), &snap(0, 0, 0));
    r.observe(at(1.0), &snap(3, 0, 0)); // three came
    r.observe(at(2.0), &snap(1, 0, 0)); // two fetched, not yet published
    r.observe(at(3.0), &snap(1, 2, 0)); // published
    r.observe(at(4.0), &snap(0, 0, 3)); // all done
    assert_eq!(r.jobs(), 3);
    // Queue names with a comma or a line break cannot split a line of the trace.
    let mut q = Recorder::default();
    let mut a = Snapshot::default();
    a.processed = Some(0);
    a.add("mail,ers", QueueStats::new(0, 0, 0));
    q.observe(at(0.0), &a);
    let mut b = Snapshot::default();
    b.processed = Some(0);
    b.add("mail,ers", QueueStats::new(1, 0, 0));
    q.observe(at(1.0), &b);
    assert!(q.csv().lines().nth(1).unwrap().contains(",mail_ers,"), "{}", q.csv());
}
