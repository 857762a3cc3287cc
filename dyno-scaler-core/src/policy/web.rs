//! The web rule: dynos for a web process type from its requests ([`RequestStats`]), as the `request_queue`
//! source reads them. Pure.
//!
//! - **Capacity**: the fewest dynos on which the load (requests a second, time in the app) would wait no longer
//!   than the target at the percentile, each dyno a queue of its own in front of its threads (Heroku's router picks
//!   dynos at random and does not balance): Erlang C for `threads` servers at the dyno's share of the rate
//!   ([`predicted_wait`]).
//! - **Backlog**: when the percentile of queue time is over the target, at least one dyno more than those the
//!   measurements show serving (their busy threads; dynos still booting serve nothing yet, and counting from the
//!   quantity would add one every cycle until they are up), and as many more as the waiting work needs to be done
//!   within [`DRAIN`]: the requests waiting (requests a second × mean queue time) times their time in the app, over
//!   a dyno's threads. The measured rate is what the serving dynos got done, so in a surge it is below what
//!   arrives: the waiting work is what says how far below.
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
//! // 45 requests a second of 100 ms: 4.5 threads busy; on one dyno of 5 the p95 would be about 0.5 s: 2 dynos.
//! let calm = RequestStats { requests: 450, measured: 450, rate: 45.0, service_secs: 0.1, queue_pct_secs: 0.01, ..Default::default() };
//! assert_eq!(demand(Some(&calm), target, 5, 1), 2);
//! // 30 requests a second: 3 busy, the p95 on one dyno under 250 ms (Erlang C): 1.
//! let light = RequestStats { rate: 30.0, ..calm };
//! assert_eq!(demand(Some(&light), target, 5, 1), 1);
//! // Saturated on 2 dynos: 10 threads busy, p95 of 2 s; 100 a second waiting 8 s on average: 800 waiting, 80 s of
//! // work, 0.53 dynos' worth over 30 s: one more than the 2 serving. The rate alone would want 3 too.
//! let over = RequestStats { rate: 100.0, service_secs: 0.1, queue_mean_secs: 8.0, queue_pct_secs: 20.0, measured: 1000, requests: 1000, ..Default::default() };
//! assert_eq!(demand(Some(&over), target, 5, 2), 3);
//! // Twice that backlog with the rate of one dyno: 1 serving + 2 for the backlog.
//! let surge = RequestStats { rate: 50.0, queue_mean_secs: 32.0, ..over };
//! assert_eq!(demand(Some(&surge), target, 5, 4), 3);
//! assert_eq!(demand(Some(&RequestStats::default()), target, 5, 3), 0, "no traffic");
//! ```

use std::time::Duration;

use crate::requests::RequestStats;

/// How soon the backlog's work should be done: about one dyno boot (the adaptive policy's drain target).
pub const DRAIN: f64 = 30.0;

/// The queue time under which a share `p` of requests waits, seconds, on one dyno of `threads` threads taking
/// `rate` requests a second of `service` seconds each (M/M/c: Erlang C; infinite when the dyno cannot keep up).
///
/// ```
/// use dyno_scaler_core::policy::web::predicted_wait;
/// assert_eq!(predicted_wait(5, 10.0, 0.1, 0.95), 0.0); // 1 of 5 threads busy: almost nobody waits
/// assert!(predicted_wait(5, 45.0, 0.1, 0.95) > 0.05); // 4.5 of 5: a queue
/// assert!(predicted_wait(5, 60.0, 0.1, 0.95).is_infinite()); // more than it can serve
/// ```
pub fn predicted_wait(threads: u32, rate: f64, service: f64, p: f64) -> f64 {
    let c = f64::from(threads.max(1));
    let a = rate * service;
    if a <= 0.0 {
        return 0.0;
    }
    if a >= c {
        return f64::INFINITY;
    }
    // Erlang B by its recursion, then C.
    let mut b = 1.0;
    for k in 1..=threads.max(1) {
        b = a * b / (f64::from(k) + a * b);
    }
    let waits = c * b / (c - a * (1.0 - b));
    let tail = 1.0 - p.clamp(0.0, 0.9999);
    if waits <= tail { 0.0 } else { service / (c - a) * (waits / tail).ln() }
}

/// The dynos the requests want: `threads` a dyno, `current` running now.
pub fn demand(requests: Option<&RequestStats>, target: Duration, threads: u32, current: u32) -> u32 {
    let Some(r) = requests else { return 0 };
    if r.requests == 0 {
        return 0;
    }
    let per_dyno = f64::from(threads.max(1));
    let busy = r.busy_threads();
    let p = if r.percentile > 0.0 { r.percentile } else { 0.95 };
    let t = target.as_secs_f64();
    let mut want = (busy / per_dyno).ceil().max(1.0);
    while want < 10_000.0 && predicted_wait(threads, r.rate / want, r.service_secs, p) > t {
        want += 1.0;
    }
    if r.measured > 0 && r.queue_pct_secs > target.as_secs_f64() {
        let serving = (busy / per_dyno).ceil().clamp(1.0, f64::from(current.max(1)));
        let backlog = (r.waiting() * r.service_secs / (per_dyno * DRAIN)).ceil();
        want = want.max(serving + backlog.max(1.0));
    }
    want.clamp(0.0, f64::from(u32::MAX)) as u32
}
