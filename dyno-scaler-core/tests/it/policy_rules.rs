use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyno_scaler_core::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

fn snap(ready: u64, running: u64) -> Snapshot {
    let mut s = Snapshot::default();
    s.add("default", QueueStats::new(ready, running, 0));
    s
}

fn policy(f: impl FnOnce(&mut PolicyConfig)) -> Policy {
    let mut c = PolicyConfig { max_workers: 10, ..PolicyConfig::classic() };
    f(&mut c);
    Policy::new(c).unwrap()
}

fn decide(p: &Policy, s: &Snapshot, current: u32, now: SystemTime, st: &PolicyState) -> (Decision, PolicyState) {
    // Where each host is, by Heroku Cedar's rule (the in-memory platform's).
    let placements = cedar::placements("worker", current, s);
    let input = PolicyInput {
        process_type: "worker",
        snapshot: s,
        current,
        now,
        platform_limit: None,
        placements: Some(&placements),
        source_threads: None,
    };
    p.decide(&input, st)
}

fn to(p: &Policy, s: &Snapshot, current: u32) -> u32 {
    decide(p, s, current, t(0), &PolicyState::default()).0.to
}

#[test]
fn seed_threshold_table() {
    let p = policy(|_| {});
    for (ready, want) in
        [(0, 0), (1, 1), (24, 1), (25, 2), (49, 2), (50, 3), (74, 3), (75, 4), (99, 4), (100, 5), (10_000, 5)]
    {
        assert_eq!(to(&p, &snap(ready, 0), 0), want, "ready {ready}");
    }
}

#[test]
fn max_clamps_instead_of_vetoing() {
    // The seed stayed at 0 with 30 pending and max 1; we go to 1.
    let p = policy(|c| c.max_workers = 1);
    assert_eq!(to(&p, &snap(30, 0), 0), 1);
    let p = policy(|c| c.max_workers = 3);
    let d = decide(&p, &snap(200, 0), 0, t(0), &PolicyState::default()).0;
    assert_eq!(d.to, 3);
    assert!(d.reason.contains("clamped"), "{}", d.reason);
}

#[test]
fn legacy_veto_reproduces_the_seed_defect() {
    let p = policy(|c| {
        c.max_workers = 3;
        c.max_mode = MaxMode::LegacyVeto;
    });
    assert_eq!(to(&p, &snap(200, 0), 0), 0);
    assert_eq!(to(&p, &snap(60, 0), 1), 3);
}

#[test]
fn min_is_a_floor() {
    let p = policy(|c| c.min_workers = 2);
    assert_eq!(to(&p, &snap(0, 0), 0), 2);
}

#[test]
fn jobs_per_worker_counts_running_too() {
    let p = policy(|c| c.rules = vec![DemandRule::JobsPerWorker(10)]);
    assert_eq!(to(&p, &snap(15, 0), 0), 2);
    assert_eq!(to(&p, &snap(15, 10), 0), 3);
    assert_eq!(to(&p, &snap(0, 0), 0), 0);
}

#[test]
fn latency_target() {
    let p = policy(|c| c.rules = vec![DemandRule::LatencyTarget(Duration::from_secs(10))]);
    let mut s = Snapshot::default();
    s.add("q", QueueStats::ready(5).with_oldest(Duration::from_secs(30)));
    assert_eq!(to(&p, &s, 0), 3);
    assert_eq!(to(&p, &s, 2), 6);
    // Unknown latency with work waiting still wants one worker.
    let mut s = Snapshot::default();
    s.add("q", QueueStats::ready(5));
    assert_eq!(to(&p, &s, 0), 1);
}

#[test]
fn largest_demand_wins() {
    let p = policy(|c| c.rules = vec![DemandRule::seed_thresholds(), DemandRule::JobsPerWorker(5)]);
    let d = decide(&p, &snap(30, 0), 0, t(0), &PolicyState::default()).0;
    assert_eq!(d.to, 6);
    assert!(d.reason.contains("thresholds 2") && d.reason.contains("jobs-per-worker 6"), "{}", d.reason);
}

