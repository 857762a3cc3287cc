//! `dyno-scaler status`.

use serde_json::{Value, json};

use super::super::build;
use super::super::config::Settings;

/// Seconds, to the millisecond.
fn seconds(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// `status`: one reading per process type and the decision it would take, without acting.
pub async fn status(s: &Settings, as_json: bool) -> u8 {
    let scalers = match build::scalers(s, true).await {
        Ok(v) => v,
        Err(e) => {
            crate::cli::logging::error(e);
            return 2;
        }
    };
    let mut rows = Vec::new();
    let mut code = 0;
    for (sc, p) in scalers.iter().zip(&s.processes) {
        let unknown = super::unknown_queues(p, sc.source()).await;
        let ev = super::event_status(s, sc.source()).await;
        let events = json!({ "mode": ev.mode, "detail": ev.detail, "poll_interval_seconds": s.poll_interval.as_secs_f64(),
            "summary": super::describe_events(&ev, s.poll_interval) });
        match sc.preview().await {
            Ok(rep) => {
                let t = rep.snapshot.totals();
                let mut reason = rep.decision.reason.clone();
                super::one_reading(&mut reason);
                let queues: Vec<Value> = rep
                    .snapshot
                    .queues
                    .iter()
                    .map(|(name, q)| {
                        json!({ "name": name, "ready": q.ready, "running": q.running, "scheduled": q.scheduled,
                            "latency_seconds": q.oldest_ready_age.map(seconds) })
                    })
                    .collect();
                rows.push(json!({
                    "process_type": rep.process_type,
                    "source": rep.source,
                    "ready": t.ready,
                    "running": t.running,
                    "scheduled": t.scheduled,
                    "latency_seconds": t.oldest_ready_age.map(seconds),
                    "skipped": rep.snapshot.skipped,
                    // Dynos whose processes are quiet: the victims of a scale-down being drained.
                    "draining": rep.snapshot.quiet_dynos(),
                    "current": rep.decision.from,
                    "desired": rep.decision.to,
                    "reason": reason,
                    // What held the decision (a pause, the lease, a drain...), typed: its `kind` and its fields.
                    "gate": rep.decision.gate,
                    "would": rep.decision.would,
                    "events": events,
                    "queues": queues,
                    "unknown_queues": unknown.as_ref().map(|u| &u.0),
                    "warnings": unknown.as_ref().map(|u| vec![&u.1]).unwrap_or_default(),
                    "leader": rep.leader,
                    "paused": rep.paused.as_ref().map(|p| json!({ "until": p.until_time().map(dyno_scaler::core::timefmt::format_rfc3339), "by": p.by })),
                }));
            }
            Err(e) => {
                code = 1;
                rows.push(json!({
                    "process_type": sc.process_type(),
                    "source": sc.source().name(),
                    "ready": null, "running": null, "scheduled": null, "latency_seconds": null, "skipped": null,
                    "draining": null,
                    "current": null, "desired": null,
                    "reason": "quantity held: the scaler could not read",
                    "gate": null,
                    "would": null,
                    "error": e.to_string(),
                    "events": events,
                    "queues": null,
                    "unknown_queues": null,
                    "warnings": [],
                    "leader": null,
                    "paused": null,
                }));
            }
        }
    }
    for (row, p) in rows.iter_mut().zip(&s.processes) {
        row["platform"] = json!(p.platform.name());
        row["target"] = json!(p.platform.target);
    }
    if as_json {
        println!("{}", json!({ "processes": rows }));
    } else {
        println!(
            "{:<16} {:<12} {:>8} {:>8} {:>10} {:>10} {:>8} {:>8}  reason",
            "process_type", "source", "ready", "running", "scheduled", "latency_s", "current", "desired"
        );
        let cell = |v: &Value| match v {
            Value::Null => "-".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        for r in &rows {
            println!(
                "{:<16} {:<12} {:>8} {:>8} {:>10} {:>10} {:>8} {:>8}  {}",
                cell(&r["process_type"]),
                cell(&r["source"]),
                cell(&r["ready"]),
                cell(&r["running"]),
                cell(&r["scheduled"]),
                cell(&r["latency_seconds"]),
                cell(&r["current"]),
                cell(&r["desired"]),
                r.get("error").map(cell).unwrap_or_else(|| cell(&r["reason"]))
            );
        }
        for r in &rows {
            println!("events of {}: {}", cell(&r["process_type"]), cell(&r["events"]["summary"]));
            for w in r["warnings"].as_array().into_iter().flatten() {
                println!("warning for {}: {}", cell(&r["process_type"]), cell(w));
            }
            if let Some(l) = r["leader"].as_str() {
                println!("leader of {}: {l}", cell(&r["process_type"]));
            }
            if let Some(p) = r["paused"].as_object() {
                let until = p["until"].as_str().map_or("until resumed".to_owned(), |u| format!("until {u}"));
                println!("{} is paused {until} by {}", cell(&r["process_type"]), cell(&p["by"]));
            }
        }
    }
    code
}
