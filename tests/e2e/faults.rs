//! Fault scenarios against the running daemon: Redis killed and stalled, Postgres connections terminated and its
//! table locked, Heroku answering 5xx, 429, stalling, with malformed bodies or dropped connections. In each the
//! quantity is held (nothing is scaled on missing data), and the daemon recovers by itself afterwards.

use std::time::{Duration, Instant};

use dyno_scaler_heroku::fake::{Fault, FaultAction};
use sqlx::AssertSqlSafe;

use super::common::*;

/// The daemon at a 200 ms poll against a private Redis with 3 jobs waiting, once it has scaled `worker` to 1.
async fn scaled_up_on_own_redis(
    fake: &dyno_scaler_heroku::fake::FakeHeroku,
) -> (OwnRedis, redis::aio::MultiplexedConnection, tokio::process::Child) {
    let (redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 3).await;
    let env =
        with(env_sidekiq(fake, &url), &[("DYNO_SCALER_POLL_INTERVAL", "200ms"), ("DYNO_SCALER_DOWN_DELAY", "0s")]);
    let child = command(&["run"], &env).spawn().unwrap();
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(1)).await, "scaled up");
    (redis, c, child)
}

#[tokio::test]
async fn a_stalled_redis_holds_the_quantity_then_recovers_with_one_log_line() {
    let fake = fake().await;
    let (redis, mut c, child) = scaled_up_on_own_redis(&fake).await;
    redis.pause();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(fake.quantity(APP, "worker"), Some(1), "a stalled queue holds the quantity");
    assert_eq!(fake.requests_with("PATCH").len(), 1);
    redis.resume();
    let _: () = redis::cmd("DEL").arg("queue:default").query_async(&mut c).await.unwrap();
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(0)).await, "recovered");
    let stderr = stop_daemon(child).await;
    let failures = stderr.matches("cycle failed").count();
    assert!((1..=2).contains(&failures), "about 15 failed cycles, logged once ({failures} lines):\n{stderr}");
    assert!(stderr.contains("cycle succeeded again"), "{stderr}");
}

#[tokio::test]
async fn a_killed_redis_holds_the_quantity_then_recovers() {
    let fake = fake().await;
    let (mut redis, _c, child) = scaled_up_on_own_redis(&fake).await;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.quantity(APP, "worker"), Some(1), "an unreachable queue holds the quantity");
    assert_eq!(fake.requests_with("PATCH").len(), 1);
    // Redis comes back, empty: the scaler reads it again and scales down.
    redis.restart();
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(0)).await, "recovered");
    let stderr = stop_daemon(child).await;
    assert!(stderr.contains("quantity held") && stderr.contains("sidekiq"), "the source error was logged: {stderr}");
}

#[tokio::test]
async fn postgres_terminated_connections_and_a_locked_table_hold_then_recover() {
    let fake = fake().await;
    let pool = sqlx::PgPool::connect(&db_url()).await.expect("Postgres is required (run scripts/test)");
    let schema = unique("fault");
    let table = format!("{schema}.delayed_jobs");
    let insert = format!(
        "INSERT INTO {table} (handler, run_at, queue, created_at, updated_at) SELECT 'x', now() AT TIME ZONE 'UTC', \
         'default', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM generate_series(1, 5)"
    );
    let ddl = format!("CREATE SCHEMA {schema}; {}; {insert}", delayed_jobs_ddl(&table, false));
    sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&pool).await.unwrap();
    let toml = format!(
        "poll_interval = \"200ms\"\n[[process]]\ntype = \"dj_worker\"\nsource = \"delayed_job\"\ntable = \"{table}\"\n\
         down_delay = \"0s\"\nmax_workers = 2\n"
    );
    let path = config_file(&schema, &toml);
    let env = env_heroku(&fake, &[("DATABASE_URL", &db_url())]);
    let child = command(&["--config", path.to_str().unwrap(), "run"], &env).spawn().unwrap();
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "dj_worker") == Some(1)).await, "scaled up");

    // The table locked for 3 s (a migration): every reading times out; the quantity holds. The rows go meanwhile.
    let mut tx = pool.begin().await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; DELETE FROM {table}")))
        .execute(&mut *tx)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.quantity(APP, "dj_worker"), Some(1), "a locked table holds the quantity");
    tx.commit().await.unwrap();
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "dj_worker") == Some(0)).await, "recovered");

    // Every connection of the daemon terminated (a failover, pg_terminate_backend): it reconnects.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'dyno-scaler' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the daemon's connection was there to terminate");
    sqlx::raw_sql(AssertSqlSafe(insert)).execute(&pool).await.unwrap();
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "dj_worker") == Some(1)).await, "reconnected");
    stop_daemon(child).await;
    let _ = std::fs::remove_file(&path);
}

