//! Several `dyno-scaler run` instances against one app: one acts, the others follow warm; a killed leader is
//! replaced within the lease TTL plus one interval; a partitioned one stops before another takes over; pause and
//! resume reach every instance.

use std::time::{Duration, Instant};

use dyno_scaler_heroku::fake::FakeHeroku;
use redis::AsyncCommands;
use serde_json::{Value, json};

use super::common::*;

const TTL: &str = "2s";
const POLL: &str = "500ms";

fn env(fake: &FakeHeroku, url: &str) -> Vec<(&'static str, String)> {
    with(
        env_sidekiq(fake, url),
        &[
            ("DYNO_SCALER_MAX_WORKERS", "10"),
            ("DYNO_SCALER_DOWN_DELAY", "0s"),
            ("DYNO_SCALER_POLL_INTERVAL", POLL),
            ("DYNO_SCALER_LEASE_TTL", TTL),
        ],
    )
}

/// Sets `queue:default` to exactly `n` jobs in one transaction (no reading sees it empty in between).
async fn set_queue(c: &mut redis::aio::MultiplexedConnection, n: usize) {
    let mut p = redis::pipe();
    p.atomic().del("queue:default").ignore().sadd("queues", "default").ignore();
    for i in 0..n {
        p.lpush("queue:default", sidekiq_job("default", i)).ignore();
    }
    let _: () = p.query_async(c).await.unwrap();
}

/// The quantities PATCHed, in order.
fn patched(fake: &FakeHeroku) -> Vec<u64> {
    fake.requests_with("PATCH")
        .iter()
        .filter(|r| r.status == 200)
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok()?["quantity"].as_u64())
        .collect()
}

/// The process id in the lease's holder (`host:pid:suffix`).
async fn leader_pid(c: &mut redis::aio::MultiplexedConnection) -> Option<u32> {
    let holder: Option<String> = redis::cmd("GET").arg("dyno-scaler:lease:worker").query_async(c).await.unwrap();
    holder?.split(':').nth(1)?.parse().ok()
}

#[tokio::test]
async fn two_and_three_instances_for_60s_patch_exactly_what_one_instance_patches() {
    let (one_fake, two_fake, three_fake) = (fake().await, fake().await, fake().await);
    let (_r1, url1, mut c1) = own_redis().await;
    let (_r2, url2, mut c2) = own_redis().await;
    let (_r3, url3, mut c3) = own_redis().await;
    let single = Daemon::start(&env(&one_fake, &url1));
    let duo: Vec<Daemon> = (0..2).map(|_| Daemon::start(&env(&two_fake, &url2))).collect();
    let trio: Vec<Daemon> = (0..3).map(|_| Daemon::start(&env(&three_fake, &url3))).collect();
    // A queue that changes every 5 s for 60 s, written to the three stores at the same moments.
    for n in [3, 30, 60, 30, 0, 80, 10, 0, 55, 26, 0, 0] {
        set_queue(&mut c1, n).await;
        set_queue(&mut c2, n).await;
        set_queue(&mut c3, n).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let one = patched(&one_fake);
    assert_eq!(one, vec![1, 2, 3, 2, 0, 4, 1, 0, 3, 2, 0], "the single instance followed the queue");
    assert_eq!(patched(&two_fake), one, "two instances PATCH what one does");
    assert_eq!(patched(&three_fake), one, "three instances PATCH what one does");
    // `status` names the leader: one of the three.
    let out = run(&["status", "--json"], &env(&three_fake, &url3)).await;
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let leader = v["processes"][0]["leader"].as_str().unwrap_or_else(|| panic!("no leader named: {v}")).to_owned();
    let pids: Vec<String> = trio.iter().map(|d| d.child.id().unwrap().to_string()).collect();
    assert!(pids.iter().any(|p| leader.split(':').nth(1) == Some(p)), "leader {leader} is not one of {pids:?}");
    assert_eq!(v["processes"][0]["paused"], Value::Null);
    for d in trio.into_iter().chain(duo) {
        let log = d.stop().await;
        assert!(!log.contains("ERROR"), "{log}");
    }
    single.stop().await;
}

#[tokio::test]
async fn kill_9_of_the_leader_a_follower_acts_within_the_ttl_plus_one_interval() {
    let fake = fake().await;
    let (_r, url, mut c) = own_redis().await;
    let mut daemons: Vec<Daemon> = (0..3).map(|_| Daemon::start(&env(&fake, &url))).collect();
    set_queue(&mut c, 3).await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(1)).await);
    let pid = leader_pid(&mut c).await.expect("a leader holds the lease");
    let i = daemons.iter().position(|d| d.child.id() == Some(pid)).expect("the leader is one of ours");
    let leader = daemons.remove(i);
    signal(&leader.child, "-KILL");
    let killed = Instant::now();
    set_queue(&mut c, 30).await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(2)).await);
    let took = killed.elapsed();
    // TTL 2 s + interval 0.5 s, with 0.5 s for the processes and the fake.
    assert!(took < Duration::from_millis(3_000), "a follower acted {took:?} after the kill");
    assert_ne!(leader_pid(&mut c).await, Some(pid));
    assert_eq!(patched(&fake), vec![1, 2], "one PATCH per change, before and after");
    for d in daemons {
        d.stop().await;
    }
}

