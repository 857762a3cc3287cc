//! The pictures: per-minute peaks (not instants), one scale per figure, labelled axes, the oracle and interrupted
//! jobs marked.

use dyno_scaler_simulator::{self as simulator, SimConfig, strategies, trace};

#[test]
fn samples_keep_each_minutes_peak_not_the_instant() {
    // 40 jobs of 2 s at 20 s, on one dyno of 5 threads kept up all along: the queue is empty again well before the
    // sample at 60 s, which still shows the minute's peak.
    let jobs = (0..40).map(|_| trace::Job { arrived_at: 20.0, queue: "q".into(), duration: 2.0 }).collect();
    let t = trace::Trace { name: "burst".into(), jobs, span: 120.0 };
    let r = simulator::simulate(&t, &strategies::always_on(1), &SimConfig::default()).unwrap();
    let minute = r.samples.iter().find(|s| s.0 == 60.0).expect("a sample at 60 s");
    assert!(minute.1 >= 30, "the minute's most jobs waiting: {minute:?}");
    let next = r.samples.iter().find(|s| s.0 == 120.0).expect("a sample at 120 s");
    assert_eq!((next.1, next.2), (0, 1), "the next minute: nothing waited, one dyno");
    // The oracle's samples are the same kind: the most dynos of each minute.
    let o = simulator::oracle::oracle(&t, 8, &SimConfig::default());
    assert_eq!(o.samples.iter().find(|s| s.0 == 60.0).map(|s| (s.1, s.2)), Some((0, 8)), "{:?}", o.samples);
}

#[test]
fn every_panel_shares_one_scale_and_the_frontier_marks_the_oracle_and_interruptions() {
    let t = trace::built_in("long-jobs", 1).unwrap();
    let cfg = SimConfig::default();
    let results =
        simulator::with_oracle(&t, 10, &cfg, simulator::compare(&t, &strategies::comparison(10, 5), &cfg).unwrap());
    let dir = std::env::temp_dir();
    let plot = dir.join(format!("plot-{}.svg", std::process::id()));
    simulator::report::plot_svg(&plot, &t, &results).unwrap();
    let svg = std::fs::read_to_string(&plot).unwrap();
    for label in ["jobs waiting", "dynos", "hours", "oracle: ", "on the same scale", "jobs interrupted"] {
        assert!(svg.contains(label), "{label} missing from the plot");
    }
    // One scale: always-on's 10 dynos top every panel's right axis, so its label appears once per panel.
    let panels = results.len();
    let tens = svg.matches(">\n10\n</text>").count();
    assert!(tens >= panels, "the dyno axis reaches 10 in each of the {panels} panels: {tens}");
    let front = dir.join(format!("front-{}.svg", std::process::id()));
    let f = simulator::frontier::frontier(&t, 10, 5, &cfg);
    simulator::report::frontier_svg(&front, &f).unwrap();
    let svg = std::fs::read_to_string(&front).unwrap();
    assert!(svg.contains(&format!("oracle ({:.1} dyno-h)", f.oracle.dyno_hours)), "the oracle is marked");
    let keda = f.peers.iter().find(|p| p.strategy == "KEDA-style").unwrap();
    assert!(keda.interrupted > 0 && svg.contains(&format!("{} jobs interrupted", keda.interrupted)));
    // Cost ticks in the decade the points are in (long-jobs costs 15-25 dyno-h): 20 is labelled.
    assert!(svg.contains(">\n20\n</text>"), "a tick at 20 dyno-hours");
    let _ = std::fs::remove_file(&plot);
    let _ = std::fs::remove_file(&front);
}
