//! The adaptive policy (the default) through the program: it explains its drain rule, keeps what it learned in
//! the queue's own Redis for the next start, and leaves it there only when remembering is on.

use redis::AsyncCommands;

use crate::common::*;

#[tokio::test]
async fn the_default_policy_drains_a_backlog_and_keeps_what_it_learned_for_the_next_start() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 30).await;
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_POLICY", "adaptive"), ("DYNO_SCALER_MAX_WORKERS", "4")]);
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    // No duration learned yet: a thread per job, 5 threads a worker (6), clamped to 4.
    assert_eq!(fake.quantity(APP, "worker"), Some(4), "{}", out.stderr);
    assert!(out.stderr.contains("drain 6 = 30 ready + 0 running (duration not learned yet)"), "{}", out.stderr);
    let kept: Option<String> = c.get("dyno-scaler:learned:worker").await.unwrap();
    let kept = kept.expect("the learned summary is kept beside the queues");
    let v: serde_json::Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(v["in_system"], 30, "{kept}");
    assert!(kept.len() < 8_192, "a few KB: {}", kept.len());
    let ttl: i64 = c.ttl("dyno-scaler:learned:worker").await.unwrap();
    assert!(ttl > 6 * 86_400, "kept for a week: {ttl}");

    // The next start reads it back (its log says so), and with remembering off nothing is kept.
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("recalled what the policy learned"), "{}", out.stderr);
    let _: () = c.del("dyno-scaler:learned:worker").await.unwrap();
    let off = with(env.clone(), &[("DYNO_SCALER_REMEMBER", "false")]);
    let out = run(&["run", "--once"], &off).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let kept: Option<String> = c.get("dyno-scaler:learned:worker").await.unwrap();
    assert_eq!(kept, None);
}

/// A DelayedJob worker runs one job at a time: the adaptive policy divides by 1 (DelayedJob's own default, as its
/// source states it), not by 5, and `check` names the figure and where it came from; a setting overrides it.
#[tokio::test]
async fn delayed_job_workers_run_one_job_each_unless_the_setting_says_otherwise() {
    use crate::events::{dj_enqueue, dj_table, env_dj};
    let fake = fake().await;
    let (pool, table) = dj_table(&db_url()).await;
    dj_enqueue(&pool, &table, 3).await;
    let env = with(
        env_dj(&fake, &db_url(), &table),
        &[("DYNO_SCALER_POLICY", "adaptive"), ("DYNO_SCALER_MAX_WORKERS", "10"), ("DYNO_SCALER_REMEMBER", "false")],
    );
    let out = run(&["check"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("threads: 1 per worker: delayed_job's own default"), "{}", out.stdout);
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.quantity(APP, "worker"), Some(3), "a dyno per job: {}", out.stderr);
    assert!(out.stderr.contains("3.0 threads ÷ 1 per worker"), "{}", out.stderr);

    fake.set_quantity(APP, "worker", 0);
    let set = with(env, &[("DYNO_SCALER_WORKER_THREADS", "3")]);
    let out = run(&["check"], &set).await;
    assert!(out.stdout.contains("threads: 3 per worker, from the worker_threads setting"), "{}", out.stdout);
    let out = run(&["run", "--once"], &set).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.quantity(APP, "worker"), Some(1), "three jobs on one three-process dyno: {}", out.stderr);
}
