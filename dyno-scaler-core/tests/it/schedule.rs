//! Schedules on a manual clock: windows in named zones, across daylight-saving changes, naming themselves in
//! decisions.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dyno_scaler_core::policy::schedule::{ScheduleSetting, Window};
use dyno_scaler_core::*;

fn at(utc: &str) -> SystemTime {
    SystemTime::from(utc.parse::<jiff::Timestamp>().unwrap())
}

fn window(text: &str) -> Window {
    Window::parse(text).unwrap()
}

#[test]
fn a_window_keeps_its_local_hours_across_the_spring_and_autumn_changes() {
    let w = window("daily 08:00-09:00 Europe/Berlin max=3");
    // Saturday before the change (CET, UTC+1) and Monday after it (CEST, UTC+2).
    assert!(w.holds_at(at("2026-03-28T07:30:00Z")));
    assert!(!w.holds_at(at("2026-03-28T06:30:00Z")));
    assert!(w.holds_at(at("2026-03-30T06:30:00Z")), "08:30 CEST");
    assert!(!w.holds_at(at("2026-03-30T07:30:00Z")), "09:30 CEST");
    // The skipped hour: 02:00-03:00 does not exist on 29 March in Berlin.
    let skipped = window("daily 02:00-03:00 Europe/Berlin max=3");
    assert!(skipped.holds_at(at("2026-03-28T01:30:00Z")), "02:30 CET the day before");
    for t in ["2026-03-29T00:30:00Z", "2026-03-29T00:59:59Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"] {
        assert!(!skipped.holds_at(at(t)), "{t} is 01:xx CET or 03:xx CEST");
    }
    // The repeated hour: 02:00-03:00 happens twice on 25 October, and the window holds both times.
    assert!(skipped.holds_at(at("2026-10-25T00:30:00Z")), "02:30 CEST");
    assert!(skipped.holds_at(at("2026-10-25T01:30:00Z")), "02:30 CET");
    assert!(!skipped.holds_at(at("2026-10-25T02:00:00Z")), "03:00 CET");
}

#[test]
fn days_overnight_windows_and_bad_windows() {
    let w = window("fri 22:00-06:00 UTC min=1");
    assert!(w.holds_at(at("2026-11-27T23:00:00Z")), "Friday night");
    assert!(w.holds_at(at("2026-11-28T05:59:00Z")), "into Saturday morning");
    assert!(!w.holds_at(at("2026-11-28T06:00:00Z")));
    assert!(!w.holds_at(at("2026-11-28T23:00:00Z")), "Saturday night is not a Friday");
    let weekend = window("sat-sun 00:00-24:00 UTC max=1");
    assert!(weekend.holds_at(at("2026-11-29T23:59:00Z")) && !weekend.holds_at(at("2026-11-30T00:00:00Z")));
    let wrap = window("sun-tue 10:00-11:00 UTC max=1");
    assert!(wrap.holds_at(at("2026-11-30T10:30:00Z")), "Monday is inside sun-tue");
    assert!(!wrap.holds_at(at("2026-12-02T10:30:00Z")), "Wednesday is not");
    for (text, says) in [
        ("mon-fri 08:00-18:00 Mars/Olympus min=1", "unknown time zone"),
        ("mon-fri 08:00-25:00 UTC min=1", "invalid time"),
        ("mon-fry 08:00-18:00 UTC min=1", "unknown day"),
        ("mon-fri 08:00-08:00 UTC min=1", "are empty"),
        ("mon-fri 08:00-18:00 UTC", "neither min_workers nor max_workers"),
        ("mon-fri 08:00-18:00 UTC least=1", "not min=N or max=N"),
        ("mon-fri 08:00-18:00", "write DAYS HOURS ZONE"),
    ] {
        let e = Window::parse(text).unwrap_err();
        assert!(e.contains(says) && e.contains("schedule window"), "{text}: {e}");
    }
    let tables: ScheduleSetting = serde_json::from_str(
        r#"[{"name": "office", "days": "mon-fri", "hours": "09:00-17:00", "time_zone": "America/New_York", "min_workers": 2}]"#,
    )
    .unwrap();
    assert_eq!(tables.windows().unwrap()[0].name, "office");
    let text: ScheduleSetting =
        serde_json::from_str(r#""mon 09:00-10:00 UTC min=1; tue 09:00-10:00 UTC max=2""#).unwrap();
    assert_eq!(text.windows().unwrap().len(), 2);
}

#[tokio::test]
async fn the_window_in_force_sets_the_bounds_and_the_decision_names_it() {
    let clock = Arc::new(ManualClock::new(at("2026-03-06T13:30:00Z")));
    let queue = InMemoryQueue::new(clock.clone());
    let platform = InMemoryPlatform::new();
    let schedule = vec![window("mon-fri 09:00-17:00 America/New_York min=2"), window("daily 00:00-24:00 UTC max=1")];
    let config = PolicyConfig { max_workers: 5, down_delay: Duration::ZERO, schedule, ..PolicyConfig::classic() };
    let scaler =
        Scaler::builder("worker", Arc::new(queue.clone()), Arc::new(platform.clone()), Policy::new(config).unwrap())
            .clock(clock.clone())
            .build();
    // Friday 08:30 EST: the office window has not begun; the catch-all caps at 1.
    queue.push_many("default", 60);
    let r = scaler.reconcile().await.unwrap();
    assert_eq!(r.decision.to, 1, "{}", r.decision.reason);
    assert!(r.decision.reason.contains("schedule \"daily 00:00-24:00 UTC\" applies: [0, 1]"), "{}", r.decision.reason);
    // 09:30 EST: two workers at least, up to the process type's own 5.
    clock.set(at("2026-03-06T14:30:00Z"));
    let r = scaler.reconcile().await.unwrap();
    assert_eq!(r.decision.to, 3, "{}", r.decision.reason);
    assert!(r.decision.reason.contains("America/New_York\" applies: [2, 5]"), "{}", r.decision.reason);
    queue.clear();
    let r = scaler.reconcile().await.unwrap();
    assert_eq!(r.decision.to, 2, "empty, yet the window keeps 2: {}", r.decision.reason);
    // Monday after the change to EDT (UTC-4): 09:15 local is 13:15 UTC, inside; 08:45 local is outside.
    clock.set(at("2026-03-09T12:45:00Z"));
    let r = scaler.reconcile().await.unwrap();
    assert_eq!(r.decision.to, 0, "08:45 EDT: the catch-all's min 0: {}", r.decision.reason);
    clock.set(at("2026-03-09T13:15:00Z"));
    let r = scaler.reconcile().await.unwrap();
    assert_eq!(r.decision.to, 2, "09:15 EDT: {}", r.decision.reason);
    assert_eq!(platform.set_calls().iter().map(|(_, q)| *q).collect::<Vec<_>>(), vec![1, 3, 2, 0, 2]);
}
