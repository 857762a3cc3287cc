use super::common::*;

fn base() -> Vec<(&'static str, String)> {
    vec![
        ("HEROKU_API_KEY", KEY.to_string()),
        ("HEROKU_APP_NAME", APP.to_string()),
        ("HEROKU_API_URL", "http://127.0.0.1:1".to_string()),
        ("DYNO_SCALER_SOURCE", "sidekiq".to_string()),
        ("REDIS_URL", "redis://127.0.0.1:6379/0".to_string()),
    ]
}

async fn expect_2(env: Vec<(&'static str, String)>, args: &[&str], names: &str) {
    let out = run(args, &env).await;
    assert_eq!(out.code, 2, "{args:?} {env:?}: {}", out.all());
    assert!(out.stderr.contains(names), "error should name {names}: {}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "one message: {}", out.stderr);
}

#[tokio::test]
async fn each_bad_setting_exits_2_naming_it() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("DYNO_SCALER_SOURCE", "beanstalkd")], "DYNO_SCALER_SOURCE"),
        (
            &[("DYNO_SCALER_MIN_WORKERS", "4"), ("DYNO_SCALER_MAX_WORKERS", "2")],
            "DYNO_SCALER_MIN_WORKERS (4) is greater than DYNO_SCALER_MAX_WORKERS (2)",
        ),
        (&[("DYNO_SCALER_POLL_INTERVAL", "0s")], "DYNO_SCALER_POLL_INTERVAL"),
        (&[("DYNO_SCALER_POLL_INTERVAL", "-1s")], "DYNO_SCALER_POLL_INTERVAL"),
        (&[("REDIS_URL", "127.0.0.1:6379")], "REDIS_URL"),
        (&[("HEROKU_API_URL", "api.heroku.com")], "HEROKU_API_URL"),
        (&[("DYNO_SCALER_THRESHOLDS", "50:3,25:2")], "DYNO_SCALER_THRESHOLDS"),
        (&[("DYNO_SCALER_MAX_WORKERS", "many")], "DYNO_SCALER_MAX_WORKERS"),
        (&[("HEROKU_API_KEY", "e2e0c0de-89ab\n")], "HEROKU_API_KEY"),
        (&[("HEROKU_API_URL", "http://")], "HEROKU_API_URL"),
        (&[("DYNO_SCALER_MAX_WORKERS", "0")], "DYNO_SCALER_MAX_WORKERS"),
        (&[("DYNO_SCALER_PROCESS_TYPE", "wörker")], "DYNO_SCALER_PROCESS_TYPE"),
        (&[("DYNO_SCALER_QUEUES", ",,,")], "DYNO_SCALER_QUEUES"),
        (&[("DYNO_SCALER_LATENCY_TARGET", "1ns")], "DYNO_SCALER_LATENCY_TARGET"),
        (&[("DYNO_SCALER_DOWN_DELAY", "20years")], "DYNO_SCALER_DOWN_DELAY"),
    ];
    for (overrides, name) in cases {
        expect_2(with(base(), overrides), &["run", "--once"], name).await;
    }
    let mut env = base();
    env.retain(|(k, _)| *k != "HEROKU_API_KEY");
    expect_2(env, &["run"], "HEROKU_API_KEY").await;
    let mut env = base();
    env.retain(|(k, _)| *k != "REDIS_URL");
    expect_2(env, &["status"], "REDIS_URL").await;
}

#[tokio::test]
async fn unknown_toml_fields_and_usage_errors_exit_2() {
    let path = config_file(&unique("bad"), "[[process]]\ntype = \"worker\"\nsource = \"sidekiq\"\nmax_wrokers = 3\n");
    expect_2(base(), &["--config", path.to_str().unwrap(), "check"], "max_wrokers").await;
    let out = run(&["run", "--bogus"], &base()).await;
    assert_eq!(out.code, 2);
    let out = run(&["--help"], &[]).await;
    assert_eq!(out.code, 0);
    for sub in ["run", "status", "check", "simulate"] {
        let out = run(&[sub, "--help"], &[]).await;
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("Examples:"), "{sub} --help has examples: {}", out.stdout);
    }
}

#[tokio::test]
async fn url_passwords_never_appear_in_errors() {
    let env = with(base(), &[("REDIS_URL", "http://:pa55w0rd@redis.example.com:6379")]);
    let out = run(&["run"], &env).await;
    assert_eq!(out.code, 2);
    assert!(!out.all().contains("pa55w0rd"), "{}", out.all());
}
