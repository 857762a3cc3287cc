//! The dashboard's day, fed with hand-made cycles: bounded, deduplicated, billed exactly, kept and restored.

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::*;

use crate::test_report::base;

use super::{Dashboard, EventKind, Kept, MINUTES_KEPT, Timeline, page};

/// A cycle from `from` to `to` (applied when they differ), `ready` jobs, `reason`, gated by `gate`.
fn cycle(from: u32, to: u32, ready: u64, reason: &str, gate: Option<Gate>) -> Result<Report, ScalerError> {
    let mut r = base();
    let mut snapshot = Snapshot::default();
    snapshot.add("default", QueueStats::ready(ready));
    let mut decision = Decision::new(from, to, to, reason);
    if let Some(g) = gate {
        decision.apply_gate(g);
    }
    r.applied = decision.direction() != Direction::Hold;
    (r.snapshot, r.decision, r.acting) = (snapshot, decision, true);
    Ok(r)
}

#[test]
fn scale_changes_are_events_and_a_long_hold_or_failure_is_one() {
    let mut t = Timeline::new(4);
    t.observe(0.0, &cycle(0, 2, 30, "scale up 0 -> 2", None));
    let draining = || Some(Gate::Draining { dynos: vec!["worker.2".into()], waiting: vec!["worker.2".into()] });
    for s in 1..100 {
        t.observe(f64::from(s), &cycle(2, 1, 0, "scale down 2 -> 1", draining()));
    }
    let err = Err(ScalerError::Source {
        process_type: "worker".into(),
        source: SourceError::Unavailable { source_name: "redis".into(), message: "refused".into(), cause: None },
    });
    for s in 100..150 {
        t.observe(f64::from(s), &err);
    }
    t.observe(150.0, &cycle(2, 2, 0, "hold at 2", None));
    let kinds: Vec<EventKind> = t.events().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Scale, EventKind::Hold, EventKind::Error, EventKind::Recovered]);
    let hold = &t.events()[1];
    assert_eq!((hold.from, hold.to, hold.gate.as_deref()), (2, 1, Some("draining")));
    assert!(hold.reason.contains("worker.2"), "{}", hold.reason);
    assert!(t.events()[2].reason.contains("refused"));
}

#[test]
fn the_day_is_bounded_and_billed_exactly() {
    let mut t = Timeline::new(4);
    // Two days of a cycle every 10 s, scaling between 1 and 3 every 5 minutes.
    let mut billed = 0.0;
    let mut q = 1;
    for i in 0..(2 * 8640) {
        let now = f64::from(i) * 10.0;
        let to = if i % 30 == 0 { 4 - q } else { q };
        if i > 0 && now > 86_400.0 + 60.0 {
            billed += f64::from(q) * 10.0;
        }
        t.observe(now, &cycle(q, to, 5, "scale", None));
        q = to;
    }
    assert!(t.samples().len() <= MINUTES_KEPT && t.samples().len() >= MINUTES_KEPT - 1, "{}", t.samples().len());
    assert!(t.events().len() <= super::timeline::EVENTS);
    let now = 2.0 * 86_400.0 - 10.0;
    let s = t.savings(now);
    assert!(s.covered_secs <= 86_400.0 && s.covered_secs > 86_300.0, "{s:?}");
    assert!((s.worker_secs - billed).abs() < 3.0 * 60.0 + 1e-6, "{} vs {billed}", s.worker_secs);
    assert!((s.always_on_secs - 4.0 * s.covered_secs).abs() < 1e-9);
    assert!(s.saved_hours() > 0.0);
}

#[test]
fn a_kept_day_is_restored_as_it_was_and_what_is_older_than_a_day_dropped() {
    let mut t = Timeline::new(3);
    for i in 0..600 {
        t.observe(f64::from(i) * 10.0, &cycle(1, if i % 60 == 0 { 2 } else { 1 }, 1, "scale", None));
    }
    let kept: Kept = serde_json::from_str(&serde_json::to_string(&t.kept()).unwrap()).unwrap();
    let mut back = Timeline::new(3);
    back.restore(kept.clone(), 6000.0);
    assert_eq!(back.samples(), t.samples());
    assert_eq!(back.events(), t.events());
    assert_eq!(back.savings(6000.0), t.savings(6000.0));
    let mut later = Timeline::new(3);
    later.restore(kept, 86_400.0 + 3000.0);
    assert!(later.samples().iter().all(|s| s.at as f64 >= 3000.0 + 60.0 - 60.0));
    assert!(later.samples().len() < t.samples().len() && !later.samples().is_empty());
}

#[test]
fn the_page_escapes_reasons_and_pausing_needs_the_token() {
    let d = Dashboard::new(0.05, None);
    d.track("worker", 4, "sidekiq", None);
    d.observe_at(60.0, &cycle(0, 1, 3, "<script>alert(1)</script> scale up", None));
    let html = page::render(&d, 61.0);
    assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"), "escaped");
    assert!(!html.contains("<form"), "read-only without a token");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (code, msg) = rt.block_on(d.set_pause("anything", "worker", true, None)).unwrap_err();
    assert_eq!(code, 403, "{msg}");
    let with = Dashboard::new(0.05, Some(Secret::new("0123456789abcdef")));
    let store = Arc::new(InMemoryStore::new());
    with.track("worker", 4, "sidekiq", Some(store.clone()));
    assert!(page::render(&with, 61.0).contains("<form"));
    let (code, msg) = rt.block_on(with.set_pause("0123456789abcdeX", "worker", true, None)).unwrap_err();
    assert_eq!((code, msg.as_str()), (403, "wrong token"));
    let ok = rt.block_on(with.set_pause("0123456789abcdef", "worker", true, Some(Duration::from_secs(900))));
    let ok = ok.unwrap();
    assert!(ok.starts_with("worker: paused until 20"), "{ok}");
    let kept = rt.block_on(store.lease("worker").read()).unwrap();
    assert!(kept.pause.is_some_and(|p| p.until.is_some()), "the pause is in the store");
    assert_eq!(rt.block_on(with.set_pause("0123456789abcdef", "nope", true, None)).unwrap_err().0, 404);
}
