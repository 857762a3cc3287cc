//! Heroku Cedar's stop order, observed and not documented (`heroku-platform-api.md` §8): a scale-down stops the
//! highest-numbered dynos first (`worker.10` … `worker.6` going from 10 to 5). Fir names dynos without numbers
//! (`worker-23z34x56y-w78k9`) and does not stop them by name: those hosts are placed as unknown. One rule for the
//! Heroku adapter, the in-memory platform and the simulator.

use crate::platform::Placement;
use crate::snapshot::Snapshot;

/// Where `host` is for a scale-down of `process_type` from `current` dynos.
///
/// ```
/// use dyno_scaler_core::Placement;
/// use dyno_scaler_core::cedar::place;
/// assert_eq!(place("worker", 3, "worker.3"), Placement::Stops(0));
/// assert_eq!(place("worker", 3, "worker.1"), Placement::Stops(2));
/// assert_eq!(place("worker", 3, "urgent.1"), Placement::Elsewhere);
/// assert_eq!(place("worker", 3, "worker-23z34x56y-w78k9"), Placement::Unknown);
/// assert_eq!(place("worker", 3, "ip-10-0-0-1"), Placement::Unknown);
/// ```
pub fn place(process_type: &str, current: u32, host: &str) -> Placement {
    let Some((ty, n)) = host.rsplit_once('.') else { return Placement::Unknown };
    match n.parse::<u32>() {
        Ok(n) if ty == process_type && (1..=current).contains(&n) => Placement::Stops(current - n),
        // A dyno of another process type, or one of this type already beyond the quantity.
        Ok(_) if !ty.is_empty() && !ty.contains(['.', ':', '/']) => Placement::Elsewhere,
        _ => Placement::Unknown,
    }
}

/// The dynos going from `from` to `to` stops, in the order Cedar stops them.
pub fn victims(process_type: &str, from: u32, to: u32) -> Vec<String> {
    (to + 1..=from).rev().map(|n| format!("{process_type}.{n}")).collect()
}

/// Where every worker host of `snapshot` stands by [`place`], for a caller without a platform (a policy test, the
/// simulator).
pub fn placements(
    process_type: &str,
    current: u32,
    snapshot: &Snapshot,
) -> std::collections::BTreeMap<String, Placement> {
    let hosts = snapshot.workers.iter().flatten().filter_map(|w| w.dyno.as_ref());
    hosts.map(|h| (h.clone(), place(process_type, current, h))).collect()
}
