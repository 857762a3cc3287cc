//! Quiet-then-drain: before a scale-down whose victims the platform names, the processes on those victims are
//! told to take no new jobs, and the shrink waits until each shows quiet and idle on a heartbeat taken after the
//! signal. Pure bookkeeping; the scaler does the I/O.

use std::time::{Duration, SystemTime};

use crate::gate::Gate;
use crate::snapshot::{Snapshot, WorkerInfo};

/// Re-send the signal when a victim has not gone quiet this long after it (about three Sidekiq 7 beats; the
/// signal itself expires after 60 s).
pub const RESIGNAL_AFTER: Duration = Duration::from_secs(30);

/// How long a scale-up waits for a drain whose victims are busy: about one dyno boot, after which a fresh dyno
/// would have been quicker.
pub const HOLD_UP_FOR: Duration = Duration::from_secs(30);

/// A shrink waiting for its victims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drain {
    /// The quantity before.
    pub from: u32,
    /// The quantity after.
    pub to: u32,
    /// The victims' names (dynos).
    pub dynos: Vec<String>,
    /// The identities of the processes quieted.
    pub identities: Vec<String>,
    /// When the drain began.
    pub started: SystemTime,
    /// When the signal was last sent.
    pub signalled: SystemTime,
}

/// The processes running on the `dynos` about to stop.
pub fn victims<'a>(snapshot: &'a Snapshot, dynos: &[String]) -> Vec<&'a WorkerInfo> {
    snapshot.workers.iter().flatten().filter(|w| w.dyno.as_ref().is_some_and(|d| dynos.contains(d))).collect()
}

/// The quieted processes not yet seen quiet and idle on a heartbeat after `signalled` (a process gone from the
/// snapshot has stopped: it is drained).
pub fn pending<'a>(snapshot: &'a Snapshot, drain: &Drain) -> Vec<&'a WorkerInfo> {
    victims(snapshot, &drain.dynos)
        .into_iter()
        .filter(|w| {
            let fresh = w.beat.is_none_or(|b| b > drain.signalled);
            !(w.quiet && w.busy == 0 && fresh)
        })
        .collect()
}

/// What one decision needs from quiet-then-drain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Go to this quantity instead of the decision's, through this gate (a hold while victims drain, or the end
    /// of a shrink whose victims were quieted).
    pub set: Option<(u32, Gate)>,
    /// Identities to quiet now (a new drain, or a re-signal).
    pub quiet: Vec<String>,
    /// The victims still draining.
    pub draining: Vec<String>,
    /// What happened, for the log.
    pub note: Option<&'static str>,
}

