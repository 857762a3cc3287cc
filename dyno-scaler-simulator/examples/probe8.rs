use dyno_scaler_simulator::{self as sim, SimConfig, strategies, trace};
fn main() {
    let t = trace::built_in("long-jobs", 4).unwrap();
    let cfg = SimConfig { sample_every: std::time::Duration::from_secs(60), ..SimConfig::default() };
    let r = sim::simulate(&t, &strategies::dyno_scaler_defaults(10), &cfg).unwrap();
    let mut out = Vec::new();
    let mut last = u32::MAX;
    for x in &r.samples {
        if x.2 != last {
            out.push(format!("{:.0}:{}/{}", x.0, x.2, x.1));
            last = x.2;
        }
    }
    println!("{:.1}: {}", r.dyno_hours, out.join(" "));
}
