//! The adaptive policy: drain, keep-alive and pre-warm on what it learned, each explained with its figures; and
//! its properties over long random runs (bounds, busy victims, bounded pre-warm).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyno_scaler_core::*;
use proptest::prelude::*;

/// The start of an hour, far from the epoch.
const T0: u64 = 500_000 * 3600;

fn at(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(T0 as f64 + secs)
}

fn adaptive(max: u32, f: impl FnOnce(&mut Adaptive)) -> Policy {
    let mut a = Adaptive::default();
    f(&mut a);
    Policy::new(PolicyConfig { max_workers: max, adaptive: Some(a), ..PolicyConfig::default() }).unwrap()
}

/// A reading: `ready` waiting, `running` running, the counter at `processed`, no worker registry.
fn reading(ready: u64, running: u64, processed: u64) -> Snapshot {
    let mut s = {
        let mut s = Snapshot::default();
        s.processed = Some(processed);
        s
    };
    s.add("default", QueueStats::new(ready, running, 0));
    s
}

fn decide(p: &Policy, s: &Snapshot, current: u32, now: f64, st: &PolicyState) -> (Decision, PolicyState) {
    let placements = cedar::placements("worker", current, s);
    let input = PolicyInput {
        process_type: "worker",
        snapshot: s,
        current,
        now: at(now),
        platform_limit: None,
        placements: Some(&placements),
        source_threads: None,
    };
    p.decide(&input, st)
}

/// Ten minutes of 2 jobs/s of 1 s each (2 running): the policy learns a 1 s duration.
fn learned_one_second(p: &Policy) -> (PolicyState, f64) {
    let mut st = PolicyState::default();
    let mut done = 0;
    for i in 0..600 {
        done += 2;
        st = decide(p, &reading(0, 2, done), 1, f64::from(i), &st).1;
    }
    (st, 600.0)
}

#[test]
fn a_big_backlog_uses_every_allowed_dyno_at_the_measured_duration() {
    let p = adaptive(10, |_| {});
    let (st, now) = learned_one_second(&p);
    let secs = st.learned.job_secs().unwrap();
    assert!((secs - 1.0).abs() < 0.05, "{secs}");
    let (d, _) = decide(&p, &reading(5_000, 2, 1_200), 1, now, &st);
    assert_eq!(d.to, 10, "{}", d.reason);
    assert!(d.reason.contains("5000 ready × 1.0s per job / 30s drain target"), "{}", d.reason);
    // 60 ready jobs of 1 s clear in 30 s on a few threads: one worker is enough, not the seed table's 3.
    let (d, _) = decide(&p, &reading(60, 2, 1_200), 1, now, &st);
    assert_eq!(d.to, 1, "{}", d.reason);
    // Before anything is learned: one thread per job, 5 threads a worker.
    let (d, _) = decide(&p, &reading(60, 0, 0), 1, 0.0, &PolicyState::default());
    assert_eq!(d.to, 10, "{}", d.reason);
    assert!(d.reason.contains("duration not learned yet"), "{}", d.reason);
}

/// Busy for 5 s, then idle for `gap` seconds, `n` times, one reading a second; returns the state and the time.
fn gaps(p: &Policy, gap: u64, n: u64) -> (PolicyState, f64) {
    let mut st = PolicyState::default();
    let mut now = 0.0;
    let mut done = 0;
    for _ in 0..n {
        for _ in 0..5 {
            st = decide(p, &reading(0, 1, done), 1, now, &st).1;
            now += 1.0;
        }
        done += 5;
        for _ in 0..gap {
            st = decide(p, &reading(0, 0, done), 1, now, &st).1;
            now += 1.0;
        }
    }
    (st, now)
}

