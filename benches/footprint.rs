//! Footprint of `dyno-scaler run` watching three process types (Sidekiq, Resque, DelayedJob) at a 1 s
//! interval: peak RSS, CPU time per cycle, binary size. Prints figures.
//!
//! `cargo bench --bench footprint` (needs Redis and Postgres; FOOTPRINT_SECS, default 60)

use std::time::{Duration, Instant};

use dyno_scaler_heroku::fake::{FakeConfig, FakeHeroku};
use dyno_scaler_test_support::delayed_jobs_ddl;
use sqlx::AssertSqlSafe;

#[path = "support/proc.rs"]
mod proc;
use proc::{proc_field, rss_by_mapping};

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at positions 11 and 12 after the command name.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: u64 = std::env::var("FOOTPRINT_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let redis_url = std::env::var("DYNO_SCALER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let db_url = std::env::var("DYNO_SCALER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let fake = FakeHeroku::start(FakeConfig::default()).await;
    fake.add_app("foot-app", "ops@example.com");
    for t in ["worker", "urgent", "dj_worker"] {
        fake.add_formation("foot-app", t, "bundle exec work", "Standard-1X", 0);
    }
    fake.add_token("footprint-key", "ops@example.com");

    let ns = format!("dsfoot{}", std::process::id());
    let pool = sqlx::PgPool::connect(&db_url).await.expect("Postgres is required");
    let schema = format!("dst_foot_{}", std::process::id());
    let ddl = delayed_jobs_ddl(&format!("{schema}.delayed_jobs"), false);
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}; {ddl}"))).execute(&pool).await.unwrap();
    let config = format!(
        r#"poll_interval = "1s"
[[process]]
type = "worker"
source = "sidekiq"
namespace = "{ns}"
max_workers = 5
[[process]]
type = "urgent"
source = "resque"
namespace = "{ns}"
max_workers = 2
[[process]]
type = "dj_worker"
source = "delayed_job"
url = "{db_url}"
table = "{schema}.delayed_jobs"
max_workers = 2
"#
    );
    let path = std::env::temp_dir().join(format!("{ns}.toml"));
    std::fs::write(&path, config).unwrap();
    let exe = env!("CARGO_BIN_EXE_dyno-scaler");
    // FOOTPRINT_SCRAPE=1: also serve /metrics and scrape it every second (Prometheus scrapes every 15 s or so).
    let scrape = std::env::var("FOOTPRINT_SCRAPE").is_ok_and(|v| v == "1");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let mut args = vec!["--config", path.to_str().unwrap(), "run"];
    if scrape {
        args.extend(["--listen", &listen]);
    }
    let api = fake.url();
    let env = [
        ("HEROKU_API_KEY", "footprint-key"),
        ("HEROKU_APP_NAME", "foot-app"),
        ("HEROKU_API_URL", api.as_str()),
        ("REDIS_URL", redis_url.as_str()),
    ];
    let mut child = proc::quiet_daemon(exe, &args, &env);
    let pid = child.id().unwrap();
    let mut redis = redis::Client::open(redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let start = Instant::now();
    let ticks0 = cpu_ticks(pid);
    // Work comes and goes: a burst every 10 s on each queue.
    let mut i = 0u64;
    let mut scraped = 0usize;
    while start.elapsed() < Duration::from_secs(secs) {
        if i.is_multiple_of(10) {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
            let mut p = redis::pipe();
            for j in 0..30 {
                p.sadd(format!("{ns}:queues"), "default").ignore();
                p.lpush(format!("{ns}:queue:default"), format!(r#"{{"retry":true,"queue":"default","class":"HardWorker","args":[{j}],"jid":"{j:024x}","created_at":{now:.7},"enqueued_at":{now:.7}}}"#)).ignore();
                p.rpush(format!("{ns}:queue:critical"), r#"{"class":"Urgent","args":[1]}"#).ignore();
            }
            p.sadd(format!("{ns}:queues"), "critical").ignore();
            let _: () = p.query_async(&mut redis).await.unwrap();
        } else if i % 10 == 5 {
            let _: () = redis::pipe()
                .del(format!("{ns}:queue:default"))
                .del(format!("{ns}:queue:critical"))
                .query_async(&mut redis)
                .await
                .unwrap();
        }
        i += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
        if scrape && i > 1 {
            scraped += scrape_once(metrics_port).await;
        }
    }
    let elapsed = start.elapsed();
    let hwm = proc_field(pid, "status", "VmHWM:").unwrap_or(0);
    let rss = proc_field(pid, "status", "VmRSS:").unwrap_or(0);
    let ticks = cpu_ticks(pid) - ticks0;
    let by_mapping = rss_by_mapping(pid);
    let threads = proc_field(pid, "status", "Threads:").unwrap_or(0);
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let status = child.wait().await.unwrap();
    let cycles = elapsed.as_secs_f64(); // one cycle per second
    let cpu_ms = ticks as f64 * 1000.0 / 100.0; // USER_HZ = 100
    println!("run for {elapsed:.1?}, 3 process types at 1 s; exit {status}");
    println!("peak RSS (VmHWM):   {:.1} MiB  (RSS at the end {:.1} MiB)", hwm as f64 / 1024.0, rss as f64 / 1024.0);
    println!("RSS at the end, by mapping ({threads} threads):");
    for (kind, kib) in &by_mapping {
        println!("  {:>7.2} MiB  {kind}", *kib as f64 / 1024.0);
    }
    println!("CPU time:           {cpu_ms:.0} ms in all, {:.2} ms per cycle of 3 process types", cpu_ms / cycles);
    println!("platform calls:     {} (PATCH {})", fake.requests().len(), fake.requests_with("PATCH").len());
    if scrape {
        println!("/metrics scraped:   {} times, {scraped} bytes in all", i - 1);
    }
    let size = std::fs::metadata(exe).unwrap().len();
    println!("binary size:        {:.1} MiB ({exe})", size as f64 / 1024.0 / 1024.0);
    let _: () = redis::pipe().del(format!("{ns}:queues")).query_async(&mut redis).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&pool).await.unwrap();
}

/// One `GET /metrics`: the bytes of the answer.
async fn scrape_once(port: u16) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).await.unwrap();
    body.len()
}
