use std::time::{Duration, UNIX_EPOCH};

use dyno_scaler_core::*;
use proptest::prelude::*;

fn arb_config() -> impl Strategy<Value = PolicyConfig> {
    (0u32..4, 0u32..12, 0u64..120, any::<bool>(), 1u64..50, any::<bool>()).prop_map(
        |(min, extra, delay, idle, jpw, both)| {
            let mut rules = vec![DemandRule::seed_thresholds()];
            if both {
                rules.push(DemandRule::JobsPerWorker(jpw));
                rules.push(DemandRule::LatencyTarget(Duration::from_secs(jpw)));
            }
            PolicyConfig {
                min_workers: min,
                max_workers: (min + extra).max(1),
                rules,
                down_delay: Duration::from_secs(delay),
                down_mode: if idle { DownMode::Idle } else { DownMode::Gradual },
                ..PolicyConfig::classic()
            }
        },
    )
}

fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    (
        0u64..500,
        0u64..20,
        proptest::option::of(0u64..600),
        proptest::option::of(proptest::collection::vec((1u32..20, 0u32..3), 0..8)),
    )
        .prop_map(|(ready, running, age, workers)| {
            let mut s = Snapshot::default();
            s.add("default", {
                let mut q = QueueStats::new(ready, running, 0);
                q.oldest_ready_age = age.filter(|_| ready > 0).map(Duration::from_secs);
                q
            });
            s.workers = workers.map(|ws| {
                ws.into_iter()
                    .map(|(n, busy)| {
                        WorkerInfo::new(format!("worker.{n}:4:0123456789ab"), Some(format!("worker.{n}")), busy)
                    })
                    .collect()
            });
            s
        })
}

fn arb_state() -> impl Strategy<Value = PolicyState> {
    proptest::option::of((0u64..200, 0u32..12)).prop_map(|o| match o {
        Some((ago, peak)) => PolicyState {
            lower_since: Some(UNIX_EPOCH + Duration::from_secs(10_000 - ago)),
            window_peak: peak,
            ..PolicyState::default()
        },
        None => PolicyState::default(),
    })
}

fn input<'a>(s: &'a Snapshot, current: u32) -> PolicyInput<'a> {
    // Heroku Cedar's placements (the in-memory platform's rule); leaked: a test's few thousand small maps.
    let placements = Box::leak(Box::new(cedar::placements("worker", current, s)));
    PolicyInput {
        process_type: "worker",
        snapshot: s,
        current,
        now: UNIX_EPOCH + Duration::from_secs(10_000),
        platform_limit: None,
        placements: Some(placements),
        source_threads: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decision_stays_within_bounds(c in arb_config(), s in arb_snapshot(), st in arb_state(), cur in 0u32..16) {
        let p = Policy::new(c.clone()).unwrap();
        let cur = cur.clamp(c.min_workers, c.max_workers);
        let (d, _) = p.decide(&input(&s, cur), &st);
        prop_assert!(d.to >= c.min_workers && d.to <= c.max_workers, "{d:?} outside [{}, {}]", c.min_workers, c.max_workers);
    }

    #[test]
    fn out_of_bounds_current_moves_towards_bounds(c in arb_config(), s in arb_snapshot(), cur in 0u32..40) {
        let p = Policy::new(c.clone()).unwrap();
        let (d, _) = p.decide(&input(&s, cur), &PolicyState::default());
        if cur < c.min_workers { prop_assert!(d.to >= c.min_workers); }
        if cur > c.max_workers { prop_assert!(d.to <= cur); }
    }

    #[test]
    fn never_stops_a_busy_dyno(c in arb_config(), s in arb_snapshot(), st in arb_state(), cur in 0u32..16) {
        let p = Policy::new(c.clone()).unwrap();
        let cur = cur.clamp(c.min_workers, c.max_workers);
        let (d, _) = p.decide(&input(&s, cur), &st);
        if d.to < cur {
            match &s.workers {
                Some(ws) => for w in ws.iter().filter(|w| w.busy > 0) {
                    let n: u32 = w.dyno.as_ref().unwrap()["worker.".len()..].parse().unwrap();
                    prop_assert!(n <= d.to || n > cur, "stopped busy dyno worker.{n}: {d:?}");
                },
                None => prop_assert_eq!(s.totals().running, 0, "scaled down with unnamed running jobs: {:?}", d),
            }
        }
    }

    #[test]
    fn monotone_in_ready_jobs(c in arb_config(), s in arb_snapshot(), more in 0u64..300, cur in 0u32..16) {
        let p = Policy::new(c.clone()).unwrap();
        let cur = cur.clamp(c.min_workers, c.max_workers);
        let mut s2 = s.clone();
        s2.queues.get_mut("default").unwrap().ready += more;
        // Older or equal latency with more jobs (a bigger backlog is never younger).
        let st = PolicyState::default();
        let (d1, _) = p.decide(&input(&s, cur), &st);
        let (d2, _) = p.decide(&input(&s2, cur), &st);
        prop_assert!(d2.to >= d1.to, "more ready jobs gave fewer workers: {d1:?} vs {d2:?}");
    }

    #[test]
    fn no_scale_down_before_the_delay(c in arb_config(), s in arb_snapshot(), cur in 0u32..16, elapsed in 0u64..200) {
        let p = Policy::new(c.clone()).unwrap();
        let cur = cur.clamp(c.min_workers, c.max_workers);
        let start = UNIX_EPOCH + Duration::from_secs(10_000);
        let (first, st) = p.decide(&PolicyInput { now: start, ..input(&s, cur) }, &PolicyState::default());
        let later = start + Duration::from_secs(elapsed);
        let (second, _) = p.decide(&PolicyInput { now: later, ..input(&s, cur) }, &st);
        if c.down_delay > Duration::ZERO {
            prop_assert!(first.to >= cur, "scaled down at once: {first:?}");
        }
        if Duration::from_secs(elapsed) < c.down_delay {
            prop_assert!(second.to >= cur, "scaled down after {elapsed}s of {:?}: {second:?}", c.down_delay);
        }
    }

    #[test]
    fn deterministic(c in arb_config(), s in arb_snapshot(), st in arb_state(), cur in 0u32..16) {
        let p = Policy::new(c).unwrap();
        let a = p.decide(&input(&s, cur), &st);
        let b = p.decide(&input(&s, cur), &st);
        prop_assert_eq!(a, b);
    }
}
