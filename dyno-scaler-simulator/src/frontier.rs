//! Cost against wait, per trace: every strategy as one point, the classic policy as a curve over a range of down
//! delays, whether any peer dominates the default (at least as cheap *and* at least as fast), and the default's
//! distance to the best peer on each axis.

use std::time::Duration;

use serde::Serialize;

use crate::engine::{SimConfig, SimResult};
use crate::strategies;
use crate::trace::Trace;

/// The classic policy's down delays drawn as its curve.
pub const CLASSIC_DELAYS: [u64; 8] = [0, 5, 15, 30, 60, 120, 300, 600];

/// One strategy's place on the picture.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// The strategy (for the classic curve: with its down delay).
    pub strategy: String,
    /// Dyno-hours billed.
    pub dyno_hours: f64,
    /// Median wait, seconds.
    pub wait_p50: f64,
    /// 95th percentile wait, seconds.
    pub wait_p95: f64,
    /// Jobs interrupted.
    pub interrupted: u64,
}

impl From<&SimResult> for Point {
    fn from(r: &SimResult) -> Self {
        Self {
            strategy: r.strategy.clone(),
            dyno_hours: r.dyno_hours,
            wait_p50: r.wait_p50,
            wait_p95: r.wait_p95,
            interrupted: r.interrupted,
        }
    }
}

/// The picture of one trace.
#[derive(Debug, Clone, Serialize)]
pub struct Frontier {
    /// The trace.
    pub trace: String,
    /// The peers (always on, HireFire-style, the seed gem, KEDA-style).
    pub peers: Vec<Point>,
    /// dyno-scaler's default (adaptive) policy.
    pub default: Point,
    /// The oracle: the least any strategy whose jobs wait no longer can cost ([`crate::oracle`]).
    pub oracle: Point,
    /// The classic policy at each of [`CLASSIC_DELAYS`].
    pub classic: Vec<Point>,
    /// Peers that dominate the default, with the wait they do it on (`p95`, `p50`); empty: none does.
    pub dominated_by: Vec<(String, &'static str)>,
    /// The default's cost over the cheapest peer's (−0.2 = 20 % cheaper), and its p95 wait minus the fastest
    /// peer's, seconds.
    pub distance: (f64, f64),
}

/// Whether `a` dominates `b` on cost and the wait `w`: no worse on both, better on one.
fn dominates(a: &Point, b: &Point, w: fn(&Point) -> f64) -> bool {
    let (ca, cb, wa, wb) = (a.dyno_hours, b.dyno_hours, w(a), w(b));
    ca <= cb + 1e-9 && wa <= wb + 1e-9 && (ca < cb - 1e-9 || wa < wb - 1e-9)
}

/// The peers that dominate `point`, with the wait they do it on.
pub fn dominating(peers: &[Point], point: &Point) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for p in peers {
        if dominates(p, point, |p| p.wait_p95) {
            out.push((p.strategy.clone(), "p95"));
        }
        if dominates(p, point, |p| p.wait_p50) {
            out.push((p.strategy.clone(), "p50"));
        }
    }
    out
}

/// Simulates the peers, the default and the classic curve on `trace`.
pub fn frontier(trace: &Trace, max: u32, concurrency: u32, cfg: &SimConfig) -> Frontier {
    let mut strats: Vec<_> =
        strategies::comparison(max, concurrency).into_iter().filter(|s| s.name != "dyno-scaler classic").collect();
    for d in CLASSIC_DELAYS {
        let mut s = strategies::dyno_scaler_classic(max, Duration::from_secs(d));
        s.name = format!("classic, down delay {d}s");
        strats.push(s);
    }
    let results = crate::compare(trace, &strats, cfg).expect("the built-in strategies are valid");
    let points: Vec<Point> = results.iter().map(Point::from).collect();
    let default = points.iter().find(|p| p.strategy == "dyno-scaler defaults").cloned().expect("the default runs");
    let peers: Vec<Point> = points
        .iter()
        .filter(|p| !p.strategy.starts_with("dyno-scaler") && !p.strategy.starts_with("classic"))
        .cloned()
        .collect();
    let classic = points.iter().filter(|p| p.strategy.starts_with("classic")).cloned().collect();
    let dominated_by = dominating(&peers, &default);
    let cheapest = peers.iter().map(|p| p.dyno_hours).fold(f64::INFINITY, f64::min);
    let fastest = peers.iter().map(|p| p.wait_p95).fold(f64::INFINITY, f64::min);
    let distance = (default.dyno_hours / cheapest - 1.0, default.wait_p95 - fastest);
    let oracle = Point::from(&crate::oracle::oracle(trace, max, cfg));
    Frontier { trace: trace.name.clone(), peers, default, oracle, classic, dominated_by, distance }
}

/// A short verdict for the table output.
pub fn summary(f: &Frontier) -> String {
    let verdict = if f.dominated_by.is_empty() {
        "no peer dominates the default on (cost, p95) or (cost, p50)".to_owned()
    } else {
        let who: Vec<String> = f.dominated_by.iter().map(|(p, w)| format!("{p} on (cost, {w})")).collect();
        format!("DOMINATED by {}", who.join(", "))
    };
    format!(
        "{}: {verdict}; default {:.2} dyno-h ({:+.0} % against the cheapest peer), p95 {:.1}s ({:+.1}s against the \
         fastest peer)",
        f.trace,
        f.default.dyno_hours,
        f.distance.0 * 100.0,
        f.default.wait_p95,
        f.distance.1
    )
}