#[test]
fn scale_down_waits_for_the_down_delay() {
    let p = policy(|c| c.down_delay = Duration::from_secs(30));
    let s = snap(0, 0);
    let (d, st) = decide(&p, &s, 3, t(0), &PolicyState::default());
    assert_eq!(d.to, 3, "{}", d.reason);
    let (d, st) = decide(&p, &s, 3, t(29), &st);
    assert_eq!(d.to, 3, "{}", d.reason);
    let (d, _) = decide(&p, &s, 3, t(30), &st);
    assert_eq!(d.to, 0, "{}", d.reason);
}

#[test]
fn demand_rising_again_resets_the_down_delay() {
    let p = policy(|c| c.down_delay = Duration::from_secs(30));
    let (_, st) = decide(&p, &snap(0, 0), 2, t(0), &PolicyState::default());
    let (d, st) = decide(&p, &snap(30, 0), 2, t(20), &st);
    assert_eq!(d.to, 2);
    assert_eq!(st.lower_since, None);
    let (d, _) = decide(&p, &snap(0, 0), 2, t(40), &st);
    assert_eq!(d.to, 2, "the delay starts again: {}", d.reason);
}

#[test]
fn scale_down_goes_to_the_peak_of_the_window() {
    let p = policy(|c| c.down_delay = Duration::from_secs(30));
    let (_, st) = decide(&p, &snap(0, 0), 5, t(0), &PolicyState::default());
    let (_, st) = decide(&p, &snap(60, 0), 5, t(10), &st); // wants 3
    let (d, _) = decide(&p, &snap(0, 0), 5, t(30), &st);
    assert_eq!(d.to, 3, "{}", d.reason);
}

fn worker(dyno: &str, busy: u32) -> WorkerInfo {
    WorkerInfo::new(format!("{dyno}:4:abcdef012345"), Some(dyno.into()), busy)
}

#[test]
fn busy_safe_scale_down_with_named_dynos() {
    let p = policy(|c| c.down_delay = Duration::ZERO);
    let mut s = snap(0, 1);
    s.workers = Some(vec![worker("worker.1", 0), worker("worker.2", 0), worker("worker.3", 1), worker("worker.4", 0)]);
    let d = decide(&p, &s, 4, t(0), &PolicyState::default()).0;
    assert_eq!(d.to, 3, "worker.3 is busy, only worker.4 may stop: {}", d.reason);
    // A busy dyno of another process type does not hold this one.
    s.workers = Some(vec![worker("urgent.5", 1), worker("worker.1", 0)]);
    assert_eq!(decide(&p, &s, 4, t(0), &PolicyState::default()).0.to, 0);
}

#[test]
fn no_scale_down_while_running_when_dynos_are_unknown() {
    let p = policy(|c| c.down_delay = Duration::ZERO);
    let s = snap(0, 2);
    let d = decide(&p, &s, 3, t(0), &PolicyState::default()).0;
    assert_eq!(d.to, 3, "{}", d.reason);
    assert!(d.reason.contains("cannot name"), "{}", d.reason);
    // Workers without dyno names (Resque) are no better.
    let mut s = snap(0, 1);
    s.workers = Some(vec![WorkerInfo::new("host:1:*", None, 1)]);
    assert_eq!(decide(&p, &s, 3, t(0), &PolicyState::default()).0.to, 3);
    // Fir names are not ordered.
    let mut s = snap(0, 1);
    s.workers = Some(vec![worker("worker-12a34bcd56-7efgh", 1)]);
    assert_eq!(decide(&p, &s, 3, t(0), &PolicyState::default()).0.to, 3);
    // Opt-in: interrupting allowed.
    let p = policy(|c| {
        c.down_delay = Duration::ZERO;
        c.allow_interrupting = true;
    });
    assert_eq!(decide(&p, &snap(0, 2), 3, t(0), &PolicyState::default()).0.to, 0);
}