/// One step of quiet-then-drain for a decision from `from` to `to` workers, carrying the drain in `state`.
/// `victims` are the processes the platform stops for the decision's shrink (`None`: unknown, nothing to drain).
/// Pure: the caller quiets `Outcome::quiet` and applies `Outcome::set`.
///
/// A quieted process never takes a job again until its dyno restarts, so once victims are quieted the shrink is
/// finished even if demand returns meanwhile: they are stopped as soon as they are drained, and the next decision
/// scales up with fresh dynos.
pub fn step(
    state: &mut Option<Drain>,
    snapshot: &Snapshot,
    (from, to): (u32, u32),
    victims: Option<Vec<String>>,
    now: SystemTime,
    max_drain: Duration,
) -> Outcome {
    let mut out = Outcome::default();
    let shrinking = to < from;
    let mut d = match (state.take(), shrinking) {
        // The same shrink, demand back while victims drain, or a smaller shrink (its quieted victims would be
        // left running quiet, taking no job, if it were dropped): finish what was started. A formation changed
        // under it (by hand, by another instance) ends it: finishing would stop dynos it never quieted.
        (Some(d), _) if d.from == from && (!shrinking || to >= d.to) => d,
        (_, false) => return out,
        (_, true) => {
            let Some(dynos) = victims else { return out };
            let identities: Vec<String> = self::victims(snapshot, &dynos).iter().map(|w| w.identity.clone()).collect();
            if identities.is_empty() {
                return out; // no process runs on the victims
            }
            out.quiet = identities.clone();
            out.note = Some("quieting the victims of a scale-down");
            Drain { from, to, dynos, identities, started: now, signalled: now }
        }
    };
    let pending_now = pending(snapshot, &d);
    let waiting: Vec<String> = pending_now.iter().map(|w| w.identity.clone()).collect();
    let waited = now.duration_since(d.started).unwrap_or_default();
    if to > from && waited >= HOLD_UP_FOR && pending_now.iter().any(|w| w.busy > 0) && out.quiet.is_empty() {
        // Work waits and a victim is still busy after a boot's time (a long job): a fresh dyno comes sooner than
        // the victim. The quiet victims finish their jobs and take no more; they are no capacity until the
        // formation shrinks past them.
        out.note = Some("demand returned while victims were busy: scaling up, the victims stay quiet");
        return out;
    }
    if waiting.is_empty() && out.quiet.is_empty() {
        out.note = Some("victims drained");
        if !shrinking || to != d.to {
            out.set = Some((d.to, Gate::Finishing { dynos: d.dynos.clone() }));
        }
        return out;
    }
    if waited > max_drain {
        out.note = Some("gave up draining: the victims stayed busy past max_drain; not scaling down");
        out.set = Some((from, Gate::GaveUpDraining { dynos: d.dynos.clone(), waited_secs: waited.as_secs() }));
        return out;
    }
    if out.quiet.is_empty() && now.duration_since(d.signalled).unwrap_or_default() > RESIGNAL_AFTER {
        out.quiet = pending_now.iter().filter(|w| !w.quiet).map(|w| w.identity.clone()).collect();
        if !out.quiet.is_empty() {
            d.signalled = now;
        }
    }
    let waiting = if waiting.is_empty() { d.identities.clone() } else { waiting };
    out.set = Some((from, Gate::Draining { dynos: d.dynos.clone(), waiting }));
    out.draining = d.dynos.clone();
    *state = Some(d);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(dyno: &str, busy: u32, quiet: bool, beat: u64) -> WorkerInfo {
        WorkerInfo {
            identity: format!("{dyno}:4:abc"),
            dyno: Some(dyno.into()),
            busy,
            quiet,
            beat: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(beat)),
        }
    }

    #[test]
    fn a_victim_is_drained_when_quiet_and_idle_after_the_signal() {
        let drain = Drain {
            from: 3,
            to: 2,
            dynos: vec!["worker.3".into()],
            identities: vec!["worker.3:4:abc".into()],
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
            signalled: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
        };
        let snap = |workers| Snapshot { workers: Some(workers), ..Snapshot::default() };
        // Busy, not quiet yet, or quiet but on a beat from before the signal: pending.
        for v in [w("worker.3", 1, false, 105), w("worker.3", 1, true, 105), w("worker.3", 0, true, 99)] {
            assert_eq!(pending(&snap(vec![v.clone(), w("worker.1", 1, false, 105)]), &drain).len(), 1, "{v:?}");
        }
        assert!(pending(&snap(vec![w("worker.3", 0, true, 105)]), &drain).is_empty());
        // Gone (stopped): drained.
        assert!(pending(&snap(vec![w("worker.1", 1, false, 105)]), &drain).is_empty());
    }

    #[test]
    fn a_smaller_shrink_never_replaces_a_drain_whose_victims_are_quiet() {
        // 10 -> 0 quieted every process; the demand now wants 3: dropping the drain would leave worker.1..3 quiet
        // (no capacity) and running for ever. The drain goes on; a larger shrink would replace it.
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let dynos: Vec<String> = (1..=10).rev().map(|n| format!("worker.{n}")).collect();
        let workers: Vec<WorkerInfo> = (1..=10).map(|n| w(&format!("worker.{n}"), 0, false, 99)).collect();
        let snap = Snapshot { workers: Some(workers), ..Snapshot::default() };
        let mut state = Some(Drain {
            from: 10,
            to: 0,
            identities: dynos.iter().map(|d| format!("{d}:4:abc")).collect(),
            dynos,
            started: t(100),
            signalled: t(100),
        });
        let victims = Some((4..=10).rev().map(|n| format!("worker.{n}")).collect());
        let out = step(&mut state, &snap, (10, 3), victims, t(101), Duration::from_secs(600));
        assert_eq!(state.as_ref().map(|d| (d.from, d.to)), Some((10, 0)));
        assert!(out.quiet.is_empty(), "{out:?}");
        assert_eq!(out.set.map(|s| s.0), Some(10), "held while the quieted victims drain");
    }

    #[test]
    fn work_waiting_while_a_victim_runs_a_long_job_scales_up_at_once() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let drain = || Drain {
            from: 2,
            to: 1,
            dynos: vec!["worker.2".into()],
            identities: vec!["worker.2:4:abc".into()],
            started: t(100),
            signalled: t(100),
        };
        let up = (2, 3);
        // The victim is quiet and busy on a fresh beat: the scale-up goes through, the drain is dropped.
        let snap = Snapshot { workers: Some(vec![w("worker.2", 1, true, 105)]), ..Snapshot::default() };
        let mut state = Some(drain());
        let out = step(&mut state, &snap, up, None, t(106), Duration::from_secs(600));
        assert_eq!(out.set.clone().map(|s| s.0), Some(2), "held for less than a boot: {out:?}");
        let mut state = Some(drain());
        let out = step(&mut state, &snap, up, None, t(131), Duration::from_secs(600));
        assert_eq!((out.set.clone(), state.is_none()), (None, true), "{out:?}");
        // Idle but not yet seen quiet after the signal: hold, finish the shrink first (it is moments away).
        let snap = Snapshot { workers: Some(vec![w("worker.2", 0, false, 99)]), ..Snapshot::default() };
        let mut state = Some(drain());
        let out = step(&mut state, &snap, up, None, t(131), Duration::from_secs(600));
        assert_eq!(out.set.clone().map(|s| s.0), Some(2), "{out:?}");
    }
}
