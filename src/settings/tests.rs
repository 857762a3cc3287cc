//! Unit tests of the configuration.
use super::*;
use crate::core::{DemandRule, DownMode};

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("HEROKU_API_KEY", "k"),
        ("HEROKU_APP_NAME", "my-app"),
        ("DYNO_SCALER_SOURCE", "sidekiq"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ]
}

#[test]
fn seed_promise_four_variables() {
    let s = load(&Flags::default(), &env(&base()), None).unwrap();
    assert_eq!(s.processes.len(), 1);
    let p = &s.processes[0];
    assert_eq!((p.process_type.as_str(), p.source), ("worker", "sidekiq"));
    assert_eq!((p.policy.config().min_workers, p.policy.config().max_workers), (0, 1));
    // The adaptive policy by default; the seed's table is one setting away.
    assert!(p.policy.config().rules.is_empty() && p.policy.config().adaptive.is_some());
    assert_eq!(s.poll_interval, Duration::from_secs(1));
    let mut e = base();
    e.push(("DYNO_SCALER_POLICY", "classic"));
    let s = load(&Flags::default(), &env(&e), None).unwrap();
    assert_eq!(s.processes[0].policy.config().rules, vec![DemandRule::seed_thresholds()]);
    assert!(s.processes[0].policy.config().adaptive.is_none());
    e.push(("DYNO_SCALER_PREWARM", "true"));
    let err = load(&Flags::default(), &env(&e), None).unwrap_err().to_string();
    assert!(err.contains("DYNO_SCALER_PREWARM") && err.contains("adaptive"), "{err}");
}

#[test]
fn seed_variable_names_are_accepted() {
    let e = env(&[
        ("HEROKU_OAUTH_TOKEN", "k"),
        ("HEROKU_APP", "a"),
        ("DYNO_SCALER_SOURCE", "resque"),
        ("REDIS_URL", "redis://h"),
    ]);
    let s = load(&Flags::default(), &e, None).unwrap();
    assert_eq!(s.heroku.unwrap().app, "a");
}

#[test]
fn flags_beat_env_beat_file() {
    let file = "poll_interval = \"10s\"\n";
    let mut e = env(&base());
    let s = load(&Flags::default(), &e, Some(("f.toml", file))).unwrap();
    assert_eq!(s.poll_interval, Duration::from_secs(10));
    e.insert("DYNO_SCALER_POLL_INTERVAL".into(), "2s".into());
    assert_eq!(load(&Flags::default(), &e, Some(("f.toml", file))).unwrap().poll_interval, Duration::from_secs(2));
    let flags = Flags { poll_interval: Some("500ms".into()), ..Flags::default() };
    assert_eq!(load(&flags, &e, Some(("f.toml", file))).unwrap().poll_interval, Duration::from_millis(500));
}

#[test]
fn events_are_on_by_default_and_env_beats_file() {
    let mut e = env(&base());
    assert!(load(&Flags::default(), &e, None).unwrap().events);
    let file = "events = false\n";
    assert!(!load(&Flags::default(), &e, Some(("f.toml", file))).unwrap().events);
    e.insert("DYNO_SCALER_EVENTS".into(), "on".into());
    assert!(load(&Flags::default(), &e, Some(("f.toml", file))).unwrap().events);
    e.insert("DYNO_SCALER_EVENTS".into(), "0".into());
    assert!(!load(&Flags::default(), &e, None).unwrap().events);
}