#[test]
fn keep_alive_is_learned_from_the_idle_gaps() {
    let p = adaptive(3, |a| a.prewarm = false);
    // Short gaps (10 s): keep the worker through them.
    let (st, now) = gaps(&p, 10, 20);
    let (d, _) = decide(&p, &reading(0, 0, 100), 1, now, &st);
    assert_eq!(d.to, 1, "{}", d.reason);
    assert!(d.reason.contains("keep-alive 15s learned from"), "{}", d.reason);
    // Long gaps (10 minutes): drop at once when idle.
    let (st, now) = gaps(&p, 600, 12);
    let (d, _) = decide(&p, &reading(0, 0, 60), 1, now, &st);
    assert_eq!(d.to, 0, "{}", d.reason);
    assert!(d.reason.contains("keep-alive 0s learned"), "{}", d.reason);
    // Nothing learned yet: the configured down delay.
    let (d, _) = decide(&p, &reading(0, 0, 0), 1, 0.0, &PolicyState::default());
    assert_eq!(d.to, 1, "{}", d.reason);
    assert!(d.reason.contains("the configured one until arrivals or 8 idle gaps"), "{}", d.reason);
}

#[test]
fn the_reason_is_typed_parts_and_its_words_are_rendered_from_them() {
    let p = adaptive(3, |a| a.prewarm = false);
    let (st, now) = gaps(&p, 10, 20);
    let s = reading(0, 0, 100);
    let placements = cedar::placements("worker", 1, &s);
    let input = PolicyInput { now: at(now), placements: Some(&placements), ..PolicyInput::new("worker", &s, 1) };
    // In place: the state advances as `decide`'s does, and the hold is matched on its parts, not on prose.
    let mut in_place = st.clone();
    let verdict = p.advance(&input, &mut in_place);
    let (decision, next) = p.decide(&input, &st);
    assert_eq!(in_place, next);
    assert_eq!((verdict.from, verdict.to), (1, 1));
    assert!(
        matches!(verdict.why.outcome, policy::why::Outcome::Delay { delay, .. } if delay == Duration::from_secs(15))
    );
    assert!(
        matches!(verdict.why.keep_alive, Some(policy::why::KeepAlive::Gaps { secs, .. }) if secs == 15.0),
        "{:?}",
        verdict.why
    );
    assert_eq!(verdict.why.drain.map(|d| d.workers), Some(0));
    // The words: rendered once, from those parts.
    assert_eq!(verdict.decision(), decision);
    assert!(
        decision.reason.starts_with("0 ready, 0 running; want 0 (drain 0 (idle)); hold at 1: demand lower for "),
        "{}",
        decision.reason
    );
    let gaps = match verdict.why.keep_alive {
        Some(policy::why::KeepAlive::Gaps { gaps, .. }) => gaps,
        _ => unreachable!(),
    };
    let tail = format!("of the 15.0s keep-alive 15s learned from {gaps:.0} idle gaps (a cold start costs 60s)");
    assert!(decision.reason.ends_with(&tail), "{}", decision.reason);
    // Work arrives: a scale-up, typed as one, with the drain rule's figures.
    let busy = reading(400, 0, 100);
    let verdict = p.advance(&PolicyInput { now: at(now + 1.0), ..PolicyInput::new("worker", &busy, 1) }, &mut in_place);
    assert!(matches!(verdict.why.outcome, policy::why::Outcome::Up), "{:?}", verdict.why);
    assert_eq!((verdict.to, verdict.why.want, verdict.why.ready), (3, verdict.why.drain.unwrap().workers, 400));
    assert!(verdict.to_string().ends_with("; scale up 1 -> 3"), "{verdict}");
}

/// Four hours of a trickle (one job running) with a burst of 400 ready jobs at minute 20, one reading every 5 s.
fn hours_with_a_burst(p: &Policy) -> PolicyState {
    let mut st = PolicyState::default();
    let mut done = 0;
    for s in (0..4 * 3600).step_by(5) {
        let minute = s % 3600 / 60;
        let ready = if minute == 20 { 400 } else { 0 };
        done += 2;
        st = decide(p, &reading(ready, 1, done), 1, f64::from(s), &st).1;
    }
    st
}

