//! Generated web traffic: requests (an arrival and a time in the app) for the web simulation. The published
//! request traces (`../shared/traces/real/real-azure-llm-*.csv`) load as any trace file.

use crate::trace::{Job, Trace};

const DAY: f64 = 86_400.0;

/// Names of the built-in request traces.
pub const BUILT_IN: [&str; 2] = ["web-diurnal", "web-spiky"];

/// A built-in request trace by name (see [`BUILT_IN`]), generated with `seed`.
pub fn built_in(name: &str, seed: u64) -> Option<Trace> {
    Some(match name {
        "web-diurnal" => diurnal(seed, 60.0, 0.12),
        "web-spiky" => spiky(seed),
        _ => return None,
    })
}

/// A log-normal time in the app with the given mean (σ 0.8: most requests quick, a long tail of slow ones).
fn service(rng: &mut fastrand::Rng, mean: f64) -> f64 {
    let sigma: f64 = 0.8;
    let mu = mean.ln() - sigma * sigma / 2.0;
    // Box-Muller.
    let (u1, u2) = (1.0 - rng.f64(), rng.f64());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mu + sigma * z).exp().clamp(0.001, 30.0)
}

/// Requests at `rate(t)` a second (thinned Poisson, `peak` the highest rate), each `mean` seconds in the app.
fn poisson(seed: u64, name: &str, peak: f64, mean: f64, rate: impl Fn(f64) -> f64) -> Trace {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut jobs = Vec::new();
    let mut t = 0.0;
    loop {
        t += -(1.0 - rng.f64()).ln() / peak;
        if t >= DAY {
            break;
        }
        if rng.f64() * peak <= rate(t) {
            jobs.push(Job { arrived_at: t, queue: "web".into(), duration: service(&mut rng, mean) });
        }
    }
    Trace { name: name.to_owned(), jobs, span: DAY }
}

/// A day of an app's traffic: a night low of a tenth of the peak, rising through the morning to `peak` requests a
/// second in the afternoon, of `mean` seconds each.
pub fn diurnal(seed: u64, peak: f64, mean: f64) -> Trace {
    poisson(seed, "web-diurnal", peak, mean, |t| {
        let day = (std::f64::consts::PI * (t / DAY - 0.2)).sin().max(0.0).powi(2);
        peak * (0.1 + 0.9 * day)
    })
}

/// A quieter day (5 requests a second) with a five-minute spike to 60 a second every two hours (a newsletter, a
/// cron hitting the API), 150 ms a request.
pub fn spiky(seed: u64) -> Trace {
    poisson(seed, "web-spiky", 60.0, 0.15, |t| if (t % 7200.0) < 300.0 { 60.0 } else { 5.0 })
}