/// A log line's time, for the first line holding `text`.
fn logged_at(log: &str, text: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains(text))?;
    Some(serde_json::from_str::<Value>(line).ok()?["timestamp"].as_str()?.to_owned())
}

#[tokio::test]
async fn a_partitioned_leader_stops_acting_before_another_takes_over() {
    let fake = fake().await;
    let (redis, _url, mut c) = own_redis().await;
    let (pa, pb) = (Proxy::start(redis.port).await, Proxy::start(redis.port).await);
    let json = ["--log-format", "json", "run"];
    let a = Daemon::start_with(&json, &env(&fake, &pa.redis_url()));
    a.logged("took the lease", 1).await;
    let b = Daemon::start_with(&json, &env(&fake, &pb.redis_url()));
    set_queue(&mut c, 3).await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(1)).await);
    b.logged("\"decision\"", 1).await;
    assert!(!b.log.lock().unwrap().contains("took the lease"), "b follows while a leads");
    pa.freeze();
    set_queue(&mut c, 30).await;
    assert!(eventually(Duration::from_secs(15), || fake.quantity(APP, "worker") == Some(2)).await);
    b.logged("took the lease", 1).await;
    a.logged("cannot reach the lease's store", 1).await;
    let (la, lb) = (a.log.lock().unwrap().clone(), b.log.lock().unwrap().clone());
    let stopped = logged_at(&la, "cannot reach the lease's store").expect("a said it stopped");
    let took = logged_at(&lb, "took the lease").expect("b said it took over");
    assert!(stopped < took, "a stopped at {stopped}, b took over at {took}:\n{la}\n{lb}");
    assert_eq!(patched(&fake), vec![1, 2]);
    drop(a);
    b.stop().await;
}

#[tokio::test]
async fn pause_and_resume_reach_every_instance() {
    let fake = fake().await;
    let (_r, url, mut c) = own_redis().await;
    let env = env(&fake, &url);
    let daemons: Vec<Daemon> = (0..2).map(|_| Daemon::start(&env)).collect();
    let out = run(&["pause", "worker"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("worker: paused until resumed"), "{}", out.stdout);
    let out = run(&["status", "--json"], &env).await;
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["processes"][0]["paused"]["until"], Value::Null, "{v}");
    assert!(v["processes"][0]["paused"]["by"].as_str().unwrap().contains("dyno-scaler pause"), "{v}");
    // Work arrives: nobody scales while paused.
    set_queue(&mut c, 30).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(patched(&fake).is_empty(), "a paused process type is never PATCHed");
    // `status --json` says what holds, typed, and what the daemon would do without it.
    let out = run(&["status", "--json"], &env).await;
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let row = &v["processes"][0];
    assert_eq!((&row["gate"]["kind"], &row["desired"], &row["would"]), (&json!("paused"), &json!(0), &json!(2)), "{v}");
    assert!(row["gate"]["pause"]["by"].as_str().unwrap().contains("dyno-scaler pause"), "{v}");
    let out = run(&["resume"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(eventually(Duration::from_secs(5), || fake.quantity(APP, "worker") == Some(2)).await);
    // A pause for a while ends by itself.
    let out = run(&["pause", "--for", "3s"], &env).await;
    assert!(out.stdout.contains("worker: paused until 20"), "{}", out.all());
    let paused = Instant::now();
    set_queue(&mut c, 60).await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(3)).await);
    assert!(paused.elapsed() >= Duration::from_secs(2), "scaled during the pause: {:?}", paused.elapsed());
    assert_eq!(patched(&fake), vec![2, 3]);
    // Bad input changes nothing.
    let out = run(&["pause", "nosuch"], &env).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("unknown process type \"nosuch\""), "{}", out.stderr);
    let out = run(&["pause", "--for", "soon"], &env).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--for"), "{}", out.stderr);
    for d in daemons {
        d.stop().await;
    }
}