#[test]
fn load_that_recurs_every_hour_is_prewarmed_one_drain_target_ahead() {
    let p = adaptive(8, |_| {});
    let st = hours_with_a_burst(&p);
    let hour = 4.0 * 3600.0;
    // 19:40 into the fifth hour, 20 s before the burst is due: warm up for it.
    let (d, next) = decide(&p, &reading(0, 1, 99_999), 1, hour + 19.0 * 60.0 + 40.0, &st);
    assert_eq!(d.to, 8, "{}", d.reason);
    assert!(d.reason.contains("pre-warm 8 for load that rose at this minute of the hour"), "{}", d.reason);
    // Ten minutes before, nothing recurs: no pre-warm.
    let (d, _) = decide(&p, &reading(0, 1, 99_999), 1, hour + 10.0 * 60.0, &st);
    assert_eq!(d.to, 1, "{}", d.reason);
    // The load does not come: the pre-warm ends and its cost is counted.
    let (_, next) = decide(&p, &reading(0, 1, 99_999), 8, hour + 21.0 * 60.0, &next);
    assert_eq!(next.learned.prewarm_misses, 1);
    assert!(next.learned.prewarm_wasted > 0.0 && next.learned.prewarm_wasted <= 8.0 * 90.0);
    // Off by setting.
    let off = adaptive(8, |a| a.prewarm = false);
    let st = hours_with_a_burst(&off);
    let (d, _) = decide(&off, &reading(0, 1, 99_999), 1, hour + 19.0 * 60.0 + 40.0, &st);
    assert_eq!(d.to, 1, "{}", d.reason);
}

#[derive(Debug, Clone)]
struct Tick {
    ready: u64,
    busy: Vec<u32>,
    done: u64,
    step: u64,
}

