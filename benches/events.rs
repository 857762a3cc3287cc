//! Enqueue → PATCH received by the fake Heroku, through the event path, with the poll at 60 s so that polling
//! cannot explain the figures. Per source: ROUNDS rounds of PER_ROUND enqueues, each wanting one more worker
//! (classic policy, one job per worker), so each enqueue is answered by exactly one PATCH. Prints p50/p99/max.
//!
//! `cargo bench --bench events` (needs Redis, Postgres and Debian's ruby-sidekiq; EVENTS_ROUNDS, default 5;
//! EVENTS_SPACING_MS, default 20; EVENTS_SOURCES, default sidekiq,resque,delayed_job,good_job)
//!
//! Sidekiq jobs are pushed by the real Sidekiq 6.4 client (benches/ruby/sidekiq_push.rb, its clock read just
//! before the push); Resque jobs as `Resque.push` writes them (SADD + RPUSH); DelayedJob rows with the INSERT
//! `delayed_job_active_record` makes, into a table with the insert trigger installed; GoodJob rows with the INSERT and
//! the `NOTIFY good_job` GoodJob's adapter sends, beside 300,000 finished rows (EVENTS_FINISHED_ROWS).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dyno_scaler_heroku::fake::{FakeConfig, FakeHeroku};
use dyno_scaler_test_support::{
    OwnRedis, db_url, delayed_jobs_ddl, good_job_enqueue_sql, good_job_finished_sql, good_jobs_ddl, unique,
};
use sqlx::AssertSqlSafe;
use tokio::io::AsyncBufReadExt;

const APP: &str = "bench-app";
const KEY: &str = "bench-key";
const PER_ROUND: u32 = 50;

