//! Memory of the dashboard's day: the process's RSS before and after a `Dashboard` of three process types is fed a
//! simulated day (a cycle a second each: 259,200 cycles, a scale change every 5 minutes, a hold and a failure
//! every hour, the reasons the scaler writes), with the page and `/api/history` rendered as a browser and a script
//! would ask for them. Target (issue 32): within 2 MiB of the daemon without it. Prints figures.
//!
//! `cargo bench --bench dashboard_memory` (`DASHBOARD_REASON_CHARS=700`: every reason that long, the worst case;
//! `DASHBOARD_HTML=FILE`: the page written there, as docs/dashboard.png was taken)

use std::sync::Arc;
use std::time::Instant;

use dyno_scaler::core::*;
use dyno_scaler::dashboard::{Dashboard, page};

#[path = "support/proc.rs"]
mod proc;

fn rss_kib() -> u64 {
    proc::proc_field(std::process::id(), "status", "VmRSS:").unwrap_or(0)
}

/// A day's load: workers wanted every 5 minutes, a diurnal curve from 1 to 9 with a step either side.
fn wanted(s: u32) -> u32 {
    let day = (std::f64::consts::PI * f64::from(s) / 86_400.0).sin().powi(2);
    (1.0 + 7.0 * day + f64::from((s / 300) % 3)).round() as u32
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    let policy = Policy::new(PolicyConfig { max_workers: 10, ..PolicyConfig::classic() }).unwrap();
    let scaler =
        Scaler::builder("worker", Arc::new(queue), Arc::new(InMemoryPlatform::new()), policy).clock(clock).build();
    let base = scaler.reconcile().await.unwrap();
    let pad: usize = std::env::var("DASHBOARD_REASON_CHARS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let long = "x".repeat(pad);
    let before = rss_kib();
    let d = Dashboard::new(0.035, None);
    let pts = ["worker", "urgent", "mailers"];
    for pt in pts {
        d.track(pt, 10, "sidekiq", None);
    }
    let start = 1_700_000_000.0;
    let fed = Instant::now();
    let mut q = 1;
    for s in 0..86_400u32 {
        let now = start + f64::from(s);
        for pt in pts {
            let mut r = base.clone();
            r.process_type = pt.to_owned();
            let to = if s % 300 == 0 { wanted(s) } else { q };
            // Jobs wait in the minute before a scale-up (what it answers), each worker runs 5.
            let ahead = wanted(s - s % 300 + 300);
            let (ready, running) = (if ahead > q && s % 300 > 240 { 5 * (ahead - q) } else { 0 }, q * 5);
            let mut snap = Snapshot::default();
            snap.add("default", QueueStats::new(u64::from(ready), u64::from(running), 3));
            snap.add("low", QueueStats::new(0, u64::from(s % 2), 0));
            let verb = if to > q { "scale up" } else { "scale down" };
            let reason = format!(
                "{ready} ready, {running} running, oldest 3.2s; want {to} (thresholds {to}); {verb} {q} -> {to}{long}"
            );
            let mut decision = Decision::new(q, to, to, reason);
            if s % 3600 == 1800 {
                decision
                    .apply_gate(Gate::Draining { dynos: vec!["worker.9".into()], waiting: vec!["worker.9".into()] });
            }
            r.applied = decision.direction() != Direction::Hold;
            (r.snapshot, r.decision) = (snap, decision);
            let result = if s % 3600 == 2700 {
                Err(ScalerError::Source {
                    process_type: pt.to_owned(),
                    source: SourceError::Unavailable {
                        source_name: "redis".into(),
                        message: format!("timed out after 2s{long}"),
                        cause: None,
                    },
                })
            } else {
                Ok(r)
            };
            d.observe_at(now, &result);
        }
        q = if s % 300 == 0 { wanted(s) } else { q };
    }
    let fed = fed.elapsed();
    let fed_rss = rss_kib();
    let end = start + 86_400.0;
    let t = Instant::now();
    let mut html = 0;
    for _ in 0..10 {
        html = page::render(&d, end).len();
    }
    let page_time = t.elapsed() / 10;
    let t = Instant::now();
    let mut json = 0;
    for _ in 0..10 {
        json = d.history(end).len();
    }
    let json_time = t.elapsed() / 10;
    let after = rss_kib();
    if let Ok(path) = std::env::var("DASHBOARD_HTML") {
        std::fs::write(&path, page::render(&d, end)).unwrap();
    }
    let samples: usize = d.each(|_, t| t.timeline.samples().len()).iter().sum();
    let events: usize = d.each(|_, t| t.timeline.events().len()).iter().sum();
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "dashboard: 3 process types, a day of 1 s cycles ({samples} minutes, {events} events kept; reasons padded by {pad})"
    );
    println!(
        "  RSS before {:.2} MiB, after the day {:.2} MiB, after 10 pages and 10 /api/history {:.2} MiB",
        mib(before),
        mib(fed_rss),
        mib(after)
    );
    println!("  growth {:.2} MiB (target: within 2 MiB)", mib(after.saturating_sub(before)));
    println!("  feeding: {:.2} µs a cycle", fed.as_secs_f64() * 1e6 / (86_400.0 * 3.0));
    println!(
        "  page: {html} bytes in {:.1} ms; /api/history: {json} bytes in {:.1} ms",
        page_time.as_secs_f64() * 1e3,
        json_time.as_secs_f64() * 1e3
    );
}