fn arb_ticks() -> impl proptest::strategy::Strategy<Value = Vec<Tick>> {
    proptest::collection::vec(
        (0u64..300, proptest::collection::vec(0u32..3, 0..6), 0u64..20, 1u64..400)
            .prop_map(|(ready, busy, done, step)| Tick { ready, busy, done, step }),
        1..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Over a long random run (workers named by dyno, beating at every reading), every decision stays within the
    /// bounds, never stops a dyno whose worker shows a job, and a pre-warm never spends more than its bound.
    #[test]
    fn adaptive_runs_stay_in_bounds_spare_busy_dynos_and_bound_prewarm(
        min in 0u32..3, extra in 0u32..8, ticks in arb_ticks(), prewarm in any::<bool>()
    ) {
        let max = (min + extra).max(1);
        let p = Policy::new(PolicyConfig {
            min_workers: min,
            max_workers: max,
            adaptive: Some(Adaptive { prewarm, ..Adaptive::default() }),
            ..PolicyConfig::default()
        }).unwrap();
        let mut st = PolicyState::default();
        let mut current = min;
        let mut now = 0.0;
        let mut processed = 0;
        for tick in ticks {
            now += tick.step as f64;
            processed += tick.done;
            let workers: Vec<WorkerInfo> = (1..=current).map(|n| WorkerInfo::new(format!("worker.{n}:4:0123456789ab"), Some(format!("worker.{n}")), tick.busy.get(n as usize - 1).copied().unwrap_or(0)).with_beat(Some(at(now)))).collect();
            let running: u64 = workers.iter().map(|w| u64::from(w.busy)).sum();
            let mut s = reading(tick.ready, running, processed);
            s.threads = Some(5 * u64::from(current));
            s.workers = Some(workers.clone());
            let (d, next) = decide(&p, &s, current, now, &st);
            prop_assert!(d.to >= min && d.to <= max, "{d:?} outside [{min}, {max}]");
            if d.to < current {
                for w in workers.iter().filter(|w| w.busy > 0) {
                    let n: u32 = w.dyno.as_ref().unwrap()["worker.".len()..].parse().unwrap();
                    // Past a busy dyno only one at a time, and only as a victim quieted first (the drain stops it
                    // once its jobs finish: `tests/it/drain.rs`).
                    let through = d.to == current - 1 && d.reason.contains("quiet it and scale down");
                    prop_assert!(n <= d.to || through, "stopped busy worker.{n}: {d:?}");
                }
            }
            let l = &next.learned;
            let bound = f64::from(l.prewarm_misses) * f64::from(max) * (30.0 + 300.0 + 400.0);
            prop_assert!(l.prewarm_wasted <= bound, "pre-warm spent {} > {bound}", l.prewarm_wasted);
            prop_assert!(prewarm || l.prewarm_misses == 0);
            st = next;
            current = d.to;
        }
    }
}

#[test]
fn quiet_capacity_is_replaced_on_the_way_up_too() {
    // One dyno of 2 threads, quiet (Sidekiq's "Quiet" button); 5 jobs wait. The drain wants 3 dynos of 2 threads;
    // the quiet one takes none of them, so 3 working dynos are 4.
    let p = adaptive(10, |a| a.prewarm = false);
    let mut s = reading(5, 0, 0);
    s.threads = Some(2);
    let w = |quiet| {
        WorkerInfo::new("worker.1:4:0123456789ab", Some("worker.1".into()), 0)
            .with_quiet(quiet)
            .with_beat(Some(at(0.0)))
    };
    s.workers = Some(vec![w(false)]);
    let (d, _) = decide(&p, &s, 1, 0.0, &PolicyState::default());
    assert_eq!(d.to, 3, "a working dyno counts: {}", d.reason);
    s.workers = Some(vec![w(true)]);
    let (d, _) = decide(&p, &s, 1, 0.0, &PolicyState::default());
    assert_eq!(d.to, 4, "{}", d.reason);
    assert!(d.reason.contains("1 quiet dyno(s) take no jobs: scale up 1 -> 4"), "{}", d.reason);
}

/// `current` dynos of 10 threads, each running `busy[n]` jobs at a heartbeat taken now; 5 jobs a second done.
fn spread_reading(busy: &[u32], processed: u64, now: f64) -> Snapshot {
    let workers: Vec<WorkerInfo> = (1..=busy.len())
        .map(|n| {
            WorkerInfo::new(format!("worker.{n}:4:0123456789ab"), Some(format!("worker.{n}")), busy[n - 1])
                .with_beat(Some(at(now)))
        })
        .collect();
    let mut s = reading(0, busy.iter().map(|b| u64::from(*b)).sum(), processed);
    s.threads = Some(10 * busy.len() as u64);
    s.workers = Some(workers);
    s
}

#[test]
fn a_stream_spread_over_every_dyno_sheds_one_busy_victim_at_a_time_and_a_bursts_tail_does_not() {
    // 5 jobs a second of 7.2 s (36 running) over 9 dynos of 10 threads, 4 on each: 4 dynos would do, but every
    // victim is busy at every heartbeat, so the busy floor alone would keep all 9 for as long as the stream lasts.
    let p = adaptive(10, |a| a.prewarm = false);
    let run = |busy: &dyn Fn(u32) -> Vec<u32>| {
        let (mut st, mut done, mut first_down) = (PolicyState::default(), 0, None);
        for i in 0..600u32 {
            done += 5;
            let (d, next) = decide(&p, &spread_reading(&busy(i), done, f64::from(i)), 9, f64::from(i), &st);
            st = next;
            if d.to < 9 {
                first_down = Some((i, d));
                break;
            }
        }
        first_down
    };
    let (at, d) = run(&|_| vec![4; 9]).expect("the stream sheds a dyno");
    assert_eq!(d.to, 8, "one at a time: {}", d.reason);
    assert!(d.reason.contains("every dyno has stayed busy") && d.reason.contains("quiet it and scale down 9 -> 8"));
    // Not before the hold has lasted ten job durations past the delay (and the duration is learned).
    assert!(at >= 72, "after {at} s: {}", d.reason);
    // The same jobs on 5 of the 9 dynos (a burst's tail): the idle ones go, the busy ones are not touched.
    let (_, d) = run(&|_| vec![8, 8, 8, 8, 4, 0, 0, 0, 0]).expect("the idle dynos go");
    assert!(d.to >= 5 && !d.reason.contains("quiet it"), "{}", d.reason);
    // Every dyno busy but jobs longer than the drain target: the floor holds (a quieted victim would take minutes).
    let long = |_| vec![4u32; 9];
    let (mut st, mut done) = (PolicyState::default(), 0);
    for i in 0..900u32 {
        done += u64::from(i % 10 == 0); // 0.1 jobs a second of 360 s: 36 running
        let (d, next) = decide(&p, &spread_reading(&long(i), done, f64::from(i)), 9, f64::from(i), &st);
        assert_eq!(d.to, 9, "at {i} s: {}", d.reason);
        st = next;
    }
}
