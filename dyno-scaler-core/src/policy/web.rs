//! The web rule: dynos for a web process type from its requests ([`RequestStats`]), as the `request_queue`
//! source reads them. Pure.
//!
//! - **Capacity**: the threads the load keeps busy (Little's law: requests a second × time in the app), at most
//!   [`UTILIZATION`] of each dyno's threads (Puma threads × workers), so a burst finds a free thread.
//! - **Backlog**: when the percentile of queue time is over the target, the busy threads *and* the waiting requests
//!   (requests a second × mean queue time) each on a thread of its own, and at least one dyno more than now: the
//!   step the backlog implies, not +1 per cool-down.
//! - No requests in the window is no traffic: nothing wanted (the bounds keep `min_workers`, 1 for web). A source
//!   that cannot tell (no middleware seen) marks its reading unreadable instead, which holds the quantity.
//!
//! Going down is the policy's usual way: after the down delay (10 minutes for web), to the largest demand seen
//! during it. Requests are short and Heroku lets in-flight ones finish on SIGTERM: no drain.
//!
//! ```
//! use std::time::Duration;
//! use dyno_scaler_core::policy::web::demand;
//! use dyno_scaler_core::requests::RequestStats;
//! let target = Duration::from_millis(250);
//! // 40 requests a second of 100 ms: 4 threads busy; 5 threads a dyno at 75 %: 2 dynos.
//! let calm = RequestStats { requests: 400, measured: 400, rate: 40.0, service_secs: 0.1, queue_pct_secs: 0.01, ..Default::default() };
//! assert_eq!(demand(Some(&calm), target, 5, 1), 2);
//! // Saturated on 2 dynos: 10 threads busy, p95 of 2 s, 10 × 0.8 s = 8 waiting on average: (10 + 8) / 5 = 4.
//! let over = RequestStats { rate: 100.0, service_secs: 0.1, queue_mean_secs: 0.08, queue_pct_secs: 2.0, measured: 1000, requests: 1000, ..Default::default() };
//! assert_eq!(demand(Some(&over), target, 5, 2), 4);
//! assert_eq!(demand(Some(&RequestStats::default()), target, 5, 3), 0, "no traffic");
//! ```

use std::time::Duration;

use crate::requests::RequestStats;

/// The share of a dyno's threads the capacity part keeps busy at most.
pub const UTILIZATION: f64 = 0.75;

/// The dynos the requests want: `threads` a dyno, `current` running now.
pub fn demand(requests: Option<&RequestStats>, target: Duration, threads: u32, current: u32) -> u32 {
    let Some(r) = requests else { return 0 };
    if r.requests == 0 {
        return 0;
    }
    let per_dyno = f64::from(threads.max(1));
    let busy = r.busy_threads();
    let mut want = (busy / (per_dyno * UTILIZATION)).ceil();
    if r.measured > 0 && r.queue_pct_secs > target.as_secs_f64() {
        let backlog = ((busy + r.waiting()) / per_dyno).ceil();
        want = want.max(backlog).max(f64::from(current) + 1.0);
    }
    want.clamp(0.0, f64::from(u32::MAX)) as u32
}