#[test]
fn errors_name_the_setting() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("DYNO_SCALER_SOURCE", "kafka")], "DYNO_SCALER_SOURCE"),
        (
            vec![("DYNO_SCALER_MIN_WORKERS", "3")],
            "DYNO_SCALER_MIN_WORKERS (3) is greater than DYNO_SCALER_MAX_WORKERS (1)",
        ),
        (vec![("DYNO_SCALER_POLL_INTERVAL", "0s")], "DYNO_SCALER_POLL_INTERVAL"),
        (vec![("DYNO_SCALER_POLL_INTERVAL", "-5s")], "DYNO_SCALER_POLL_INTERVAL"),
        (vec![("DYNO_SCALER_EVENTS", "maybe")], "DYNO_SCALER_EVENTS"),
        (vec![("REDIS_URL", "localhost:6379")], "REDIS_URL"),
        (vec![("DYNO_SCALER_THRESHOLDS", "25:2,1:1")], "DYNO_SCALER_THRESHOLDS"),
        (vec![("DYNO_SCALER_MAX_WORKERS", "-1")], "DYNO_SCALER_MAX_WORKERS"),
    ];
    for (overrides, want) in cases {
        let mut e = env(&base());
        for (k, v) in overrides {
            e.insert(k.into(), v.into());
        }
        let msg = load(&Flags::default(), &e, None).unwrap_err().0;
        assert!(msg.contains(want), "{msg:?} should name {want}");
    }
    let mut e = env(&base());
    e.remove("HEROKU_API_KEY");
    assert!(load(&Flags::default(), &e, None).unwrap_err().0.starts_with("HEROKU_API_KEY is not set"));
    let msg = load(&Flags::default(), &env(&base()), Some(("x.toml", "[[process]]\ntype = \"worker\"\nbogus = 1\n")))
        .unwrap_err()
        .0;
    assert!(msg.contains("x.toml") && msg.contains("bogus"), "{msg}");
}

#[test]
fn url_passwords_are_redacted_in_errors() {
    let mut e = env(&base());
    e.insert("REDIS_URL".into(), "http://:hunter2@host".into());
    let msg = load(&Flags::default(), &e, None).unwrap_err().0;
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn several_process_types_from_a_file() {
    let file = r#"
[[process]]
type = "worker"
source = "sidekiq"
queues = ["default", "mailers"]
max_workers = 5
jobs_per_worker = 10

[[process]]
type = "dj_worker"
source = "delayed_job"
url = "postgres://app@db/app"
max_workers = 2
down_mode = "idle"
"#;
    let s = load(&Flags::default(), &env(&base()), Some(("f.toml", file))).unwrap();
    assert_eq!(s.processes.len(), 2);
    assert_eq!(s.processes[0].spec.queues(), Some(vec!["default".to_string(), "mailers".to_string()]));
    assert_eq!(s.processes[0].spec.url().expose(), "redis://127.0.0.1:6379", "REDIS_URL is the default URL");
    assert_eq!(s.processes[1].source, "delayed_job");
    assert_eq!(s.processes[1].policy.config().down_mode, DownMode::Idle);
}

fn load_with(overrides: &[(&str, &str)], file: Option<&str>) -> Result<Settings, ConfigError> {
    let mut e = env(&base());
    if file.is_some() {
        e.remove("DYNO_SCALER_SOURCE");
    }
    for (k, v) in overrides {
        e.insert(k.to_string(), v.to_string());
    }
    load(&Flags::default(), &e, file.map(|f| ("f.toml", f)))
}

#[test]
fn values_that_cannot_be_meant_name_their_setting() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("HEROKU_API_KEY", "01234567-89ab\n")], "HEROKU_API_KEY"),
        (&[("HEROKU_API_KEY", "abc def")], "HEROKU_API_KEY"),
        (&[("HEROKU_API_URL", "http://")], "HEROKU_API_URL"),
        (&[("HEROKU_API_URL", "ftp://api.heroku.com")], "HEROKU_API_URL"),
        (&[("DYNO_SCALER_PROCESS_TYPE", "wörker")], "DYNO_SCALER_PROCESS_TYPE"),
        (&[("DYNO_SCALER_MAX_WORKERS", "0")], "DYNO_SCALER_MAX_WORKERS is 0"),
        (&[("DYNO_SCALER_LATENCY_TARGET", "1ns")], "DYNO_SCALER_LATENCY_TARGET"),
        (&[("DYNO_SCALER_LATENCY_TARGET", "3years")], "DYNO_SCALER_LATENCY_TARGET"),
        (&[("DYNO_SCALER_DOWN_DELAY", "400days")], "DYNO_SCALER_DOWN_DELAY"),
        (&[("DYNO_SCALER_POLL_INTERVAL", "2h")], "DYNO_SCALER_POLL_INTERVAL"),
        (&[("DYNO_SCALER_QUEUES", ",,,")], "DYNO_SCALER_QUEUES"),
        (&[("DYNO_SCALER_REDIS_TLS_VERIFY", "off")], "DYNO_SCALER_REDIS_TLS_VERIFY"),
        (&[("REDIS_URL", "redis://")], "REDIS_URL"),
    ];
    for (overrides, want) in cases {
        let msg = load_with(overrides, None).unwrap_err().0;
        assert!(msg.contains(want), "{overrides:?}: {msg:?} should name {want}");
    }
}

