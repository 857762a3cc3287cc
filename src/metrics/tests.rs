use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::*;

use super::Metrics;

/// A report of a real scaler over the in-memory fakes: 30 ready in `default`, 2 in `mail`, scaled 0 -> 2.
async fn report() -> Report {
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    queue.push_many("default", 30);
    queue.push_at("mail", clock.now() - Duration::from_secs(7));
    queue.push("mail");
    queue.add_running("mail", 1);
    let platform = InMemoryPlatform::new();
    let policy = Policy::new(PolicyConfig { max_workers: 5, ..PolicyConfig::classic() }).unwrap();
    let scaler = Scaler::builder("worker", Arc::new(queue), Arc::new(platform), policy).clock(clock).build();
    scaler.reconcile().await.unwrap()
}

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
}

#[tokio::test]
async fn a_report_becomes_named_series_with_base_units() {
    let m = Metrics::new();
    let before = m.render();
    assert!(!before.contains("dyno_scaler_desired_workers{"), "nothing observed yet:\n{before}");
    let rep = report().await;
    assert_eq!(rep.decision.to, 2);
    m.observe(&Ok(rep));
    let t = m.render();
    assert!(line(&t, "dyno_scaler_desired_workers{process_type=\"worker\"}").ends_with(" 2"), "{t}");
    assert!(line(&t, "dyno_scaler_current_workers{process_type=\"worker\"}").ends_with(" 2"), "applied: {t}");
    let ready = "dyno_scaler_queue_jobs{process_type=\"worker\",source=\"memory\",queue=\"default\",state=\"ready\"}";
    assert!(line(&t, ready).ends_with(" 30"), "{t}");
    let running = "dyno_scaler_queue_jobs{process_type=\"worker\",source=\"memory\",queue=\"mail\",state=\"running\"}";
    assert!(line(&t, running).ends_with(" 1"), "{t}");
    let latency =
        line(&t, "dyno_scaler_queue_latency_seconds{process_type=\"worker\",source=\"memory\",queue=\"mail\"}");
    assert!(latency.ends_with(" 7.0"), "{latency}");
    assert!(line(&t, "dyno_scaler_scale_events_total{process_type=\"worker\",direction=\"up\"}").ends_with(" 1"));
    assert!(t.contains("# TYPE dyno_scaler_cycle_duration_seconds histogram"), "{t}");
    assert!(t.contains("# UNIT dyno_scaler_queue_latency_seconds seconds"), "{t}");
    assert!(line(&t, "dyno_scaler_build_info{version=").ends_with(" 1"));
    assert!(t.ends_with("# EOF\n"));
}

#[tokio::test]
async fn errors_platform_counts_and_vanished_queues() {
    let m = Metrics::new();
    let rep = report().await;
    m.observe(&Ok(rep.clone()));
    let err = ScalerError::Source {
        process_type: "worker".into(),
        source: SourceError::Timeout { source_name: "sidekiq".into(), timeout: Duration::from_secs(2) },
    };
    m.observe(&Err(err));
    let t = m.render();
    assert!(line(&t, "dyno_scaler_source_errors_total{process_type=\"worker\",source=\"sidekiq\"}").ends_with(" 1"));
    // Totals since start: counted once however often they are seen.
    let mut tel = PlatformTelemetry::default();
    tel.requests.insert("200".into(), 3);
    tel.rate_limit_remaining = Some(4_321);
    m.observe_platform("heroku", &tel);
    m.observe_platform("heroku", &tel);
    tel.requests.insert("429".into(), 1);
    m.observe_platform("heroku", &tel);
    let t = m.render();
    assert!(line(&t, "dyno_scaler_platform_requests_total{platform=\"heroku\",status=\"200\"}").ends_with(" 3"), "{t}");
    assert!(line(&t, "dyno_scaler_platform_requests_total{platform=\"heroku\",status=\"429\"}").ends_with(" 1"));
    assert!(line(&t, "dyno_scaler_heroku_ratelimit_remaining").ends_with(" 4321"));
    // A queue that is gone leaves no stale series.
    let mut later = rep;
    later.snapshot.queues.remove("mail");
    m.observe(&Ok(later));
    let t = m.render();
    assert!(!t.contains("queue=\"mail\""), "{t}");
    assert!(t.contains("queue=\"default\""));
}

#[tokio::test]
async fn worker_seconds_integrate_the_quantity_and_l2met_lines_carry_counts_once() {
    let m = Metrics::new();
    let rep = report().await;
    m.observe(&Ok(rep.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut hold = rep;
    hold.applied = false;
    hold.decision.from = 2;
    m.observe(&Ok(hold));
    let t = m.render();
    let ws: f64 = line(&t, "dyno_scaler_worker_seconds_total{process_type=\"worker\"}")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.55..1.5).contains(&ws), "2 workers for 0.3 s: {ws}");
    let lines = m.l2met();
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    for part in [
        "source=worker",
        "sample#dyno_scaler.ready=32",
        "sample#dyno_scaler.desired_workers=2",
        "sample#dyno_scaler.latency=7.000s",
        "count#dyno_scaler.scale_events=1",
    ] {
        assert!(l.contains(part), "{part} missing: {l}");
    }
    let again = m.l2met();
    assert!(again[0].contains("count#dyno_scaler.scale_events=0"), "counts are since the last line: {}", again[0]);
}

#[tokio::test]
async fn the_gate_that_held_the_last_decision_is_one_and_the_one_before_it_zero() {
    let m = Metrics::new();
    let rep = report().await;
    m.observe(&Ok(rep.clone()));
    assert!(!m.render().contains("dyno_scaler_held{"), "no gate held the scale-up");
    let mut paused = rep.clone();
    paused.decision.apply_gate(Gate::Paused { pause: Pause::new("ops", std::time::SystemTime::now(), None) });
    m.observe(&Ok(paused));
    let t = m.render();
    assert!(line(&t, "dyno_scaler_held{process_type=\"worker\",gate=\"paused\"}").ends_with(" 1"), "{t}");
    let mut following = rep;
    following.decision.apply_gate(Gate::Following { leader: Some("b".into()) });
    m.observe(&Ok(following));
    let t = m.render();
    assert!(line(&t, "dyno_scaler_held{process_type=\"worker\",gate=\"paused\"}").ends_with(" 0"), "{t}");
    assert!(line(&t, "dyno_scaler_held{process_type=\"worker\",gate=\"following\"}").ends_with(" 1"), "{t}");
}

#[tokio::test]
async fn health_says_which_process_type_is_stale() {
    let m = Metrics::new();
    let pts = vec!["worker".to_string()];
    assert!(m.health(&pts, Duration::from_secs(60)).is_ok(), "just started");
    let err = m.health(&pts, Duration::ZERO).unwrap_err();
    assert!(err.contains("worker: no successful cycle") && err.contains("no cycle finished"), "{err}");
    m.observe(&Ok(report().await));
    assert!(m.health(&pts, Duration::from_secs(60)).is_ok());
}
