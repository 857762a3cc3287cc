//! The event path end to end: with the poll at 60 s, new work still scales up within a second (only an event can
//! explain it); a burst coalesces; restarts of Redis and Postgres mid-run reconnect it; `check` says the mode.

use std::time::{Duration, Instant};

use dyno_scaler_heroku::fake::FakeHeroku;
use dyno_scaler_test_support::OwnPostgres;
use sqlx::{AssertSqlSafe, PgPool};

use super::common::*;

/// The time from now until the fake Heroku's `worker` quantity reaches `q`.
async fn scaled_within(fake: &FakeHeroku, process_type: &str, q: u32, limit: Duration) -> Duration {
    let start = Instant::now();
    let ok = eventually(limit, || fake.quantity(APP, process_type) == Some(q)).await;
    assert!(ok, "{process_type} never reached {q} within {limit:?} (now {:?})", fake.quantity(APP, process_type));
    start.elapsed()
}

const SLOW_POLL: (&str, &str) = ("DYNO_SCALER_POLL_INTERVAL", "60s");

#[tokio::test]
async fn sidekiq_and_resque_work_scales_up_on_the_event_not_the_poll() {
    for source in ["sidekiq", "resque"] {
        let fake = fake().await;
        let (_redis, url, mut c) = own_redis().await;
        let env = with(env_sidekiq(&fake, &url), &[SLOW_POLL, ("DYNO_SCALER_SOURCE", source)]);
        let daemon = Daemon::start(&env);
        daemon.logged("mode=client tracking", 1).await;
        if source == "sidekiq" {
            sidekiq_push(&mut c, "default", 1).await;
        } else {
            resque_push(&mut c, "default", 1).await;
        }
        let took = scaled_within(&fake, "worker", 1, Duration::from_secs(5)).await;
        assert!(took < Duration::from_secs(2), "{source}: {took:?}");
        daemon.stop().await;
    }
}

pub(crate) async fn dj_table(url: &str) -> (PgPool, String) {
    let pool = PgPool::connect(url).await.expect("Postgres is required (run scripts/test)");
    let schema = unique("e2e_ev");
    let ddl = delayed_jobs_ddl(&format!("{schema}.delayed_jobs"), false);
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}; {ddl}"))).execute(&pool).await.unwrap();
    (pool, format!("{schema}.delayed_jobs"))
}