#[test]
fn file_settings_that_cannot_be_meant_or_do_not_apply() {
    let dj = "[[process]]\ntype = \"dj\"\nsource = \"delayed_job\"\nurl = \"postgres://h/db\"\n";
    let sk = "[[process]]\ntype = \"w\"\nsource = \"sidekiq\"\n";
    let cases = [
        (format!("{dj}max_run_time = \"0s\"\n"), "max_run_time"),
        (format!("{dj}max_run_time = \"99999999999999999999y\"\n"), "max_run_time"),
        (format!("{dj}min_priority = 5\nmax_priority = 1\n"), "min_priority"),
        (format!("{dj}namespace = \"app\"\n"), "namespace: does not apply to the delayed_job source"),
        (format!("{dj}redis_tls_verify = \"none\"\n"), "redis_tls_verify: does not apply"),
        (format!("{sk}table = \"jobs\"\n"), "table: does not apply to the sidekiq source"),
        (format!("{sk}max_run_time = \"4h\"\n"), "max_run_time: does not apply"),
        (format!("{sk}namespace = \"\"\n"), "namespace: empty"),
        (format!("{sk}queues = []\n"), "queues"),
        (format!("{sk}queues = [\"a\", \"\"]\n"), "queues"),
        (format!("{sk}max_workers = 0\n"), "max_workers is 0"),
    ];
    for (file, want) in cases {
        let msg = load_with(&[], Some(&file)).unwrap_err().0;
        assert!(msg.contains(want), "{file}: {msg:?} should name {want}");
    }
}

#[test]
fn toml_type_errors_name_the_line_but_not_the_value() {
    let file = "[[process]]\ntype = \"w\"\nsource = \"sidekiq\"\nmin_workers = \"redis://:hunter2@h\"\n";
    let msg = load_with(&[], Some(file)).unwrap_err().0;
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains("[[process]] #1 min_workers"), "{msg}");
    let file = "[[process]]\ntype = \"w\"\nsource = \"sidekiq\"\nmax_wrokers = 3\n";
    let msg = load_with(&[], Some(file)).unwrap_err().0;
    assert!(msg.contains("max_wrokers"), "field names are not values: {msg}");
}

#[test]
fn an_empty_queue_list_in_the_environment_is_not_all_queues() {
    let s = load_with(&[("DYNO_SCALER_QUEUES", " default , mailers ")], None).unwrap();
    assert_eq!(s.processes[0].spec.queues(), Some(vec!["default".to_string(), "mailers".to_string()]));
}

