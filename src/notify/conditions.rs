//! When dyno-scaler cannot do its job, pure: fed with every cycle's result, it says when a condition begins to
//! count (after `after` for the lasting ones) and when it clears, once each.
//!
//! | condition | fires | clears |
//! |---|---|---|
//! | `source_unreadable` | the queue unread for `after` | a reading |
//! | `pinned_at_max` | at `max_workers` with jobs ready for `after` | below the max, or nothing ready |
//! | `platform_refused` | the platform answers 401, 403, 404 or 422 | no refusal (or limit it named) holds work back |
//! | `lease_lost` | this instance led, then nobody did for `after` | this instance or another leads |
//! | `drain_given_up` | a scale-down given up (`max_drain`) | (an event: no recovery) |
//!
//! ```
//! use std::time::Duration;
//! use dyno_scaler::notify::Conditions;
//! let mut c = Conditions::new(Duration::from_secs(300));
//! c.track("worker", 4);
//! assert!(c.pinned("worker", 0.0, 4, 10).is_empty());
//! assert!(c.pinned("worker", 299.0, 4, 10).is_empty());
//! let fired = c.pinned("worker", 300.0, 4, 10);
//! assert_eq!((fired.len(), fired[0].firing), (1, true));
//! assert!(c.pinned("worker", 400.0, 4, 10).is_empty(), "told once");
//! assert!(!c.pinned("worker", 401.0, 4, 0)[0].firing, "then its recovery");
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use dyno_scaler_core::{Gate, PlatformError, Report, ScalerError};
use serde::Serialize;

/// What cannot be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The queue could not be read.
    SourceUnreadable,
    /// At `max_workers` while jobs wait.
    PinnedAtMax,
    /// The platform refused (key, app, process type, or a limit).
    PlatformRefused,
    /// This instance lost the lease and nobody leads.
    LeaseLost,
    /// A scale-down was given up because its victims stayed busy.
    DrainGivenUp,
}

impl Condition {
    /// Its name in the JSON body.
    pub fn name(self) -> &'static str {
        match self {
            Condition::SourceUnreadable => "source_unreadable",
            Condition::PinnedAtMax => "pinned_at_max",
            Condition::PlatformRefused => "platform_refused",
            Condition::LeaseLost => "lease_lost",
            Condition::DrainGivenUp => "drain_given_up",
        }
    }
}

/// A condition that begins to count (`firing`) or clears.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// Which.
    pub condition: Condition,
    /// The process type.
    pub process_type: String,
    /// `true` when it begins, `false` when it clears.
    pub firing: bool,
    /// When it began (Unix seconds).
    pub since: f64,
    /// Now (Unix seconds).
    pub at: f64,
    /// What happened, in words (no secret: errors are scrubbed where they are made).
    pub message: String,
}

/// One condition's state: since when it holds, and whether it was told.
#[derive(Debug, Clone, Default)]
struct State {
    since: Option<f64>,
    told: bool,
    detail: String,
}

#[derive(Debug, Default)]
struct Process {
    max_workers: u32,
    led: bool,
    states: BTreeMap<Condition, State>,
}

/// The conditions of every process type.
#[derive(Debug)]
pub struct Conditions {
    after: Duration,
    processes: BTreeMap<String, Process>,
}

impl Conditions {
    /// Lasting conditions are told after `after`.
    pub fn new(after: Duration) -> Self {
        Self { after, processes: BTreeMap::new() }
    }

    /// Watches `process_type`, at most `max_workers`.
    pub fn track(&mut self, process_type: &str, max_workers: u32) {
        self.processes.insert(process_type.to_owned(), Process { max_workers, ..Process::default() });
    }

