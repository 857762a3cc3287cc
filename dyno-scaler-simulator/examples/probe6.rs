use dyno_scaler_simulator::{self as sim, SimConfig, strategies, trace};
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let t = trace::load_csv(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    let cfg = SimConfig { sample_every: std::time::Duration::from_secs(10), ..SimConfig::default() };
    let r = sim::simulate(&t, &strategies::dyno_scaler_defaults(10), &cfg).unwrap();
    // Longest run of samples with a queue.
    let mut best = (0.0, 0.0);
    let mut start = None;
    for s in &r.samples {
        match (s.1 > 0, start) {
            (true, None) => start = Some(s.0),
            (false, Some(a)) => {
                if s.0 - a > best.1 - best.0 {
                    best = (a, s.0);
                }
                start = None;
            }
            _ => {}
        }
    }
    println!("longest queue {:?}", best);
    let pts: Vec<_> = r
        .samples
        .iter()
        .filter(|s| s.0 >= best.0 - 60.0 && s.0 <= best.1 + 20.0)
        .map(|s| format!("{:.0}:{}/{}", s.0, s.1, s.2))
        .collect();
    println!("{}", pts.join(" "));
}