#[test]
fn each_adapter_reads_its_own_settings_from_file_and_environment() {
    let file = r#"
[[process]]
type = "worker"
source = "sidekiq"
heartbeat_ttl = "30s"
timeout = "1s"

[[process]]
type = "dj"
source = "delayed_job"
url = "postgres://h/db"
max_run_time = "2h"
min_priority = 1
"#;
    let s = load_with(&[], Some(file)).unwrap();
    assert_eq!(s.processes.len(), 2);
    // A setting of one adapter given to another is named with its origin.
    let msg = load_with(&[], Some("[[process]]\ntype = \"w\"\nsource = \"resque\"\nheartbeat_ttl = \"30s\"\n"))
        .unwrap_err()
        .0;
    assert!(msg.contains("[[process]] #1 heartbeat_ttl: does not apply to the resque source"), "{msg}");
    // Numbers, booleans and lists from the environment are read as such.
    let s = load_with(
        &[
            ("DYNO_SCALER_SOURCE", "delayed_job"),
            ("DATABASE_URL", "postgres://h/db"),
            ("DYNO_SCALER_MIN_PRIORITY", "2"),
            ("DYNO_SCALER_ALLOW_INTERRUPTING", "true"),
            ("DYNO_SCALER_QUEUES", "a, b"),
        ],
        None,
    )
    .unwrap();
    assert!(s.processes[0].policy.config().allow_interrupting);
    assert_eq!(s.processes[0].spec.queues(), Some(vec!["a".to_string(), "b".to_string()]));
}

#[test]
fn reserved_and_unknown_environment_variables() {
    // Reserved for the Kubernetes platform: not read as Sidekiq's Redis namespace.
    assert!(load_with(&[("DYNO_SCALER_NAMESPACE", "production")], None).is_ok());
    // A variable that is no setting of the source is an error naming it.
    let msg = load_with(&[("DYNO_SCALER_MAX_WROKERS", "3")], None).unwrap_err().0;
    assert_eq!(msg, "unknown setting DYNO_SCALER_MAX_WROKERS; did you mean DYNO_SCALER_MAX_WORKERS?");
    // One letter off a source's own setting, from a file.
    let msg = load_with(&[], Some("[[process]]\nsource = \"sidekiq\"\nurl = \"redis://x\"\nqeues = [\"a\"]\n"));
    let msg = msg.unwrap_err().0;
    assert_eq!(msg, "unknown setting f.toml [[process]] #1 qeues; did you mean f.toml [[process]] #1 queues?");
    // Nothing near: it names the variable and says it does not apply.
    let msg = load_with(&[("DYNO_SCALER_FLAVOUR", "3")], None).unwrap_err().0;
    assert!(msg.starts_with("DYNO_SCALER_FLAVOUR: does not apply"), "{msg}");
    // The test harness's own variables are not settings.
    assert!(load_with(&[("DYNO_SCALER_TEST_REDIS_URL", "redis://x")], None).is_ok());
}

#[test]
fn schedules_from_the_file_or_the_environment_and_the_operating_settings() {
    let file = r#"
lease_ttl = "5s"
listen = "9100"
[[process]]
type = "worker"
source = "sidekiq"
url = "redis://127.0.0.1:6379"
max_workers = 6
[[process.schedule]]
name = "office"
days = "mon-fri"
hours = "08:00-18:00"
time_zone = "Europe/Berlin"
min_workers = 2
"#;
    let e = env(&[("HEROKU_API_KEY", "k"), ("HEROKU_APP_NAME", "a")]);
    let s = load(&Flags::default(), &e, Some(("f.toml", file))).unwrap();
    let w = &s.processes[0].policy.config().schedule;
    assert_eq!((w.len(), w[0].name.as_str(), w[0].min_workers), (1, "office", Some(2)));
    assert_eq!((s.lease, s.lease_ttl), (true, Duration::from_secs(5)));
    assert_eq!(s.listen, Some("0.0.0.0:9100".parse().unwrap()));
    assert_eq!(s.log_metrics, None, "off away from Heroku");
    let mut e = env(&base());
    e.insert("DYNO_SCALER_SCHEDULE".into(), "sat-sun 00:00-24:00 UTC max=1".into());
    e.insert("DYNO_SCALER_LEASE".into(), "off".into());
    e.insert("DYNO".into(), "scaler.1".into());
    let s = load(&Flags::default(), &e, None).unwrap();
    assert_eq!(s.processes[0].policy.config().schedule[0].max_workers, Some(1));
    assert!(!s.lease);
    assert_eq!(s.log_metrics, Some(Duration::from_secs(60)), "on Heroku, l2met lines by default");
    for (var, value, says) in [
        ("DYNO_SCALER_SCHEDULE", "sat 00:00-24:00 Nowhere/City max=1", "DYNO_SCALER_SCHEDULE"),
        ("DYNO_SCALER_LEASE_TTL", "10ms", "DYNO_SCALER_LEASE_TTL"),
        ("DYNO_SCALER_LISTEN", "here", "DYNO_SCALER_LISTEN"),
        ("DYNO_SCALER_LOG_METRICS", "sometimes", "DYNO_SCALER_LOG_METRICS"),
        ("DYNO_SCALER_LEASE", "maybe", "DYNO_SCALER_LEASE"),
    ] {
        let mut e = env(&base());
        e.insert(var.into(), value.into());
        let err = load(&Flags::default(), &e, None).unwrap_err().to_string();
        assert!(err.contains(says), "{var}={value}: {err}");
    }
}

