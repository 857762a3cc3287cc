//! The user's own history as a trace: `export-trace` from GoodJob's and Solid Queue's finished rows (exact), and
//! `record` of real Sidekiq 6.4 workers (the job count and the total run time within 5 %), each then read by
//! `simulate --trace-file`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyno_scaler::core::timefmt::format_rfc3339;
use serde_json::Value;
use sqlx::AssertSqlSafe;

use super::common::*;
use super::sidekiq_real::{start_sidekiq_with, wait_for_processes};

/// `secs` since the epoch as the trace writes it: RFC 3339 UTC with milliseconds.
fn rfc(ms: u64) -> String {
    let whole = format_rfc3339(UNIX_EPOCH + Duration::from_secs(ms / 1000));
    format!("{}.{:03}Z", whole.trim_end_matches('Z'), ms % 1000)
}

/// A whole second an hour ago, in milliseconds since the epoch.
fn an_hour_ago() -> u64 {
    (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 3600) * 1000
}

/// A `timestamp` literal (UTC wall clock, as Rails writes) for `ms` since the epoch.
fn ts(ms: u64) -> String {
    format!("(to_timestamp({}) AT TIME ZONE 'UTC')", ms as f64 / 1000.0)
}

/// Runs `export-trace --since 7d` with `env`, checks its lines against `expected` exactly, and that `simulate`
/// reads the file back with every job.
async fn export_and_replay(env: &[(&str, String)], expected: &[(u64, &str, u64)]) {
    let file = std::env::temp_dir().join(format!("{}.csv", unique("export")));
    let out = run(&["export-trace", "--since", "7d", "--out", file.to_str().unwrap()], env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let text = std::fs::read_to_string(&file).unwrap();
    let want: Vec<String> = std::iter::once("arrived_at,queue,duration_ms".to_owned())
        .chain(expected.iter().map(|(at, q, ms)| format!("{},{q},{ms}", rfc(*at))))
        .collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), want, "{}", out.all());
    assert!(out.stderr.contains(&format!("exported {} finished jobs", expected.len())), "{}", out.all());
    let sim = run(&["simulate", "--trace-file", file.to_str().unwrap(), "--json"], &[]).await;
    assert_eq!(sim.code, 0, "{}", sim.all());
    let v: Value = serde_json::from_str(sim.stdout.trim()).unwrap();
    assert_eq!(v["traces"][0]["jobs"].as_u64(), Some(expected.len() as u64));
    let work: u64 = expected.iter().map(|e| e.2).sum();
    assert!((v["traces"][0]["work_secs"].as_f64().unwrap() - work as f64 / 1000.0).abs() < 1e-6);
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn export_trace_writes_good_jobs_finished_rows_exactly() {
    let fake = fake().await;
    let (pool, table) = good_job_table("e2e_export_gj").await;
    let t0 = an_hour_ago();
    // (created, scheduled, performed, finished, queue), milliseconds since the epoch; None: NULL.
    type Row = (u64, Option<u64>, Option<u64>, Option<u64>, &'static str);
    let rows: [Row; 7] = [
        (t0, Some(t0), Some(t0 + 250), Some(t0 + 1_750), "default"),
        // Scheduled for later: it arrives when due.
        (t0 + 1_000, Some(t0 + 60_000), Some(t0 + 60_010), Some(t0 + 62_010), "mailers"),
        // Written before v4.8.2: no scheduled_at.
        (t0 + 2_000, None, Some(t0 + 2_500), Some(t0 + 3_000), "default"),
        (t0 + 3_000, Some(t0 + 3_000), Some(t0 + 3_000), Some(t0 + 603_000), "default"),
        // Not finished, never performed, or too old: not in the trace.
        (t0 + 4_000, Some(t0 + 4_000), Some(t0 + 4_100), None, "default"),
        (t0 + 5_000, Some(t0 + 5_000), None, None, "default"),
        (
            t0 - 9 * 86_400_000,
            Some(t0 - 9 * 86_400_000),
            Some(t0 - 9 * 86_400_000),
            Some(t0 - 9 * 86_400_000 + 5),
            "default",
        ),
    ];
    for (created, scheduled, performed, finished, queue) in rows {
        let opt = |v: Option<u64>| v.map_or("NULL".to_owned(), ts);
        let sql = format!(
            "INSERT INTO {table} (queue_name, priority, serialized_params, scheduled_at, performed_at, finished_at, \
               created_at, updated_at, job_class) VALUES ('{queue}', 0, '{{\"arguments\":[\"secret\"]}}', {}, {}, {}, {}, {}, 'X')",
            opt(scheduled),
            opt(performed),
            opt(finished),
            ts(created),
            ts(created)
        );
        sqlx::query(AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    }
    let env = env_good_job(&fake, &table);
    let expected = [
        (t0, "default", 1_500),
        (t0 + 2_000, "default", 500),
        (t0 + 3_000, "default", 600_000),
        (t0 + 60_000, "mailers", 2_000),
    ];
    export_and_replay(&env, &expected).await;
    // A queue filter applies.
    let only = with(env.clone(), &[("DYNO_SCALER_QUEUES", "mailers")]);
    export_and_replay(&only, &expected[3..]).await;
    // No payload reaches the file or the output.
    let out = run(&["export-trace", "--since", "7d"], &env).await;
    assert!(out.stdout.lines().count() == 5 && !out.all().contains("secret"), "{}", out.all());
    // A bad window is named.
    let out = run(&["export-trace", "--since", "soon"], &env).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("--since"), "{}", out.all());
}

#[tokio::test]
async fn export_trace_writes_solid_queues_finished_rows_with_their_wait() {
    let fake = fake().await;
    let pool = sqlx::PgPool::connect(&db_url()).await.unwrap();
    let s = unique("e2e_export_sq");
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {s}; {}", dyno_scaler_test_support::solid_queue_ddl(&s))))
        .execute(&pool)
        .await
        .unwrap();
    let t0 = an_hour_ago();
    // (created, scheduled, finished, queue)
    let rows: [(u64, Option<u64>, Option<u64>, &str); 4] = [
        (t0, Some(t0), Some(t0 + 1_234), "default"),
        (t0 + 10, Some(t0 + 30_000), Some(t0 + 31_000), "reports"),
        (t0 + 20, None, Some(t0 + 520), "default"),
        (t0 + 30, Some(t0 + 30), None, "default"),
    ];
    for (created, scheduled, finished, queue) in rows {
        let opt = |v: Option<u64>| v.map_or("NULL".to_owned(), ts);
        let sql = format!(
            "INSERT INTO {s}.solid_queue_jobs (queue_name, class_name, arguments, priority, scheduled_at, finished_at, \
               created_at, updated_at) VALUES ('{queue}', 'X', '[\"secret\"]', 0, {}, {}, {}, {})",
            opt(scheduled),
            opt(finished),
            ts(created),
            ts(created)
        );
        sqlx::query(AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    }
    let url = db_url();
    let env = env_heroku(
        &fake,
        &[("DYNO_SCALER_SOURCE", "solid_queue"), ("DATABASE_URL", url.as_str()), ("DYNO_SCALER_SCHEMA", s.as_str())],
    );
    let expected = [(t0, "default", 1_234), (t0 + 20, "default", 500), (t0 + 30_000, "reports", 1_000)];
    export_and_replay(&env, &expected).await;
}

#[tokio::test]
async fn export_trace_says_which_sources_keep_no_history() {
    let fake = fake().await;
    let out = run(&["export-trace", "--since", "1d"], &env_sidekiq(&fake, "redis://127.0.0.1:1/0")).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("the sidekiq source keeps no finished jobs") && out.stderr.contains("record"));
    // A process type that is not configured, or a bad --for, is named (exit 2) before anything is read.
    let env = env_sidekiq(&fake, "redis://127.0.0.1:1/0");
    let out = run(&["record", "--out", "/tmp/never.csv", "--process-type", "nope"], &env).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("unknown process type \"nope\"; configured: worker"), "{}", out.all());
    let out = run(&["record", "--out", "/tmp/never.csv", "--for", "soon"], &env).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("--for"), "{}", out.all());
    // A file that cannot be written fails at once (exit 1), not after the recording.
    let out = run(&["record", "--out", "/nonexistent-dir/h.csv", "--for", "1s"], &env).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("--out /nonexistent-dir/h.csv"), "{}", out.all());
}