#[test]
fn idle_mode_is_the_seed_rule() {
    let p = policy(|c| {
        c.down_mode = DownMode::Idle;
        c.down_delay = Duration::ZERO;
        c.min_workers = 1;
    });
    // Work remains: no partial scale-down even though demand is lower.
    assert_eq!(to(&p, &snap(5, 0), 4), 4);
    assert_eq!(to(&p, &snap(0, 1), 4), 4);
    // Idle: straight to min.
    assert_eq!(to(&p, &snap(0, 0), 4), 1);
    // Up is immediate as usual.
    assert_eq!(to(&p, &snap(60, 0), 1), 3);
}

#[test]
fn platform_limit_lowers_the_ceiling() {
    let p = policy(|_| {});
    let s = snap(100, 0);
    let d = p
        .decide(
            &PolicyInput {
                process_type: "worker",
                snapshot: &s,
                current: 0,
                now: t(0),
                platform_limit: Some(2),
                placements: None,
                source_threads: None,
            },
            &PolicyState::default(),
        )
        .0;
    assert_eq!(d.to, 2);
}

#[test]
fn bad_configs_are_rejected() {
    let bad = |f: fn(&mut PolicyConfig)| {
        let mut c = PolicyConfig::classic();
        f(&mut c);
        Policy::new(c).unwrap_err()
    };
    assert!(matches!(bad(|c| c.min_workers = 5), PolicyError::MinAboveMax { min: 5, max: 1 }));
    assert!(matches!(bad(|c| c.rules.clear()), PolicyError::NoRules));
    assert!(matches!(
        bad(|c| c.rules = vec![DemandRule::Thresholds(vec![(25, 2), (1, 1)])]),
        PolicyError::ThresholdsOutOfOrder(_)
    ));
    assert!(matches!(bad(|c| c.rules = vec![DemandRule::JobsPerWorker(0)]), PolicyError::ZeroJobsPerWorker));
    assert!(matches!(
        bad(|c| c.rules = vec![DemandRule::LatencyTarget(Duration::ZERO)]),
        PolicyError::ZeroLatencyTarget
    ));
    assert!(policy::parse_thresholds("1:1,x:2").is_err());
}

#[test]
fn a_quiet_dyno_is_no_capacity() {
    let p = policy(|_| {});
    let mut s = snap(10, 0);
    let quiet = |dyno: &str| {
        let mut v = worker(dyno, 0);
        v.quiet = true;
        v
    };
    // One dyno, quiet (the Web UI's "Quiet" button): ten jobs wait and nothing would ever run them.
    s.workers = Some(vec![quiet("worker.1")]);
    let d = decide(&p, &s, 1, t(0), &PolicyState::default()).0;
    assert_eq!(d.to, 2, "{}", d.reason);
    assert!(d.reason.contains("quiet"), "{}", d.reason);
    // A dyno with one quiet and one active process still takes jobs; another type's quiet dyno is not ours.
    s.workers = Some(vec![quiet("worker.1"), worker("worker.1", 0), quiet("urgent.1")]);
    assert_eq!(decide(&p, &s, 1, t(0), &PolicyState::default()).0.to, 1);
    // Nothing waiting: a quiet dyno is not replaced.
    let mut idle = snap(0, 0);
    idle.workers = Some(vec![quiet("worker.1")]);
    let p = policy(|c| c.min_workers = 1);
    assert_eq!(decide(&p, &idle, 1, t(0), &PolicyState::default()).0.to, 1);
}

#[test]
fn a_scale_down_waits_for_two_idle_heartbeats() {
    // Without quiet-then-drain (a source that cannot quiet): two idle beats in a row.
    let p = policy(|c| {
        c.down_delay = Duration::ZERO;
        c.quiet_victims = false;
    });
    let beat = |secs: u64| Some(t(secs));
    let at = |busy3: u32, b: u64| {
        let mut s = snap(0, u64::from(busy3));
        s.workers = Some(vec![
            {
                let mut v = worker("worker.1", 0);
                v.beat = beat(b);
                v
            },
            {
                let mut v = worker("worker.2", 0);
                v.beat = beat(b);
                v
            },
            {
                let mut v = worker("worker.3", busy3);
                v.beat = beat(b);
                v
            },
        ]);
        s
    };
    // One idle heartbeat: worker.3 may have fetched a job since. Hold.
    let (d, st) = decide(&p, &at(0, 5), 3, t(6), &PolicyState::default());
    assert_eq!(d.to, 3, "{}", d.reason);
    // The same heartbeat read again: still one.
    let (d, st) = decide(&p, &at(0, 5), 3, t(7), &st);
    assert_eq!(d.to, 3, "{}", d.reason);
    // A busy heartbeat breaks the streak; two idle ones after it allow the scale-down.
    let (d, st) = decide(&p, &at(1, 10), 3, t(11), &st);
    assert_eq!(d.to, 3, "{}", d.reason);
    let (d, st) = decide(&p, &at(0, 15), 3, t(16), &st);
    assert_eq!(d.to, 3, "one idle beat after the busy one: {}", d.reason);
    let (d, _) = decide(&p, &at(0, 20), 3, t(21), &st);
    assert_eq!(d.to, 0, "two idle beats in a row: {}", d.reason);
}