#[test]
fn each_process_type_names_its_platform_and_heroku_is_needed_only_where_used() {
    let file = r#"
platform = "kubernetes"
[kubernetes]
namespace = "jobs"
[[process]]
type = "worker"
source = "sidekiq"
[[process]]
type = "dj_worker"
source = "delayed_job"
target = "statefulset/dj"
[[process]]
type = "web_jobs"
source = "resque"
platform = "heroku"
"#;
    let urls = [("REDIS_URL", "redis://h"), ("DATABASE_URL", "postgres://h/db")];
    // A Heroku process type without Heroku's settings: the error names them.
    let e = load(&Flags::default(), &env(&urls), Some(("f.toml", file))).unwrap_err().to_string();
    assert!(e.contains("HEROKU_API_KEY"), "{e}");
    let mut with_heroku = urls.to_vec();
    with_heroku.extend([("HEROKU_API_KEY", "k"), ("HEROKU_APP_NAME", "a")]);
    let s = load(&Flags::default(), &env(&with_heroku), Some(("f.toml", file))).unwrap();
    let platforms: Vec<_> = s.processes.iter().map(|p| p.platform.clone()).collect();
    assert_eq!(
        platforms,
        [
            PlatformChoice::new("kubernetes", Some("deployment/worker".into())),
            PlatformChoice::new("kubernetes", Some("statefulset/dj".into())),
            PlatformChoice::new("heroku", None),
        ]
    );
    assert_eq!(s.kubernetes_namespace.as_deref(), Some("jobs"));
    // Without the Heroku process type, no Heroku settings at all.
    let kube_only = file.split("[[process]]\ntype = \"web_jobs\"").next().unwrap();
    let s = load(&Flags::default(), &env(&urls), Some(("f.toml", kube_only))).unwrap();
    assert!(s.heroku.is_none() && s.processes.len() == 2);
    // The environment's default yields to a table's own platform; a process type that is no object name needs a
    // target (dj_worker has one).
    let mut e = urls.to_vec();
    e.push(("DYNO_SCALER_PLATFORM", "heroku"));
    let worker_only = kube_only.split("[[process]]\ntype = \"dj_worker\"").next().unwrap();
    let err = load(&Flags::default(), &env(&e), Some(("f.toml", worker_only))).unwrap_err().to_string();
    assert!(err.contains("HEROKU_API_KEY"), "DYNO_SCALER_PLATFORM beats the file's default: {err}");
    let unnamed = kube_only.replace("target = \"statefulset/dj\"\n", "");
    let err = load(&Flags::default(), &env(&urls), Some(("f.toml", &unnamed))).unwrap_err().to_string();
    assert!(
        err.contains("\"dj_worker\" is not a Kubernetes object name") && err.contains("DYNO_SCALER_TARGET"),
        "{err}"
    );
    let bad = kube_only.replace("target = \"statefulset/dj\"", "target = \"pod/dj\"");
    let err = load(&Flags::default(), &env(&urls), Some(("f.toml", &bad))).unwrap_err().to_string();
    assert!(err.starts_with("f.toml [[process]] #2 target: \"pod/dj\" is not a target"), "{err}");
}

