//! Quiet-then-drain: before a scale-down whose victims the platform names, the processes on those victims are
//! told to take no new jobs, and the shrink waits until each shows quiet and idle on a heartbeat taken after the
//! signal. Pure bookkeeping; the scaler does the I/O.

use std::time::{Duration, SystemTime};

use crate::snapshot::{Snapshot, WorkerInfo};

/// Re-send the signal when a victim has not gone quiet this long after it (about three Sidekiq 7 beats; the
/// signal itself expires after 60 s).
pub const RESIGNAL_AFTER: Duration = Duration::from_secs(30);

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
}