    /// Takes in one cycle's result, ended at `now` (Unix seconds).
    pub fn observe(&mut self, now: f64, result: &Result<Report, ScalerError>) -> Vec<Notice> {
        let mut out = Vec::new();
        match result {
            Err(ScalerError::Source { process_type, source }) => {
                out.extend(self.hold(process_type, Condition::SourceUnreadable, now, true, false, || {
                    format!("the queue cannot be read: {source}")
                }));
            }
            Err(ScalerError::Platform { process_type, source }) => {
                let refused = matches!(
                    source,
                    PlatformError::Unauthorized { .. }
                        | PlatformError::Forbidden { .. }
                        | PlatformError::NotFound { .. }
                        | PlatformError::LimitExceeded { .. }
                );
                if refused {
                    out.extend(self.hold(process_type, Condition::PlatformRefused, now, true, true, || {
                        format!("the platform refused: {source}")
                    }));
                }
            }
            Ok(rep) => out.extend(self.report(now, rep)),
            Err(_) => {}
        }
        out
    }

    fn report(&mut self, now: f64, rep: &Report) -> Vec<Notice> {
        let pt = rep.process_type.as_str();
        let mut out = Vec::new();
        let gate = rep.decision.gate.as_ref();
        out.extend(self.hold(pt, Condition::SourceUnreadable, now, false, false, String::new));
        let t = rep.snapshot.totals();
        // Refused while the platform's answer holds work back: a change it refused (not asked again), or the limit
        // it named capping the quantity while jobs wait.
        let capped = rep.platform_limit.is_some_and(|l| rep.quantity_after() >= l && t.ready > 0);
        let refused = capped || matches!(gate, Some(Gate::Refused { .. }));
        out.extend(self.hold(pt, Condition::PlatformRefused, now, refused, true, || rep.decision.reason.clone()));
        out.extend(self.pinned(pt, now, rep.quantity_after(), t.ready));
        if let Some(Gate::GaveUpDraining { .. }) = gate {
            let g = gate.map(ToString::to_string).unwrap_or_default();
            out.push(Notice {
                condition: Condition::DrainGivenUp,
                process_type: pt.to_owned(),
                firing: true,
                since: now,
                at: now,
                message: format!("a scale-down was given up: {g}"),
            });
        }
        // The lease: lost when this instance led and now nobody does (a pause or another leader is neither).
        let Some(p) = self.processes.get_mut(pt) else { return out };
        let elsewhere = matches!(gate, Some(Gate::Following { leader: Some(_) } | Gate::Paused { .. }));
        let lost = p.led && !rep.acting && !elsewhere;
        p.led |= rep.acting;
        out.extend(self.hold(pt, Condition::LeaseLost, now, lost, false, || {
            format!("this instance lost the lease and nobody leads: {}", rep.decision.reason)
        }));
        out
    }

    /// At `quantity` with `ready` jobs at `now`: whether `process_type` is pinned at its max while work waits.
    pub fn pinned(&mut self, process_type: &str, now: f64, quantity: u32, ready: u64) -> Vec<Notice> {
        let max = self.processes.get(process_type).map_or(u32::MAX, |p| p.max_workers);
        let on = quantity >= max && ready > 0;
        self.hold(process_type, Condition::PinnedAtMax, now, on, false, || {
            format!("{quantity} workers (max_workers) and {ready} jobs still waiting")
        })
        .into_iter()
        .collect()
    }

    /// Moves one condition: `on` now; told at once when `at_once`, else after `after`; told clear once when it
    /// was told.
    fn hold(
        &mut self,
        pt: &str,
        c: Condition,
        now: f64,
        on: bool,
        at_once: bool,
        detail: impl FnOnce() -> String,
    ) -> Option<Notice> {
        let after = self.after.as_secs_f64();
        let p = self.processes.get_mut(pt)?;
        let s = p.states.entry(c).or_default();
        let notice = |firing: bool, since: f64, message: String| Notice {
            condition: c,
            process_type: pt.to_owned(),
            firing,
            since,
            at: now,
            message,
        };
        if on {
            let since = *s.since.get_or_insert(now);
            if !s.told {
                s.detail = detail();
            }
            if !s.told && (at_once || now - since >= after) {
                s.told = true;
                return Some(notice(true, since, s.detail.clone()));
            }
            None
        } else {
            let was = std::mem::take(s);
            (was.told).then(|| {
                notice(
                    false,
                    was.since.unwrap_or(now),
                    format!("recovered after {:.0}s", now - was.since.unwrap_or(now)),
                )
            })
        }
    }
}
