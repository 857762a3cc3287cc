use std::time::{Duration, Instant};

use dyno_scaler_heroku::fake::{FakeConfig, Fault, FaultAction};
use sqlx::AssertSqlSafe;

use super::common::*;

#[tokio::test]
async fn the_seed_promise_four_variables_scale_worker_between_0_and_1() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 30).await;
    let out = run(&["run", "--once"], &env_sidekiq(&fake, &url)).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.quantity(APP, "worker"), Some(1), "30 jobs want 2, the default max is 1: clamp, not veto");
    let patches = fake.requests_with("PATCH");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].body, r#"{"quantity":1}"#);
    assert!(out.stderr.contains("decision") && out.stderr.contains("scale up 0 -> 1"), "{}", out.stderr);
    // A second cycle with nothing changed costs no PATCH.
    let out = run(&["run", "--once"], &env_sidekiq(&fake, &url)).await;
    assert_eq!(out.code, 0);
    assert_eq!(fake.requests_with("PATCH").len(), 1);
}

#[tokio::test]
async fn sidekiq_backlog_uses_the_threshold_table() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 60).await;
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_MAX_WORKERS", "5")]);
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.quantity(APP, "worker"), Some(3));
}

#[tokio::test]
async fn resque_jobs_scale_up() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    resque_push(&mut c, "images", 60).await;
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_SOURCE", "resque"), ("DYNO_SCALER_MAX_WORKERS", "5")]);
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.quantity(APP, "worker"), Some(3));
}

#[tokio::test]
async fn several_process_types_from_toml_with_delayed_job() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 20).await;
    sidekiq_push(&mut c, "mailers", 10).await;
    sidekiq_push(&mut c, "critical", 1).await;
    // DelayedJob rows as delayed_job_active_record writes them, in a schema of the test's own.
    let pool = sqlx::PgPool::connect(&db_url()).await.expect("Postgres is required (run scripts/test)");
    let schema = unique("e2e");
    let ddl = delayed_jobs_ddl(&format!("{schema}.delayed_jobs"), false);
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE SCHEMA {schema}; {ddl}
         INSERT INTO {schema}.delayed_jobs (handler, run_at, queue, created_at, updated_at)
           SELECT '--- !ruby/object:Delayed::PerformableMethod', (now() AT TIME ZONE 'UTC') - interval '1 minute', 'default',
                  now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM generate_series(1, 26);"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let toml = format!(
        r#"
poll_interval = "1s"

[[process]]
type = "worker"
source = "sidekiq"
queues = ["default", "mailers"]
max_workers = 10
jobs_per_worker = 10
policy = "classic"

[[process]]
type = "urgent"
source = "sidekiq"
queues = ["critical"]
max_workers = 2
policy = "classic"

[[process]]
type = "dj_worker"
source = "delayed_job"
url = "{db}"
table = "{schema}.delayed_jobs"
max_workers = 4
policy = "classic"
"#,
        db = db_url()
    );
    let path = config_file(&schema, &toml);
    let env = env_heroku(&fake, &[("REDIS_URL", &url)]);
    let out = run(&["--config", path.to_str().unwrap(), "run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.quantity(APP, "worker"), Some(3), "30 jobs, 10 per worker");
    assert_eq!(fake.quantity(APP, "urgent"), Some(1));
    assert_eq!(fake.quantity(APP, "dj_worker"), Some(2), "26 DelayedJob rows: the seed table wants 2");
}

#[tokio::test]
async fn drained_queues_go_back_to_min_and_dry_run_changes_nothing() {
    let fake = fake().await;
    fake.set_quantity(APP, "worker", 3);
    let (_redis, url, _c) = own_redis().await;
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_MAX_WORKERS", "5"), ("DYNO_SCALER_DOWN_DELAY", "0s")]);
    let out = run(&["run", "--once", "--dry-run"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(fake.requests_with("PATCH").is_empty(), "dry run");
    assert_eq!(fake.quantity(APP, "worker"), Some(3));
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.quantity(APP, "worker"), Some(0));
}

#[tokio::test]
async fn a_503_then_200_lands_the_change_once() {
    let fake = fake().await;
    fake.inject(Fault::on("PATCH", 2, FaultAction::Status(503)));
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 3).await;
    let out = run(&["run", "--once"], &env_sidekiq(&fake, &url)).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let statuses: Vec<u16> = fake.requests_with("PATCH").iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
    assert_eq!(fake.quantity(APP, "worker"), Some(1));
}

#[tokio::test]
async fn rate_limited_requests_back_off_and_succeed() {
    let fake = fake_with(FakeConfig { rate_capacity: 10.0, rate_refill_per_sec: 1.0, ..FakeConfig::default() }).await;
    fake.set_tokens(ACCOUNT, 0.0);
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 3).await;
    // Retries are logged at debug: the cycle's outcome is the line that matters at info.
    let out = run(&["run", "--once"], &with(env_sidekiq(&fake, &url), &[("RUST_LOG", "debug")])).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses.first(), Some(&429), "{statuses:?}");
    assert!(statuses.contains(&200));
    assert_eq!(fake.quantity(APP, "worker"), Some(1));
    assert!(out.stderr.contains("retrying"), "{}", out.stderr);
}

