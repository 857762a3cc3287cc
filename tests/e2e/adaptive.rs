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