#[test]
fn with_quiet_then_drain_one_idle_heartbeat_after_the_queue_emptied_starts_the_shrink() {
    // The victims are quieted and must show idle on a beat after the quiet (crate::drain): one idle beat taken
    // after the queue was last seen holding a job suffices to start that; a busy one still holds.
    let p = policy(|c| c.down_delay = Duration::ZERO);
    let at = |busy1: u32| {
        let mut s = snap(0, u64::from(busy1));
        s.workers = Some(vec![
            {
                let mut v = worker("worker.1", busy1);
                v.beat = Some(t(5));
                v
            },
            {
                let mut v = worker("worker.2", 0);
                v.beat = Some(t(5));
                v
            },
            {
                let mut v = worker("worker.3", 0);
                v.beat = Some(t(5));
                v
            },
        ]);
        s
    };
    let emptied_before = PolicyState { ready_gone: Some(t(2)), ..PolicyState::default() };
    let (d, _) = decide(&p, &at(1), 3, t(6), &emptied_before);
    assert_eq!(d.to, 1, "worker.1 is busy: {}", d.reason);
    let (d, _) = decide(&p, &at(0), 3, t(6), &emptied_before);
    assert_eq!(d.to, 0, "{}", d.reason);
    // The queue held a job until after that beat: the job may be on a worker, unseen. Two beats, as without the
    // drain.
    let emptied_after = PolicyState { ready_gone: Some(t(5)), ..PolicyState::default() };
    let (d, _) = decide(&p, &at(0), 3, t(6), &emptied_after);
    assert_eq!(d.to, 3, "{}", d.reason);
    let (d, _) = decide(&p, &at(0), 3, t(6), &PolicyState::default());
    assert_eq!(d.to, 3, "no history: {}", d.reason);
}

#[test]
fn quiet_dynos_are_no_capacity_on_the_way_down_but_are_not_kept_for_nothing() {
    // worker.1 stayed quiet (a drain given up); worker.2 and worker.3 work. Demand 1: worker.1 is no capacity, and
    // it stops last under Cedar's rule, so two must stay. Demand 0: everything goes.
    let quiet = |dyno: &str| {
        let mut v = worker(dyno, 0);
        v.quiet = true;
        v
    };
    let p = policy(|c| c.down_delay = Duration::ZERO);
    let mut s = snap(0, 0);
    s.workers = Some(vec![quiet("worker.1"), worker("worker.2", 0), worker("worker.3", 0)]);
    let mut one = snap(1, 0);
    one.workers = s.workers.clone();
    let st = PolicyState { lower_since: Some(t(0)), window_peak: 1, ..PolicyState::default() };
    let (d, _) = decide(&p, &one, 3, t(10), &st);
    assert_eq!(d.to, 2, "{}", d.reason);
    let (d, _) = decide(&p, &s, 3, t(10), &PolicyState::default());
    assert_eq!(d.to, 0, "{}", d.reason);
    // The quiet one is the highest: it goes first, with what the demand does not need.
    let mut top = snap(1, 0);
    top.workers = Some(vec![worker("worker.1", 0), worker("worker.2", 0), quiet("worker.3")]);
    let (d, _) = decide(&p, &top, 3, t(10), &st);
    assert_eq!(d.to, 1, "{}", d.reason);
}
