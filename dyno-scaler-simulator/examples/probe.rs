use dyno_scaler_simulator::{self as sim, SimConfig, strategies, trace};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let t = match args.get(1).map(String::as_str) {
        Some("trickle") => {
            let mut t = trace::steady(1 ^ 0xBA7C, 1.0 / 300.0, 86400.0, 2.0);
            t.name = "trickle".into();
            t
        }
        Some(path) if path.ends_with(".csv") => trace::load_csv(path, &std::fs::read_to_string(path).unwrap()).unwrap(),
        Some(name) => trace::built_in(name, 1).unwrap(),
        None => panic!("trace"),
    };
    let cfg = SimConfig::default();
    let res = sim::compare(&t, &strategies::comparison(10, 5), &cfg).unwrap();
    print!("{}", sim::report::table(&t, &cfg, &res));
}
