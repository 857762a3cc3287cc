//! What stood between the policy's decision and the platform in one reconcile: a [`Gate`], typed, so that logs,
//! `status --json`, `/metrics` and tests match on it, and put into words in one place ([`Decision::apply_gate`]).
//!
//! A reconcile is decide → gates → apply: the policy decides ([`crate::Policy`]), then the gates may hold the
//! decision (a pause, another instance's lease, a refusal remembered, victims draining, the lease lost) or, for a
//! scale-down whose victims were quieted, finish it; only then is the platform asked.
//!
//! ```
//! use dyno_scaler_core::{Decision, Gate};
//! let mut d = Decision::new(2, 3, 3, "4 ready, 0 running; want 3 (drain 3); scale up 2 -> 3");
//! d.apply_gate(Gate::Following { leader: Some("web.1:42:0a0b0c0d".into()) });
//! assert_eq!((d.to, d.would, d.held()), (2, Some(3), true));
//! assert!(d.reason.ends_with("not acting, following: the lease is held by web.1:42:0a0b0c0d (would scale 2 -> 3)"));
//! assert_eq!(serde_json::to_value(&d.gate).unwrap()["kind"], "following");
//! ```

use std::fmt::{self, Display, Formatter};

use serde::Serialize;

use crate::lease::Pause;
use crate::policy::{Decision, Direction};

/// One gate that held (or, for [`Gate::Finishing`], finished) a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Gate {
    /// A pause holds the process type.
    Paused {
        /// The pause.
        pause: Pause,
    },
    /// Another instance holds the process type's lease (or nobody does yet).
    Following {
        /// The holder, if any.
        leader: Option<String>,
    },
    /// The lease's store cannot be reached, so this instance cannot know that it leads.
    StoreUnreachable {
        /// The store (`redis`, `postgres`, ...).
        store: String,
        /// Its error.
        error: String,
    },
    /// The platform refused this very change before, for a reason it did not explain as a limit; it is not asked
    /// again until the queue or the formation changes.
    Refused {
        /// The quantity read.
        from: u32,
        /// The quantity refused.
        to: u32,
    },
    /// The victims of a scale-down were quieted and are finishing their jobs.
    Draining {
        /// The processes the scale-down stops.
        dynos: Vec<String>,
        /// The workers still to be seen quiet and idle.
        waiting: Vec<String>,
    },
    /// The victims stayed busy past `max_drain`: the scale-down is given up.
    GaveUpDraining {
        /// The processes it would have stopped.
        dynos: Vec<String>,
        /// How long they drained, seconds.
        waited_secs: u64,
    },
    /// The victims could not be quieted (the source's error).
    QuietFailed {
        /// The error.
        error: String,
    },
    /// The lease ran out during the cycle, before the platform was asked.
    LeaseLost,
    /// The lease ran out during the platform call: the call was abandoned, and the formation is read again.
    Abandoned,
    /// Not a hold: the quieted victims are drained, and the shrink they were quieted for is finished.
    Finishing {
        /// The processes stopped.
        dynos: Vec<String>,
    },
}

impl Gate {
    /// Its name, as `status --json` and `/metrics` show it (`following`, `draining`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Gate::Paused { .. } => "paused",
            Gate::Following { .. } => "following",
            Gate::StoreUnreachable { .. } => "store_unreachable",
            Gate::Refused { .. } => "refused",
            Gate::Draining { .. } => "draining",
            Gate::GaveUpDraining { .. } => "gave_up_draining",
            Gate::QuietFailed { .. } => "quiet_failed",
            Gate::LeaseLost => "lease_lost",
            Gate::Abandoned => "abandoned",
            Gate::Finishing { .. } => "finishing",
        }
    }

    /// Whether this instance does not act at all (a pause, or no lease): the decision is only what it would do.
    pub fn stands_aside(&self) -> bool {
        matches!(self, Gate::Paused { .. } | Gate::Following { .. } | Gate::StoreUnreachable { .. })
    }
}

/// The gate's own words (without the decision's figures).
impl Display for Gate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Gate::Paused { pause } => write!(f, "paused {} by {}", pause.describe(), pause.by),
            Gate::Following { leader } => {
                write!(f, "following: the lease is held by {}", leader.as_deref().unwrap_or("nobody yet"))
            }
            Gate::StoreUnreachable { store, error } => {
                write!(f, "the lease's store ({store}) cannot be reached: {error}")
            }
            Gate::Refused { from, to } => write!(
                f,
                "not asking again: the platform refused {from} -> {to} (waiting for the queue or the formation to change)"
            ),
            Gate::Draining { dynos, waiting } => write!(
                f,
                "draining {}: waiting until {} are quiet and idle on a heartbeat after the signal",
                dynos.join(", "),
                waiting.join(", ")
            ),
            Gate::GaveUpDraining { dynos, waited_secs } => {
                write!(f, "gave up draining {} after {waited_secs}s (max_drain)", dynos.join(", "))
            }
            Gate::QuietFailed { error } => write!(f, "the victims could not be quieted ({error})"),
            Gate::LeaseLost => f.write_str("not acting: the lease ran out during the cycle"),
            Gate::Abandoned => f.write_str(
                "not acting: the lease ran out during the platform call (abandoned; the formation is read again)",
            ),
            Gate::Finishing { dynos } => write!(f, "finishing the shrink of the quieted {}", dynos.join(", ")),
        }
    }
}

impl Decision {
    /// Passes the decision through `gate`: it holds at the quantity read (or, for [`Gate::Finishing`], goes to
    /// `to`), and its reason says why, put into words here and nowhere else.
    pub fn apply_gate(&mut self, gate: Gate) {
        self.apply_gate_to(self.from, gate);
    }

    /// Like [`Decision::apply_gate`], going to `to` instead of holding (a drain's step: the shrink it finishes).
    pub fn apply_gate_to(&mut self, to: u32, gate: Gate) {
        use std::fmt::Write as _;
        let (from, was, holding) = (self.from, self.to, self.direction() == Direction::Hold);
        let r = &mut self.reason;
        // Writing into a String cannot fail.
        let _ = match &gate {
            g if g.stands_aside() && holding => write!(r, "; {g}"),
            g if g.stands_aside() => write!(r, "; not acting, {g} (would scale {from} -> {was})"),
            g @ (Gate::Draining { .. } | Gate::GaveUpDraining { .. } | Gate::Finishing { .. }) => {
                write!(r, "; {g}: {from} -> {to}")
            }
            g @ Gate::QuietFailed { .. } => write!(r, "; hold at {from}: {g}"),
            g => write!(r, "; {g}"),
        };
        self.would.get_or_insert(was);
        self.to = to;
        self.gate = Some(gate);
    }

    /// Whether a gate held this decision (it changes nothing that the policy would have changed).
    pub fn held(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| !matches!(g, Gate::Finishing { .. }))
    }
}