/// The pause between one PATCH and the next enqueue (`EVENTS_SPACING_MS`, default 20 ms: inside the scaler's
/// 25 ms wake-up gap, so an enqueue may wait for the rest of it).
fn spacing() -> Duration {
    Duration::from_millis(std::env::var("EVENTS_SPACING_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(20))
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

struct Daemon {
    child: tokio::process::Child,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    async fn start(fake: &FakeHeroku, env: &[(&str, String)]) -> Self {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_dyno-scaler"));
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", std::env::var("EVENTS_LOG").unwrap_or_else(|_| "info".into()));
        for (k, v) in [
            ("HEROKU_API_KEY", KEY.to_owned()),
            ("HEROKU_APP_NAME", APP.to_owned()),
            ("HEROKU_API_URL", fake.url()),
            ("DYNO_SCALER_POLL_INTERVAL", "60s".to_owned()),
            ("DYNO_SCALER_POLICY", "classic".to_owned()),
            ("DYNO_SCALER_JOBS_PER_WORKER", "1".to_owned()),
            ("DYNO_SCALER_MAX_WORKERS", "90".to_owned()),
        ] {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                sink.lock().unwrap().push_str(&(l + "\n"));
            }
        });
        let me = Self { child, log };
        let start = Instant::now();
        while !me.log.lock().unwrap().contains("event path") {
            assert!(start.elapsed() < Duration::from_secs(20), "no event path:\n{}", me.log.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = me.log.lock().unwrap().clone();
        assert!(!log.contains("mode=polling"), "the event path is not active:\n{log}");
        // The path coming up wakes one reconcile; the first enqueue comes after it, as work does in production.
        tokio::time::sleep(Duration::from_millis(100)).await;
        me
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Waits for the PATCH asking for `quantity`; its arrival time at the fake.
async fn patched(fake: &FakeHeroku, quantity: u32) -> SystemTime {
    let body = format!(r#"{{"quantity":{quantity}}}"#);
    let start = Instant::now();
    loop {
        if let Some(r) = fake.requests_with("PATCH").into_iter().find(|r| r.body == body) {
            return r.at;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no PATCH to {quantity}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Milliseconds from `t0` (the enqueue of the `q`-th job) to the PATCH asking for `q`, then the spacing before
/// the next enqueue. `EVENTS_TRACE`: the daemon's log around the first.
async fn answered(fake: &FakeHeroku, daemon: &Daemon, q: u32, t0: SystemTime) -> f64 {
    let at = patched(fake, q).await;
    if q == 1 && std::env::var_os("EVENTS_TRACE").is_some() {
        eprintln!("first enqueue at {:.4}, PATCH at {:.4}", epoch(t0), epoch(at));
        eprintln!("{}", daemon.log.lock().unwrap());
    }
    tokio::time::sleep(spacing()).await;
    at.duration_since(t0).unwrap_or_default().as_secs_f64() * 1000.0
}

fn summary(name: &str, ms: Vec<f64>) {
    let mut slow: Vec<(usize, f64)> = ms.iter().copied().enumerate().collect();
    slow.sort_by(|a, b| b.1.total_cmp(&a.1));
    let slow: Vec<String> = slow
        .iter()
        .take(5)
        .map(|(i, m)| format!("#{}.{} {m:.1}", *i as u32 / PER_ROUND, *i as u32 % PER_ROUND + 1))
        .collect();
    let mut ms = ms;
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "{name:<12} n={:<4} p50 {:>6.1} ms  p90 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
        ms.len(),
        q(0.50),
        q(0.90),
        q(0.99),
        ms[ms.len() - 1]
    );
    println!("{:<12} slowest (round.enqueue ms): {}", "", slow.join(", "));
}

async fn round_fake() -> FakeHeroku {
    let fake = FakeHeroku::start(FakeConfig::default()).await;
    fake.add_app(APP, "ops@example.com");
    fake.add_formation(APP, "worker", "bundle exec work", "Standard-1X", 0);
    fake.add_token(KEY, "ops@example.com");
    fake
}

async fn sidekiq(rounds: u32) -> Vec<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/ruby/sidekiq_push.rb");
    let mut out = Vec::new();
    for _ in 0..rounds {
        let redis = OwnRedis::start();
        let fake = round_fake().await;
        let daemon =
            Daemon::start(&fake, &[("DYNO_SCALER_SOURCE", "sidekiq".into()), ("REDIS_URL", redis.url())]).await;
        let mut ruby = Command::new("ruby")
            .arg(script)
            .env("REDIS_URL", redis.url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("ruby with ruby-sidekiq");
        let mut stdin = ruby.stdin.take().unwrap();
        let mut stdout = BufReader::new(ruby.stdout.take().unwrap());
        for q in 1..=PER_ROUND {
            writeln!(stdin, "push").unwrap();
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            let t0: f64 = line.trim().parse().expect("a time from the pusher");
            out.push((epoch(patched(&fake, q).await) - t0) * 1000.0);
            tokio::time::sleep(spacing()).await;
        }
        drop(stdin);
        let _ = ruby.wait();
        daemon.stop().await;
    }
    out
}

async fn resque(rounds: u32) -> Vec<f64> {
    let mut out = Vec::new();
    for _ in 0..rounds {
        let redis = OwnRedis::start();
        let mut c = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
        let fake = round_fake().await;
        let daemon = Daemon::start(&fake, &[("DYNO_SCALER_SOURCE", "resque".into()), ("REDIS_URL", redis.url())]).await;
        for q in 1..=PER_ROUND {
            let t0 = SystemTime::now();
            let _: () = redis::pipe()
                .sadd("resque:queues", "default")
                .ignore()
                .rpush("resque:queue:default", format!(r#"{{"class":"ImageResizer","args":[{q}]}}"#))
                .ignore()
                .query_async(&mut c)
                .await
                .unwrap();
            out.push(answered(&fake, &daemon, q, t0).await);
        }
        daemon.stop().await;
    }
    out
}

async fn delayed_job(rounds: u32) -> Vec<f64> {
    let pool = sqlx::PgPool::connect(&db_url()).await.expect("Postgres");
    let mut out = Vec::new();
    for _ in 0..rounds {
        let schema = unique("bench_ev");
        let table = format!("{schema}.delayed_jobs");
        let ddl = delayed_jobs_ddl(&table, false);
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}; {ddl}"))).execute(&pool).await.unwrap();
        let mut config = dyno_scaler_delayed_job::DelayedJobConfig::new(db_url());
        config.table = table.clone();
        dyno_scaler_delayed_job::DelayedJobSource::new(config).unwrap().trigger().install().await.unwrap();
        let fake = round_fake().await;
        let env = [
            ("DYNO_SCALER_SOURCE", "delayed_job".to_owned()),
            ("DATABASE_URL", db_url()),
            ("DYNO_SCALER_TABLE", table.clone()),
        ];
        let daemon = Daemon::start(&fake, &env).await;
        let insert = format!(
            "INSERT INTO {table} (priority, attempts, handler, last_error, run_at, locked_at, failed_at, locked_by, \
             queue, created_at, updated_at) VALUES ($1, $2, $3, $4, $5::timestamp, $6::timestamp, $7::timestamp, $8, $9, $10::timestamp, $11::timestamp) \
             RETURNING id"
        );
        for q in 1..=PER_ROUND {
            let t0 = SystemTime::now();
            let now = dyno_scaler::core::timefmt::format_rfc3339_nanos(t0).trim_end_matches('Z').to_owned();
            let _: (i64,) = sqlx::query_as(AssertSqlSafe(insert.clone()))
                .bind(0)
                .bind(0)
                .bind("--- !ruby/object:Delayed::PerformableMethod\nobject: 1\nmethod_name: :run\n")
                .bind(None::<String>)
                .bind(&now)
                .bind(None::<String>)
                .bind(None::<String>)
                .bind(None::<String>)
                .bind("default")
                .bind(&now)
                .bind(&now)
                .fetch_one(&pool)
                .await
                .unwrap();
            out.push(answered(&fake, &daemon, q, t0).await);
        }
        daemon.stop().await;
        sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&pool).await.unwrap();
    }
    out
}

/// GoodJob: its own `NOTIFY good_job` after the `INSERT` (GoodJob::Adapter#enqueue), into a table holding
/// `EVENTS_FINISHED_ROWS` finished jobs (default 300,000: GoodJob keeps them), vacuumed as autovacuum leaves it.
/// Each round starts a new daemon on the same table, its jobs deleted first.
async fn good_job(rounds: u32) -> Vec<f64> {
    let pool = sqlx::PgPool::connect(&db_url()).await.expect("Postgres");
    let schema = unique("bench_gj");
    let table = format!("{schema}.good_jobs");
    let ddl = good_jobs_ddl(&schema);
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}; {ddl}"))).execute(&pool).await.unwrap();
    let finished: u64 = std::env::var("EVENTS_FINISHED_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(300_000);
    let fill = good_job_finished_sql(&table, finished);
    sqlx::raw_sql(AssertSqlSafe(fill)).execute(&pool).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("VACUUM ANALYZE {table}"))).execute(&pool).await.unwrap();
    let insert = good_job_enqueue_sql(&table);
    let mut out = Vec::new();
    for _ in 0..rounds {
        sqlx::raw_sql(AssertSqlSafe(format!("DELETE FROM {table} WHERE finished_at IS NULL")))
            .execute(&pool)
            .await
            .unwrap();
        let fake = round_fake().await;
        let env = [
            ("DYNO_SCALER_SOURCE", "good_job".to_owned()),
            ("DATABASE_URL", db_url()),
            ("DYNO_SCALER_TABLE", table.clone()),
        ];
        let daemon = Daemon::start(&fake, &env).await;
        for q in 1..=PER_ROUND {
            let t0 = SystemTime::now();
            sqlx::raw_sql(AssertSqlSafe(insert.clone())).execute(&pool).await.unwrap();
            out.push(answered(&fake, &daemon, q, t0).await);
        }
        daemon.stop().await;
    }
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&pool).await.unwrap();
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: u32 = std::env::var("EVENTS_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    println!(
        "enqueue -> PATCH received, poll interval 60 s, {rounds} x {PER_ROUND} enqueues per source, {:?} apart",
        spacing()
    );
    let only = std::env::var("EVENTS_SOURCES").unwrap_or_else(|_| "sidekiq,resque,delayed_job,good_job".into());
    if only.contains("sidekiq") {
        summary("sidekiq", sidekiq(rounds).await);
    }
    if only.contains("resque") {
        summary("resque", resque(rounds).await);
    }
    if only.contains("delayed_job") {
        summary("delayed_job", delayed_job(rounds).await);
    }
    if only.contains("good_job") {
        summary("good_job", good_job(rounds).await);
    }
}