#[tokio::test]
async fn on_postgres_two_delayed_job_instances_share_an_advisory_lock_and_a_pause() {
    use super::events::{dj_enqueue, dj_table};
    let fake = fake().await;
    let (pool, table) = dj_table(&db_url()).await;
    let schema = table.split('.').next().unwrap();
    let learned = format!("{schema}.dyno_scaler_learned");
    let ddl = dyno_scaler_postgres::learned::CREATE.replace("dyno_scaler_learned", &learned);
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl)).execute(&pool).await.unwrap();
    let env = with(
        env_heroku(&fake, &[("DYNO_SCALER_SOURCE", "delayed_job"), ("DATABASE_URL", &db_url())]),
        &[
            ("DYNO_SCALER_TABLE", &table),
            ("DYNO_SCALER_LEARNED_TABLE", &learned),
            ("DYNO_SCALER_MAX_WORKERS", "10"),
            ("DYNO_SCALER_DOWN_DELAY", "0s"),
            ("DYNO_SCALER_POLL_INTERVAL", POLL),
            ("DYNO_SCALER_LEASE_TTL", TTL),
        ],
    );
    let daemons: Vec<Daemon> = (0..2).map(|_| Daemon::start(&env)).collect();
    dj_enqueue(&pool, &table, 3).await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(1)).await);
    dj_enqueue(&pool, &table, 27).await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(2)).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(patched(&fake), vec![1, 2], "one of the two acted, once per change");
    let out = run(&["status", "--json"], &env).await;
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let leader = v["processes"][0]["leader"].as_str().unwrap_or_else(|| panic!("no leader: {v}")).to_owned();
    let pids: Vec<String> = daemons.iter().map(|d| d.child.id().unwrap().to_string()).collect();
    assert!(pids.iter().any(|p| leader.split(':').nth(1) == Some(p)), "leader {leader} is not one of {pids:?}");
    // The pause lives in the learned table; nobody scales while it holds.
    let out = run(&["pause"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    dj_enqueue(&pool, &table, 30).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(patched(&fake), vec![1, 2]);
    assert_eq!(run(&["resume"], &env).await.code, 0);
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(3)).await);
    assert_eq!(patched(&fake), vec![1, 2, 3]);
    for d in daemons {
        d.stop().await;
    }
}

#[tokio::test]
async fn a_store_apart_from_the_source_keeps_the_lease_the_pause_and_what_was_learned() {
    use super::events::{dj_enqueue, dj_table};
    let fake = fake().await;
    let (pool, table) = dj_table(&db_url()).await;
    let (_redis, store_url, mut c) = own_redis().await;
    // DelayedJob with no learned table: its own store could not keep a pause. The Redis store does.
    let db = db_url();
    let source = [("DYNO_SCALER_SOURCE", "delayed_job"), ("DATABASE_URL", db.as_str())];
    // The adaptive policy, which keeps what it learned.
    let own = with(env_heroku(&fake, &source), &[("DYNO_SCALER_TABLE", &table), ("DYNO_SCALER_POLICY", "adaptive")]);
    let out = run(&["pause"], &own).await;
    assert_eq!(out.code, 1, "without a learned table or a store, no pause: {}", out.all());
    let env = with(
        own,
        &[
            ("DYNO_SCALER_STORE_URL", &store_url),
            ("DYNO_SCALER_MAX_WORKERS", "10"),
            ("DYNO_SCALER_DOWN_DELAY", "0s"),
            ("DYNO_SCALER_POLL_INTERVAL", POLL),
            ("DYNO_SCALER_LEASE_TTL", TTL),
        ],
    );
    let out = run(&["check"], &env).await;
    assert!(out.stdout.contains("store: redis at redis://127.0.0.1:"), "{}", out.all());
    assert!(out.stdout.contains("keeps leases, pauses and learned summaries"), "{}", out.all());
    let daemons: Vec<Daemon> = (0..2).map(|_| Daemon::start(&env)).collect();
    // The adaptive policy: a DelayedJob worker runs one job at a time.
    dj_enqueue(&pool, &table, 1).await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(1)).await);
    let holder: Option<String> = c.get("dyno-scaler:lease:worker").await.unwrap();
    let pids: Vec<String> = daemons.iter().map(|d| d.child.id().unwrap().to_string()).collect();
    let holder = holder.expect("the lease is a key in the store's Redis");
    assert!(pids.iter().any(|p| holder.split(':').nth(1) == Some(p)), "holder {holder} is not one of {pids:?}");
    // Written right after the cycle's PATCH.
    let mut learned: Option<String> = None;
    for _ in 0..50 {
        learned = c.get("dyno-scaler:learned:worker").await.unwrap();
        if learned.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(learned.is_some_and(|l| l.starts_with('{')), "the leader keeps what it learned in the store");
    let out = run(&["pause"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let pause: Option<String> = c.get("dyno-scaler:pause:worker").await.unwrap();
    assert!(pause.is_some(), "the pause is a key in the store's Redis");
    dj_enqueue(&pool, &table, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(patched(&fake), vec![1], "nobody scales while the store's pause holds");
    assert_eq!(run(&["resume"], &env).await.code, 0);
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(3)).await);
    for d in daemons {
        d.stop().await;
    }
}