#[tokio::test]
async fn a_rejected_key_exits_1_with_a_clear_message() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 3).await;
    let env = with(
        env_sidekiq(&fake, &url),
        &[("HEROKU_API_KEY", "not-a-valid-token"), ("DYNO_SCALER_POLL_INTERVAL", "200ms")],
    );
    let out = run(&["run"], &env).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("rejected the API key") && out.stderr.contains("HEROKU_API_KEY"), "{}", out.stderr);
    assert!(!out.all().contains("not-a-valid-token"));
    assert_eq!(fake.requests().len(), 1, "401 is not retried");
}

#[tokio::test]
async fn json_logs_keep_their_types_to_the_last_line_an_error_included() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 3).await;
    // A cycle that scales (a decision with its figures), then a run that the platform refuses (a fatal error).
    let out = run(&["run", "--once", "--log-format", "json"], &env_sidekiq(&fake, &url)).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let lines: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let decision = lines.iter().find(|v| v["message"] == "decision").unwrap_or_else(|| panic!("{}", out.stderr));
    assert_eq!((decision["from"].as_u64(), decision["to"].as_u64()), (Some(0), Some(1)), "{decision}");
    assert_eq!(decision["applied"].as_bool(), Some(true), "{decision}");
    assert!(decision["draining"].is_array(), "a list is an array: {decision}");
    assert!(decision["reason"].as_str().is_some_and(|r| r.contains("3 ready")), "{decision}");
    assert!(!out.stderr.contains("Some("), "no Rust Debug text: {}", out.stderr);
    let env = with(env_sidekiq(&fake, &url), &[("HEROKU_API_KEY", "not-a-valid-token")]);
    let out = run(&["run", "--log-format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.all());
    let last = out.stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default();
    let last: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON: {last}: {e}"));
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(last["error"].as_str().is_some_and(|e| e.contains("rejected the API key")), "{last}");
    assert!(!out.all().contains("not-a-valid-token"));
}

#[tokio::test]
async fn an_unknown_process_type_exits_1_naming_it() {
    let fake = fake().await;
    let (_redis, url, _c) = own_redis().await;
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_PROCESS_TYPE", "wrkr")]);
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Couldn't find that process type (wrkr)."), "{}", out.stderr);
}

fn sigterm(pid: i32) {
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_exits_0_promptly() {
    let fake = fake().await;
    let (_redis, url, _c) = own_redis().await;
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_POLL_INTERVAL", "5s")]);
    let mut child = command(&["run", "--log-format", "json"], &env).spawn().unwrap();
    assert!(eventually(Duration::from_secs(10), || !fake.requests().is_empty()).await, "first cycle ran");
    let started = Instant::now();
    sigterm(child.id().unwrap() as i32);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.expect("exited").unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    assert!(stderr.contains("\"message\":\"stopped\""), "{stderr}");
    assert!(!stderr.contains(KEY));
}

#[tokio::test]
async fn why_it_does_not_scale_down_is_logged_at_info_once_per_change() {
    let fake = fake().await;
    fake.set_quantity(APP, "worker", 2);
    let (pool, table) = super::events::dj_table(&db_url()).await;
    // One job running (locked by a live worker); DelayedJob cannot say on which dyno.
    let sql = format!(
        "INSERT INTO {table} (priority, attempts, handler, run_at, locked_at, locked_by, queue, created_at, updated_at) \
         VALUES (0, 0, '--- !ruby/object:Delayed::PerformableMethod', now() AT TIME ZONE 'UTC', \
                 now() AT TIME ZONE 'UTC', 'host:w1 pid:4', 'default', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')"
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    let env = env_heroku(
        &fake,
        &[
            ("DYNO_SCALER_SOURCE", "delayed_job"),
            ("DATABASE_URL", &db_url()),
            ("DYNO_SCALER_TABLE", &table),
            ("DYNO_SCALER_MAX_WORKERS", "3"),
            ("DYNO_SCALER_DOWN_DELAY", "1s"),
            ("DYNO_SCALER_POLL_INTERVAL", "100ms"),
        ],
    );
    let daemon = Daemon::start(&env);
    // First the down delay holds (the figures never change after), then the running job does.
    daemon.logged("down delay", 1).await;
    daemon.logged("cannot name their dynos", 1).await;
    // Many more cycles, the same hold: no second info line (the default level is info).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = daemon.stop().await;
    assert_eq!(log.matches("cannot name their dynos").count(), 1, "{log}");
    assert!(log.contains("INFO"), "{log}");
    assert_eq!(fake.quantity(APP, "worker"), Some(2), "a running job holds the dynos");
}