#[test]
fn good_jobs_enable_pauses_comes_from_the_apps_own_variable_unless_set_here() {
    let gj = |extra: &[(&'static str, &'static str)]| {
        let mut e = vec![
            ("HEROKU_API_KEY", "k"),
            ("HEROKU_APP_NAME", "my-app"),
            ("DYNO_SCALER_SOURCE", "good_job"),
            ("DATABASE_URL", "postgres://127.0.0.1/app"),
        ];
        e.extend_from_slice(extra);
        load(&Flags::default(), &env(&e), None)
    };
    let pauses = |s: &Settings| format!("{:?}", s.processes[0].spec).contains("enable_pauses: true");
    assert!(!pauses(&gj(&[]).unwrap()), "GoodJob's default: off");
    assert!(pauses(&gj(&[("GOOD_JOB_ENABLE_PAUSES", "true")]).unwrap()));
    let ours = gj(&[("GOOD_JOB_ENABLE_PAUSES", "true"), ("DYNO_SCALER_ENABLE_PAUSES", "false")]).unwrap();
    assert!(!pauses(&ours), "our variable wins");
    let msg = gj(&[("GOOD_JOB_ENABLE_PAUSES", "maybe")]).unwrap_err().0;
    assert!(msg.contains("GOOD_JOB_ENABLE_PAUSES"), "{msg}");
}

#[test]
fn a_store_apart_from_the_sources_is_checked_and_never_shown() {
    let s = load(&Flags::default(), &env(&base()), None).unwrap();
    assert!(s.store.is_none(), "each source's own store by default");
    let mut e = env(&base());
    e.insert("DYNO_SCALER_STORE_URL".into(), "postgres://u:hunter2@db/app".into());
    let s = load(&Flags::default(), &e, None).unwrap();
    let store = s.store.expect("configured");
    assert_eq!(store.kind(), "postgres");
    assert!(!format!("{store:?}").contains("hunter2") && store.redacted_url().contains("db/app"), "{store:?}");
    for (pairs, says) in [
        (vec![("DYNO_SCALER_STORE_URL", "mysql://u:hunter2@db/app")], "DYNO_SCALER_STORE_URL"),
        (vec![("DYNO_SCALER_STORE_TABLE", "learned")], "DYNO_SCALER_STORE_TABLE is set but no store URL"),
        (
            vec![("DYNO_SCALER_STORE_URL", "redis://h:6379"), ("DYNO_SCALER_STORE_TABLE", "t")],
            "a table is for a Postgres",
        ),
        (
            vec![("DYNO_SCALER_STORE_URL", "postgres://db/app"), ("DYNO_SCALER_STORE_TABLE", "x; DROP")],
            "not a table name",
        ),
    ] {
        let mut e = env(&base());
        e.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let err = load(&Flags::default(), &e, None).unwrap_err().to_string();
        assert!(err.contains(says) && !err.contains("hunter2"), "{pairs:?}: {err}");
    }
    let file = "store_url = \"rediss://:pw@cache:6380\"\n[[process]]\ntype = \"worker\"\nsource = \"sidekiq\"\nurl = \"redis://127.0.0.1:6379\"\n";
    let e = env(&[("HEROKU_API_KEY", "k"), ("HEROKU_APP_NAME", "my-app")]);
    let s = load(&Flags::default(), &e, Some(("f.toml", file))).unwrap();
    assert_eq!(s.store.map(|s| s.kind()), Some("redis"));
}
