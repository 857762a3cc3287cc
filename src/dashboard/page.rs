//! The dashboard's one HTML page: inline CSS and SVG, no script and no outside asset (its
//! `Content-Security-Policy` forbids loading any), refreshed by the browser every 30 s.

use std::fmt::Write as _;

use super::chart::{Series, clock, steps};
use super::{Dashboard, EventKind, Tracked};

/// The policy the page is served with: nothing may load from anywhere, not even its own origin, except inline
/// styles and images; forms post to the page's own origin only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; \
                       base-uri 'none'; frame-ancestors 'none'";

/// How many events the page lists per process type (`/api/history` has them all).
const SHOWN_EVENTS: usize = 40;

/// `s` with HTML's special characters escaped.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f9fafb;color:#111827}\
header{background:#111827;color:#f9fafb;padding:10px 20px}header h1{font-size:18px;margin:0}\
main{padding:12px 20px;max-width:1100px}section.pt{background:#fff;border:1px solid #e5e7eb;border-radius:6px;\
padding:12px 16px;margin:12px 0}h2{margin:0 0 6px;font-size:17px}table{border-collapse:collapse;margin:6px 0}\
td,th{padding:3px 10px;border-bottom:1px solid #f3f4f6;text-align:left;vertical-align:top}\
th{font-weight:600;color:#374151}.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#6b7280}\
.bad{color:#b91c1c}.ok{color:#15803d}.tick{font-size:10px;fill:#6b7280}.axis{font-size:11px;fill:#374151}\
.legend{font-size:11px;fill:#111827}.savings{font-size:15px}.events td.reason{max-width:620px;font-size:12px}\
form{display:inline-block;margin:6px 12px 0 0}input,select,button{font:inherit}";

/// The page at `now` (Unix seconds).
pub fn render(d: &Dashboard, now: f64) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>dyno-scaler</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><meta http-equiv=\"refresh\" content=\"30\">\
         <style>{STYLE}</style></head><body><header><h1>dyno-scaler {}</h1>\
         <span class=\"muted\">the last 24 h, one-minute peaks; updated {} UTC; JSON at /api/history</span></header><main>",
        env!("CARGO_PKG_VERSION"),
        clock(now)
    );
    let price = d.price();
    let can_pause = d.can_pause();
    for section in d.each(|pt, t| process_type(pt, t, now, price, can_pause)) {
        o.push_str(&section);
    }
    o.push_str("</main></body></html>");
    o
}

fn process_type(pt: &str, t: &Tracked, now: f64, price: f64, can_pause: bool) -> String {
    let mut o = String::new();
    let id = escape(pt);
    let _ = write!(o, "<section class=\"pt\" id=\"pt-{id}\" data-process-type=\"{id}\"><h2>{id}</h2>");
    let _ = write!(o, "<div>source <b>{}</b>, at most {} workers. ", escape(&t.source), t.max_workers);
    match &t.now {
        None => o.push_str("<span class=\"muted\">no cycle has finished yet.</span>"),
        Some(n) => {
            let role = match (&n.leader, n.acting) {
                (_, true) => "<span class=\"ok\">this instance acts</span>".to_owned(),
                (Some(l), false) => format!("following the leader <b>{}</b>", escape(l)),
                (None, false) => "not acting".to_owned(),
            };
            let _ = write!(o, "{role}; ");
            match &n.paused {
                Some(p) => {
                    let _ = write!(o, "<b class=\"bad pause\">paused {}</b>", escape(p));
                }
                None => o.push_str("<span class=\"pause\">not paused</span>"),
            }
            let _ = write!(
                o,
                ". Now: <b>{}</b> running, <b>{}</b> wanted{}.",
                n.current,
                n.desired,
                if n.draining.is_empty() {
                    String::new()
                } else {
                    format!(", draining {}", escape(&n.draining.join(", ")))
                }
            );
        }
    }
    if let Some(e) = &t.error {
        let _ = write!(o, "<div class=\"bad error\">failing: {}</div>", escape(e));
    }
    o.push_str("</div>");
    // Savings.
    let s = t.timeline.savings(now);
    let _ = write!(
        o,
        "<p class=\"savings\" data-worker-secs=\"{:.1}\">{:.3} worker-hours in the {:.2} h watched, against {:.3} always-on \
         at {}: <b>{:.3} dyno-hours saved</b> (${:.2} at ${:.4}/dyno-hour).</p>",
        s.worker_secs,
        s.worker_secs / 3600.0,
        s.covered_secs / 3600.0,
        s.always_on_secs / 3600.0,
        t.max_workers,
        s.saved_hours(),
        s.saved_hours() * price,
        price
    );
    // Queues now.
    if let Some(n) = &t.now {
        o.push_str("<table class=\"queues\"><tr><th>queue</th><th class=\"num\">ready</th><th class=\"num\">running</th><th class=\"num\">scheduled</th><th class=\"num\">latency</th></tr>");
        for (q, ready, running, scheduled, latency) in &n.queues {
            let lat = latency.map_or("–".to_owned(), |l| format!("{l:.1} s"));
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"num\">{ready}</td><td class=\"num\">{running}</td><td class=\"num\">{scheduled}</td><td class=\"num\">{lat}</td></tr>",
                escape(q)
            );
        }
        o.push_str("</table>");
    }
    // Charts: workers (one shared scale), then jobs.
    let samples = t.timeline.samples();
    // The day, or the time watched when shorter (an hour at least), so a new daemon's minutes are not a sliver.
    let first = samples.front().map_or(now, |s| s.at as f64);
    let range = ((now - 3600.0).min(first).max(now - 86_400.0), now);
    let pick = |f: fn(&super::Sample) -> f64| samples.iter().map(|s| (s.at as f64, f(s))).collect::<Vec<_>>();
    let workers = [
        Series { name: "desired", color: "#f59e0b", points: pick(|s| f64::from(s.desired)) },
        Series { name: "current", color: "#2563eb", points: pick(|s| f64::from(s.current)) },
        Series { name: "draining", color: "#dc2626", points: pick(|s| f64::from(s.draining)) },
    ];
    o.push_str(&steps("workers", &workers, range, 1040.0, 220.0));
    let jobs = [
        Series { name: "ready", color: "#7c3aed", points: pick(|s| s.ready as f64) },
        Series { name: "running", color: "#059669", points: pick(|s| s.running as f64) },
    ];
    o.push_str(&steps("jobs", &jobs, range, 1040.0, 160.0));
    if can_pause {
        let _ = write!(
            o,
            "<div class=\"controls\"><form method=\"post\" action=\"/pause\"><input type=\"hidden\" name=\"process_type\" value=\"{id}\">\
             <input type=\"password\" name=\"token\" placeholder=\"token\" autocomplete=\"off\" required> \
             <select name=\"for\"><option value=\"15m\">15 minutes</option><option value=\"1h\">1 hour</option>\
             <option value=\"\">until resumed</option></select> <button>Pause</button></form>\
             <form method=\"post\" action=\"/resume\"><input type=\"hidden\" name=\"process_type\" value=\"{id}\">\
             <input type=\"password\" name=\"token\" placeholder=\"token\" autocomplete=\"off\" required> \
             <button>Resume</button></form></div>"
        );
    }
    // Events, newest first.
    let events = t.timeline.events();
    let _ =
        write!(o, "<table class=\"events\"><tr><th>time (UTC)</th><th>event</th><th>workers</th><th>reason</th></tr>");
    for e in events.iter().rev().take(SHOWN_EVENTS) {
        let (kind, class) = match e.kind {
            EventKind::Scale => ("scale", "scale"),
            EventKind::Hold => ("hold", "hold"),
            EventKind::Error => ("failure", "bad"),
            EventKind::Recovered => ("recovered", "ok"),
        };
        let gate =
            e.gate.as_deref().filter(|g| *g != "policy").map(|g| format!(" ({})", escape(g))).unwrap_or_default();
        let _ = write!(
            o,
            "<tr class=\"event {kind}\"><td>{}</td><td class=\"{class}\">{kind}{gate}</td><td>{} → {}</td><td class=\"reason\">{}</td></tr>",
            clock(e.at),
            e.from,
            e.to,
            escape(&e.reason)
        );
    }
    if events.is_empty() {
        o.push_str("<tr><td colspan=\"4\" class=\"muted\">no events yet</td></tr>");
    }
    o.push_str("</table></section>");
    o
}