#[tokio::test]
async fn record_of_real_sidekiq_workers_replays_the_same_jobs_and_run_time() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    let workers: Vec<KillOnDrop> =
        (1..=4).map(|n| start_sidekiq_with(&format!("worker.{n}"), &url, "default", 5)).collect();
    wait_for_processes(&mut c, 4).await;
    let file = std::env::temp_dir().join(format!("{}.csv", unique("record")));
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_POLL_INTERVAL", "250ms")]);
    let recorder = command(&["record", "--out", file.to_str().unwrap(), "--for", "95s"], &env).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // About a minute of work for 20 threads: 800 jobs of 1.3 s, pushed as Sidekiq 6.4's client writes them.
    let key = "truth:run";
    let mut p = redis::pipe();
    for i in 0..800 {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        let job = format!(
            r#"{{"retry":true,"queue":"default","class":"NapJob","args":[1.3,"{key}"],"jid":"{i:024x}","created_at":{t:.7},"enqueued_at":{t:.7}}}"#
        );
        p.sadd("queues", "default").ignore().lpush("queue:default", job).ignore();
    }
    let _: () = p.query_async(&mut c).await.unwrap();
    let out = recorder.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    drop(workers);
    let count: u64 = redis::cmd("GET").arg(format!("{key}:count")).query_async(&mut c).await.unwrap();
    let ran: f64 = redis::cmd("GET").arg(key).query_async(&mut c).await.unwrap();
    assert_eq!(count, 800, "every job ran within the recording");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("NapJob") && !text.contains(key), "no payload in the trace");
    let sim = run(&["simulate", "--trace-file", file.to_str().unwrap(), "--json"], &[]).await;
    assert_eq!(sim.code, 0, "{}", sim.all());
    let v: Value = serde_json::from_str(sim.stdout.trim()).unwrap();
    let jobs = v["traces"][0]["jobs"].as_f64().unwrap();
    let work = v["traces"][0]["work_secs"].as_f64().unwrap();
    eprintln!("record: {jobs} jobs and {work:.1} s of run time replayed; {count} jobs ran {ran:.1} s ({stdout})");
    assert!((jobs / count as f64 - 1.0).abs() <= 0.05, "{jobs} jobs replayed for {count}");
    assert!((work / ran - 1.0).abs() <= 0.05, "{work:.1} s of run time replayed for {ran:.1} s");
    let _ = std::fs::remove_file(&file);
}