/// Heroku misbehaves for a few seconds in one way: nothing is scaled meanwhile, the daemon keeps running, and
/// the work waiting is scaled for once Heroku answers again.
async fn heroku_fault_then_recovery(action: FaultAction, label: &str) {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_POLL_INTERVAL", "200ms")]);
    fake.inject(Fault::any(100_000, action));
    let child = command(&["run"], &env).spawn().unwrap();
    sidekiq_push(&mut c, "default", 3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.quantity(APP, "worker"), Some(0), "{label}: nothing scaled while Heroku misbehaves");
    fake.clear_faults();
    assert!(
        eventually(Duration::from_secs(15), || fake.quantity(APP, "worker") == Some(1)).await,
        "{label}: scaled once Heroku answered again"
    );
    let stderr = stop_daemon(child).await;
    assert!(stderr.matches("cycle failed").count() <= 3, "{label}: failures logged once each:\n{stderr}");
}

#[tokio::test]
async fn heroku_5xx_then_recovery() {
    heroku_fault_then_recovery(FaultAction::Status(503), "503").await;
}

#[tokio::test]
async fn heroku_429_then_recovery() {
    heroku_fault_then_recovery(FaultAction::Status(429), "429").await;
}

#[tokio::test]
async fn heroku_malformed_bodies_then_recovery() {
    let action = FaultAction::Respond { status: 200, body: "{\"quantity\":".into(), headers: Vec::new() };
    heroku_fault_then_recovery(action, "malformed").await;
}

#[tokio::test]
async fn heroku_dropped_connections_then_recovery() {
    heroku_fault_then_recovery(FaultAction::DropConnection, "dropped").await;
}

#[tokio::test]
async fn heroku_stalls_delay_but_do_not_stop_scaling() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_POLL_INTERVAL", "200ms")]);
    fake.inject(Fault::any(3, FaultAction::Delay(Duration::from_secs(2))));
    sidekiq_push(&mut c, "default", 3).await;
    let started = Instant::now();
    let child = command(&["run"], &env).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || fake.quantity(APP, "worker") == Some(1)).await, "scaled");
    assert!(started.elapsed() >= Duration::from_secs(2), "the stall was felt");
    stop_daemon(child).await;
}

/// A 60 s outage (every request answered 500) at a 100 ms poll: the figure is printed for BENCHMARKS.md.
#[tokio::test]
async fn a_60_second_heroku_outage_costs_a_bounded_number_of_requests() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 3).await;
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_POLL_INTERVAL", "100ms")]);
    fake.inject(Fault::any(1_000_000, FaultAction::Status(500)));
    let child = command(&["run"], &env).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let requests = fake.requests().len();
    assert_eq!(fake.quantity(APP, "worker"), Some(0));
    // Heroku comes back: with work waiting, a probe every 5 s finds it (not the end of a 60 s backoff).
    fake.clear_faults();
    let back = Instant::now();
    let scaled = eventually(Duration::from_secs(30), || fake.quantity(APP, "worker") == Some(1)).await;
    let took = back.elapsed();
    let stderr = stop_daemon(child).await;
    assert!(scaled, "not scaled after the outage: {}", &stderr[stderr.len().saturating_sub(8000)..]);
    eprintln!(
        "60 s Heroku outage at a 100 ms poll: {requests} requests ({:.2}/s); scaled {took:.1?} after it ended",
        requests as f64 / 60.0
    );
    // First cycle: 5 attempts; then one request per backoff wait (0.5-1 s, 1-2, 2-4, ... up to 60 s), and with
    // work waiting a probe every 5 s.
    assert!(requests <= 16 + 12, "{requests} requests in 60 s");
    assert!(requests >= 6, "the daemon kept probing: {requests}");
    assert!(
        took < Duration::from_secs(7),
        "the outage's end found {took:?} after it: {}",
        &stderr[stderr.len().saturating_sub(6000)..]
    );
    assert!(stderr.matches("cycle failed").count() <= 4, "one line per distinct failure:\n{stderr}");
}

#[tokio::test]
async fn sighup_is_ignored_and_said() {
    let fake = fake().await;
    let (_redis, url, _c) = own_redis().await;
    let child =
        command(&["run"], &with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_POLL_INTERVAL", "200ms")])).spawn().unwrap();
    assert!(eventually(Duration::from_secs(10), || !fake.requests().is_empty()).await, "first cycle ran");
    signal(&child, "-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stderr = stop_daemon(child).await;
    assert!(stderr.contains("SIGHUP received and ignored"), "{stderr}");
}