pub(crate) async fn dj_enqueue(pool: &PgPool, table: &str, n: usize) {
    let sql = format!(
        "INSERT INTO {table} (priority, attempts, handler, run_at, queue, created_at, updated_at) \
         SELECT 0, 0, '--- !ruby/object:Delayed::PerformableMethod', now() AT TIME ZONE 'UTC', 'default', \
                now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM generate_series(1, {n})"
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(pool).await.unwrap();
}

pub(crate) fn env_dj(fake: &FakeHeroku, url: &str, table: &str) -> Vec<(&'static str, String)> {
    env_heroku(
        fake,
        &[("DYNO_SCALER_SOURCE", "delayed_job"), ("DATABASE_URL", url), ("DYNO_SCALER_TABLE", table), SLOW_POLL],
    )
}

#[tokio::test]
async fn delayed_job_polls_until_the_trigger_is_installed_then_scales_up_on_the_insert() {
    let fake = fake().await;
    let (pool, table) = dj_table(&db_url()).await;
    let env = env_dj(&fake, &db_url(), &table);
    let out = run(&["check"], &env).await;
    assert!(out.stdout.contains("events: polling every 1m: no insert trigger"), "{}", out.all());
    assert!(out.stdout.contains("note: the recommended partial indexes are missing"), "{}", out.all());
    let printed = run(&["install-trigger", "--print"], &env).await;
    assert_eq!(printed.code, 0, "{}", printed.all());
    assert!(printed.stdout.contains("CREATE TRIGGER dyno_scaler_notify AFTER INSERT"), "{}", printed.stdout);
    let out = run(&["install-trigger"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let out = run(&["status", "--json"], &env).await;
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(json["processes"][0]["events"]["mode"], "listen", "{}", out.all());

    let daemon = Daemon::start(&env);
    daemon.logged("mode=listen", 1).await;
    dj_enqueue(&pool, &table, 1).await;
    let took = scaled_within(&fake, "worker", 1, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    daemon.stop().await;
    let out = run(&["uninstall-trigger"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let out = run(&["check"], &env).await;
    assert!(out.stdout.contains("no insert trigger"), "{}", out.all());
}

#[tokio::test]
async fn a_burst_of_10000_enqueues_patches_each_quantity_at_most_once() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    let env = with(env_sidekiq(&fake, &url), &[SLOW_POLL, ("DYNO_SCALER_MAX_WORKERS", "10")]);
    // Every reconcile logs its decision (a repeated hold at debug).
    let daemon = Daemon::start(&with(env.clone(), &[("RUST_LOG", "info,dyno_scaler::cli=debug")]));
    daemon.logged("mode=client tracking", 1).await;
    let before = daemon.log.lock().unwrap().matches(" decision ").count();
    // 10,000 separate LPUSHes (each its own write, so each its own invalidation), 100 to a round trip.
    let start = Instant::now();
    for _ in 0..100 {
        sidekiq_push(&mut c, "default", 100).await;
    }
    let burst = start.elapsed();
    let status = run(&["status", "--json"], &env).await;
    let json: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let desired = json["processes"][0]["desired"].as_u64().expect("a desired quantity") as u32;
    assert!(desired >= 2, "{}", status.stdout);
    scaled_within(&fake, "worker", desired, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bodies: Vec<String> = fake.requests_with("PATCH").into_iter().map(|r| r.body).collect();
    let mut distinct = bodies.clone();
    distinct.sort();
    distinct.dedup();
    assert!(!bodies.is_empty());
    assert_eq!(bodies.len(), distinct.len(), "a quantity was asked for twice: {bodies:?}");
    // The events coalesce: at most one reconcile per wake-up gap while they stream in, not one per push.
    let reconciles = daemon.log.lock().unwrap().matches(" decision ").count() - before;
    let bound = 2 + (burst.as_secs_f64() / dyno_scaler::core::scaler::WAKE_GAP.as_secs_f64()).ceil() as usize;
    eprintln!("10,000 pushes in {burst:?}: {reconciles} reconciles, {} PATCHes", bodies.len());
    assert!(reconciles >= 1 && reconciles <= bound, "{reconciles} reconciles for a burst of {burst:?}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_redis_restart_mid_run_reconnects_the_event_path_and_loses_no_scale_up() {
    let fake = fake().await;
    let (mut redis, url, _) = own_redis().await;
    let env = with(env_sidekiq(&fake, &url), &[SLOW_POLL, ("DYNO_SCALER_MAX_WORKERS", "5")]);
    let daemon = Daemon::start(&env);
    daemon.logged("mode=client tracking", 1).await;
    redis.stop();
    daemon.logged("event path lost", 1).await;
    redis.restart();
    // Work written while the path reconnects is read when it is back.
    let mut c = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    sidekiq_push(&mut c, "default", 1).await;
    scaled_within(&fake, "worker", 1, Duration::from_secs(15)).await;
    daemon.logged("mode=client tracking", 2).await;
    // And the path is live again: more work scales at once, with the poll a minute away.
    sidekiq_push(&mut c, "default", 40).await;
    let took = scaled_within(&fake, "worker", 2, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_postgres_restart_mid_run_reconnects_the_event_path_and_loses_no_scale_up() {
    let fake = fake().await;
    let server = OwnPostgres::start();
    let (pool, table) = dj_table(&server.url()).await;
    let env = env_dj(&fake, &server.url(), &table);
    assert_eq!(run(&["install-trigger"], &env).await.code, 0);
    let env = with(env, &[("DYNO_SCALER_MAX_WORKERS", "5")]);
    let daemon = Daemon::start(&env);
    daemon.logged("mode=listen", 1).await;
    server.stop();
    daemon.logged("event path lost", 1).await;
    // Down long enough for the reconnect backoff to grow to its cap: the path is back within that cap (plus a
    // reconcile) of the server, not after a wait that kept growing while it was down.
    tokio::time::sleep(Duration::from_secs(10)).await;
    server.restart();
    dj_enqueue(&pool, &table, 1).await;
    let took = scaled_within(&fake, "worker", 1, Duration::from_secs(15)).await;
    let cap = dyno_scaler::core::events::RECONNECT_MAX + Duration::from_secs(3);
    assert!(took < cap, "scaled {took:?} after the server was back (cap {cap:?}):\n{}", daemon.log.lock().unwrap());
    daemon.logged("mode=listen", 2).await;
    dj_enqueue(&pool, &table, 40).await;
    let took = scaled_within(&fake, "worker", 2, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    daemon.stop().await;
}

#[tokio::test]
async fn check_says_when_client_tracking_is_refused_and_what_it_falls_back_to() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">app-secret", "~*", "&*", "+@all", "-client"])
        .query_async(&mut c)
        .await
        .unwrap();
    let limited = url.replace("redis://", "redis://app:app-secret@");
    let out = run(&["check"], &env_sidekiq(&fake, &limited)).await;
    assert!(out.stdout.contains("events: polling every 1s: CLIENT TRACKING refused"), "{}", out.all());
    assert!(!out.all().contains("app-secret"), "{}", out.all());
    let _: () = redis::cmd("CONFIG").arg(&["SET", "notify-keyspace-events", "Kl"]).query_async(&mut c).await.unwrap();
    let out = run(&["check"], &env_sidekiq(&fake, &limited)).await;
    assert!(out.stdout.contains("events: keyspace notifications"), "{}", out.all());
}

#[tokio::test]
async fn a_job_for_later_scales_up_when_it_falls_due_not_at_the_next_poll() {
    // DelayedJob: the insert wakes the loop, the snapshot says when the job is due, the loop wakes then.
    let fake = fake().await;
    let (pool, table) = dj_table(&db_url()).await;
    let env = env_dj(&fake, &db_url(), &table);
    assert_eq!(run(&["install-trigger"], &env).await.code, 0);
    let daemon = Daemon::start(&env);
    daemon.logged("mode=listen", 1).await;
    let sql = format!(
        "INSERT INTO {table} (priority, attempts, handler, run_at, queue, created_at, updated_at) \
         VALUES (0, 0, '--- !ruby/object:Delayed::PerformableMethod', now() AT TIME ZONE 'UTC' + interval '2 seconds', \
                 'default', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')"
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    let took = scaled_within(&fake, "worker", 1, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(3), "{took:?}");
    daemon.stop().await;

    // Sidekiq: `perform_in` writes the schedule set; with no Sidekiq running, nothing moves it, and the scaler
    // counts it as ready once due.
    let fake = self::fake().await;
    let (_redis, url, mut c) = own_redis().await;
    let daemon = Daemon::start(&with(env_sidekiq(&fake, &url), &[SLOW_POLL]));
    daemon.logged("mode=client tracking", 1).await;
    let at = now() + 2.0;
    let job = format!(
        r#"{{"retry":true,"queue":"default","class":"HardWorker","args":[1],"jid":"0123456789abcdef01234567","created_at":{:.7}}}"#,
        now()
    );
    let _: () = redis::cmd("ZADD").arg("schedule").arg(format!("{at:.6}")).arg(job).query_async(&mut c).await.unwrap();
    let took = scaled_within(&fake, "worker", 1, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(3), "{took:?}");
    daemon.stop().await;
}
