//! The web simulation: hand-computed queue times and bills, and dyno-scaler's web policy undominated on cost and p95
//! queue time by the modelled peers on the built-in request traces, over several seeds.

use dyno_scaler_simulator::trace::{Job, Trace};
use dyno_scaler_simulator::web::{self, WebConfig, WebStrategy};

fn trace(jobs: &[(f64, f64)], span: f64) -> Trace {
    let jobs = jobs.iter().map(|&(a, d)| Job { arrived_at: a, queue: "web".into(), duration: d }).collect();
    Trace { name: "hand".into(), jobs, span }
}

#[test]
fn one_dyno_of_one_thread_queues_first_in_first_out_and_bills_the_span() {
    // Three requests of 1 s at 0, 0.5 and 0.6 on one thread: they wait 0, 0.5 and 1.4 s.
    let t = trace(&[(0.0, 1.0), (0.5, 1.0), (0.6, 1.0)], 100.0);
    let cfg = WebConfig { threads: 1, max: 1, ..WebConfig::default() };
    let r = web::simulate(&t, &WebStrategy::AlwaysOn, &cfg);
    assert_eq!(r.requests, 3);
    assert!((r.max - 1.4).abs() < 1e-6 && (r.p50 - 0.5).abs() < 1e-6, "{r:?}");
    assert!((r.dyno_hours - 100.0 / 3600.0).abs() < 1e-9, "one dyno over the span: {r:?}");
}

#[test]
fn the_router_spreads_at_random_so_two_dynos_queue_less_than_one() {
    let jobs: Vec<(f64, f64)> = (0..2000).map(|i| (f64::from(i) * 0.1, 0.15)).collect();
    let t = trace(&jobs, 200.0);
    let one = web::simulate(&t, &WebStrategy::AlwaysOn, &WebConfig { threads: 1, max: 1, ..WebConfig::default() });
    let two = web::simulate(&t, &WebStrategy::AlwaysOn, &WebConfig { threads: 1, max: 2, ..WebConfig::default() });
    assert!(one.p95 > 10.0, "1.5 Erlangs on one thread: the queue grows ({one:?})");
    assert!(two.p95 < one.p95 && two.dyno_hours > one.dyno_hours, "{one:?} {two:?}");
}

#[test]
fn the_web_policy_scales_up_on_a_backlog_after_the_boot_and_back_down() {
    // 2 minutes quiet, 5 minutes at 40 requests a second of 200 ms (8 threads: two dynos of 5), then 20 quiet.
    let mut jobs = Vec::new();
    let mut t = 0.0;
    while t < 1620.0 {
        let busy = (120.0..420.0).contains(&t);
        jobs.push((t, 0.2));
        t += if busy { 0.025 } else { 1.0 };
    }
    let tr = trace(&jobs, 1620.0);
    let cfg = WebConfig::default();
    let ours = web::simulate(&tr, &WebStrategy::DynoScaler, &cfg);
    assert!(ours.scale_events >= 2, "up and back down: {ours:?}");
    let one = web::simulate(&tr, &WebStrategy::AlwaysOn, &WebConfig { max: 1, ..cfg.clone() });
    assert!(ours.p95 < one.p95 / 2.0, "scaling cut the wait: {ours:?} vs one dyno {one:?}");
    let all = web::simulate(&tr, &WebStrategy::AlwaysOn, &cfg);
    assert!(ours.dyno_hours < all.dyno_hours / 3.0, "and came back down: {ours:?} vs always-on {all:?}");
}

#[test]
fn no_peer_is_cheaper_at_a_p95_no_worse_on_the_built_in_request_traces() {
    let cfg = WebConfig::default();
    let mut compared = 0;
    for name in web::traffic::BUILT_IN {
        for seed in [1, 2] {
            let t = web::traffic::built_in(name, seed).unwrap();
            let rows: Vec<_> = web::strategies().iter().map(|s| web::simulate(&t, s, &cfg)).collect();
            let ours = rows.iter().find(|r| r.strategy == "dyno-scaler web").unwrap();
            for r in rows.iter().filter(|r| r.strategy != ours.strategy) {
                compared += 1;
                let dominates = r.dyno_hours < ours.dyno_hours && r.p95 <= ours.p95;
                assert!(
                    !dominates,
                    "{name} seed {seed}: {} ({:.2} dyno-h, p95 {:.3} s) dominates ours ({:.2}, {:.3})",
                    r.strategy, r.dyno_hours, r.p95, ours.dyno_hours, ours.p95
                );
            }
        }
    }
    assert_eq!(compared, 12);
}
