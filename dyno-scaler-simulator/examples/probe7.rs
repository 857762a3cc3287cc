use dyno_scaler_simulator::{self as sim, SimConfig, strategies, trace};
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let t = trace::load_csv(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    for j in &t.jobs {
        println!("job {:.0}..{:.0}", j.arrived_at, j.arrived_at + j.duration);
    }
    let cfg = SimConfig { sample_every: std::time::Duration::from_secs(1), ..SimConfig::default() };
    for s in [strategies::hirefire(10, 5), strategies::dyno_scaler_defaults(10)] {
        let r = sim::simulate(&t, &s, &cfg).unwrap();
        let mut out = Vec::new();
        let mut last = u32::MAX;
        for x in &r.samples {
            if x.2 != last {
                out.push(format!("{:.0}:{}", x.0, x.2));
                last = x.2;
            }
        }
        println!("{} {:.1}: {}", s.name, r.dyno_hours * 3600.0, out.join(" "));
    }
}
