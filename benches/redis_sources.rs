//! Snapshot time and Redis commands per snapshot for Sidekiq and Resque, with 1, 100 and 1,000 queues
//! holding 100,000 jobs in all plus 10,000 scheduled entries, compared with the naive way (one LLEN and
//! one LINDEX per queue, no pipeline). Prints figures.
//!
//! `cargo bench --bench redis_sources` (needs Redis; DYNO_SCALER_TEST_REDIS_URL, default redis://127.0.0.1:6379)

use std::time::{Duration, Instant};

use dyno_scaler::core::QueueSource;
use dyno_scaler::resque::{ResqueConfig, ResqueSource};
use dyno_scaler::sidekiq::{SidekiqConfig, SidekiqSource};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

const JOBS: usize = 100_000;
const RUNS: usize = 50;

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

async fn commands_processed(c: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(c).await.unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .map(|line| {
            line.split("calls=")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

async fn clear(c: &mut MultiplexedConnection, prefix: &str) {
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(5000)
            .query_async(c)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = c.del(keys).await.unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

async fn fill_sidekiq(c: &mut MultiplexedConnection, p: &str, queues: usize) {
    let per = JOBS / queues;
    let t = now();
    for q in 0..queues {
        let mut pipe = redis::pipe();
        pipe.sadd(format!("{p}queues"), format!("q{q}")).ignore();
        for i in 0..per {
            let ts = t - (per - i) as f64;
            pipe.lpush(
                format!("{p}queue:q{q}"),
                format!(r#"{{"retry":true,"queue":"q{q}","class":"HardWorker","args":[{i}],"jid":"{:024x}","created_at":{ts:.7},"enqueued_at":{ts:.7}}}"#, q * per + i),
            )
            .ignore();
        }
        let _: () = pipe.query_async(c).await.unwrap();
    }
    let mut pipe = redis::pipe();
    for i in 0..10_000usize {
        let at = if i % 2 == 0 { t - 60.0 - i as f64 } else { t + 3600.0 + i as f64 };
        let q = i % queues;
        pipe.zadd(format!("{p}schedule"), format!(r#"{{"retry":true,"queue":"q{q}","class":"HardWorker","args":[{i}],"jid":"{i:024x}","created_at":{t:.7}}}"#), format!("{at:.6}")).ignore();
    }
    for w in 0..10 {
        let id = format!("worker.{}:4:{w:012x}", w + 1);
        pipe.sadd(format!("{p}processes"), &id).ignore();
        pipe.hset_multiple(
            format!("{p}{id}"),
            &[("info", "{}".to_string()), ("busy", "0".into()), ("beat", format!("{t:.4}")), ("quiet", "false".into())],
        )
        .ignore();
    }
    let _: () = pipe.query_async(c).await.unwrap();
}

async fn fill_resque(c: &mut MultiplexedConnection, ns: &str, queues: usize) {
    let per = JOBS / queues;
    for q in 0..queues {
        let mut pipe = redis::pipe();
        pipe.sadd(format!("{ns}:queues"), format!("q{q}")).ignore();
        for i in 0..per {
            pipe.rpush(format!("{ns}:queue:q{q}"), format!(r#"{{"class":"ImageResizer","args":[{i},"thumb"]}}"#))
                .ignore();
        }
        let _: () = pipe.query_async(c).await.unwrap();
    }
    let t = now() as u64;
    let mut pipe = redis::pipe();
    for i in 0..10_000u64 {
        let ts = if i % 2 == 0 { t - 60 - i } else { t + 3600 + i };
        pipe.rpush(
            format!("{ns}:delayed:{ts}"),
            format!(r#"{{"class":"X","args":[{i}],"queue":"q{}"}}"#, i as usize % queues),
        )
        .ignore();
        pipe.zadd(format!("{ns}:delayed_queue_schedule"), ts, ts).ignore();
    }
    let _: () = pipe.query_async(c).await.unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn measure(source: &dyn QueueSource, c: &mut MultiplexedConnection) -> (Duration, u64, u64) {
    source.snapshot().await.unwrap(); // connect
    let before = commands_processed(c).await;
    let snap = source.snapshot().await.unwrap();
    let after = commands_processed(c).await;
    // The INFO call itself is one command.
    let server_cmds = after - before - 1;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        std::hint::black_box(source.snapshot().await.unwrap());
        times.push(t.elapsed());
    }
    (median(times), server_cmds, snap.totals().ready)
}

async fn naive(c: &mut MultiplexedConnection, queues_key: &str, list_prefix: &str) -> (Duration, u64) {
    let mut times = Vec::new();
    let mut trips = 0;
    for _ in 0..5 {
        let t = Instant::now();
        trips = 1;
        let qs: Vec<String> = c.smembers(queues_key).await.unwrap();
        let mut total = 0u64;
        for q in &qs {
            let n: u64 = c.llen(format!("{list_prefix}{q}")).await.unwrap();
            let _: Option<String> = c.lindex(format!("{list_prefix}{q}"), -1).await.unwrap();
            total += n;
            trips += 2;
        }
        std::hint::black_box(total);
        times.push(t.elapsed());
    }
    (median(times), trips)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("DYNO_SCALER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut c =
        redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.expect("Redis is required");
    println!(
        "{:<8} {:>7} {:>12} {:>12} {:>14} {:>12} {:>14} {:>12}",
        "source", "queues", "ready", "snapshot", "round trips", "server cmds", "naive", "naive trips"
    );
    for queues in [1usize, 100, 1000] {
        let ns = format!("dsbench{}", std::process::id());
        let p = format!("{ns}:");
        clear(&mut c, &p).await;
        fill_sidekiq(&mut c, &p, queues).await;
        let mut cfg = SidekiqConfig::new(url.clone());
        cfg.namespace = Some(ns.clone());
        let src = SidekiqSource::new(cfg).unwrap();
        let (t, cmds, ready) = measure(&src, &mut c).await;
        let (nt, ntrips) = naive(&mut c, &format!("{p}queues"), &format!("{p}queue:")).await;
        println!(
            "{:<8} {queues:>7} {ready:>12} {:>12.2?} {:>14} {cmds:>12} {:>14.2?} {ntrips:>12}",
            "sidekiq", t, 2, nt
        );
        clear(&mut c, &p).await;

        fill_resque(&mut c, &ns, queues).await;
        let mut cfg = ResqueConfig::new(url.clone());
        cfg.namespace = ns.clone();
        let src = ResqueSource::new(cfg).unwrap();
        let (t, cmds, ready) = measure(&src, &mut c).await;
        let (nt, ntrips) = naive(&mut c, &format!("{p}queues"), &format!("{p}queue:")).await;
        println!(
            "{:<8} {queues:>7} {ready:>12} {:>12.2?} {:>14} {cmds:>12} {:>14.2?} {ntrips:>12}",
            "resque", t, 2, nt
        );
        clear(&mut c, &p).await;
    }
    println!(
        "ready includes the 5,000 due scheduled entries; round trips: two pipelines per snapshot (by construction); server cmds = commands Redis ran for one snapshot; median of {RUNS} snapshots"
    );
}
