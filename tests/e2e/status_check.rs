use serde_json::Value;

use sqlx::AssertSqlSafe;

use super::common::*;

#[tokio::test]
async fn status_json_prints_the_documented_document() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 27).await;
    sidekiq_push(&mut c, "mailers", 3).await;
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_MAX_WORKERS", "4")]);
    let out = run(&["status", "--json"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let p = &v["processes"][0];
    for key in [
        "process_type",
        "source",
        "ready",
        "running",
        "scheduled",
        "latency_seconds",
        "skipped",
        "current",
        "desired",
        "reason",
        "queues",
    ] {
        assert!(p.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!((p["process_type"].as_str(), p["source"].as_str()), (Some("worker"), Some("sidekiq")));
    assert_eq!((p["ready"].as_u64(), p["current"].as_u64(), p["desired"].as_u64()), (Some(30), Some(0), Some(2)));
    assert!(p["latency_seconds"].as_f64().unwrap() < 60.0);
    // Per queue: each queue's own figures, which add up to the totals.
    let queues: Vec<(&str, u64)> = p["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["name"].as_str().unwrap(), q["ready"].as_u64().unwrap()))
        .collect();
    assert_eq!(queues, vec![("default", 27), ("mailers", 3)], "{v}");
    for q in p["queues"].as_array().unwrap() {
        for key in ["running", "scheduled"] {
            assert!(q[key].is_u64(), "{key}: {v}");
        }
        assert!(q["latency_seconds"].as_f64().unwrap() < 60.0, "{v}");
    }
    assert!(fake.requests_with("PATCH").is_empty(), "status never acts");
    // Entries that cannot be read are counted: zero first, then two.
    assert_eq!(p["skipped"].as_u64(), Some(0));
    let _: () = redis::cmd("RPUSH").arg("queue:default").arg("{not json").query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("SADD").arg("queues").arg("broken").query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("SET").arg("queue:broken").arg("x").query_async(&mut c).await.unwrap();
    let out = run(&["status", "--json"], &env).await;
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["processes"][0]["skipped"].as_u64(), Some(2), "{v}");
    assert!(v["processes"][0]["reason"].as_str().unwrap().contains("31 ready"), "{v}");
    // The readable table.
    let out = run(&["status"], &env).await;
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("process_type") && out.stdout.contains("worker") && out.stdout.contains("sidekiq"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn check_reaches_everything_and_reports_problems() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 2).await;
    let out = run(&["check"], &env_sidekiq(&fake, &url)).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("worker=0") && out.stdout.contains("default (ready 2"), "{}", out.stdout);
    // An unreachable Redis with a password: a problem, exit 1, the password never shown.
    let env = with(env_sidekiq(&fake, &url), &[("REDIS_URL", "redis://:sup3rsecret@127.0.0.1:1/0")]);
    let out = run(&["check"], &env).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("PROBLEM"), "{}", out.stdout);
    assert!(!out.all().contains("sup3rsecret"), "{}", out.all());
}

#[tokio::test]
async fn the_example_config_passes_check() {
    let fake = fake().await;
    let (_redis, url, _c) = own_redis().await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dyno-scaler.example.toml");
    let env = env_heroku(&fake, &[("REDIS_URL", &url), ("DATABASE_URL", &db_url())]);
    // The example's DelayedJob process reads `delayed_jobs` in the default schema: create it as the generator does.
    let pool = sqlx::PgPool::connect(&db_url()).await.expect("Postgres is required (run scripts/test)");
    sqlx::raw_sql(AssertSqlSafe(delayed_jobs_ddl("public.delayed_jobs", false))).execute(&pool).await.unwrap();
    // And Solid Queue's and GoodJob's tables, as their generators make them (once: the database outlives runs).
    for (table, ddl) in
        [("public.solid_queue_jobs", solid_queue_ddl("public")), ("public.good_jobs", good_jobs_ddl("public"))]
    {
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(table).fetch_one(&pool).await.unwrap();
        if !exists {
            sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&pool).await.unwrap();
        }
    }
    for t in ["sq_worker", "gj_worker"] {
        fake.add_formation(APP, t, "bundle exec work", "Standard-1X", 0);
    }
    let out = run(&["--config", path, "check"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.starts_with("configuration: ok (5 process type(s)"), "{}", out.all());
    assert!(
        out.stdout.contains("gj_worker (good_job") && out.stdout.contains("events: listen (LISTEN good_job"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("sq_worker (solid_queue"), "{}", out.stdout);
    assert!(out.stdout.contains("platform: ok") && out.stdout.contains("check passed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("dj_worker (delayed_job") && out.stdout.contains("no worker registry"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn simulate_runs_without_any_server() {
    let out = run(&["simulate", "--trace", "steady", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let results = v["traces"][0]["results"].as_array().unwrap();
    let names: Vec<&str> = results.iter().map(|r| r["strategy"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "always on",
            "HireFire-style",
            "seed gem",
            "KEDA-style",
            "dyno-scaler classic",
            "dyno-scaler defaults",
            "oracle"
        ]
    );
    // Every row's cost against the oracle's, which is 1 for the oracle itself.
    let ratio = |i: usize| results[i]["cost_vs_oracle"].as_f64().unwrap();
    let hours = |i: usize| results[i]["dyno_hours"].as_f64().unwrap();
    assert_eq!(ratio(6), 1.0);
    assert!((ratio(0) - hours(0) / hours(6)).abs() < 1e-9 && ratio(0) > 1.0);
    let svg = std::env::temp_dir().join(format!("{}.svg", unique("plot")));
    let out = run(&["simulate", "--trace", "nightly-batch", "--plot", svg.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("dyno-scaler defaults"), "{}", &text[..200.min(text.len())]);
    assert_eq!(run(&["simulate", "--trace", "nope"], &[]).await.code, 2);
}

#[tokio::test]
async fn status_reports_an_unreadable_queue_and_exits_1() {
    let fake = fake().await;
    let env = with(env_sidekiq(&fake, "redis://:pw4status@127.0.0.1:1/0"), &[]);
    let out = run(&["status", "--json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.all());
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let p = &v["processes"][0];
    assert!(p["ready"].is_null() && p["desired"].is_null(), "{v}");
    assert!(p["error"].as_str().unwrap().contains("sidekiq"), "{v}");
    assert!(!out.all().contains("pw4status"));
    assert!(fake.requests_with("PATCH").is_empty());
}

#[tokio::test]
async fn one_reading_of_live_sidekiq_processes_says_only_the_daemon_scales_them_down() {
    let fake = fake().await;
    fake.set_quantity(APP, "worker", 2);
    let (_redis, url, mut c) = own_redis().await;
    // Two idle Sidekiq processes, one a dyno, as Sidekiq's heartbeat writes them.
    for dyno in ["worker.1", "worker.2"] {
        let id = format!("{dyno}:4:0123456789ab");
        let info = format!(r#"{{"hostname":"{dyno}","concurrency":5,"queues":["default"],"identity":"{id}"}}"#);
        let beat = format!("{:.3}", now());
        let _: () = redis::pipe()
            .sadd("processes", &id)
            .ignore()
            .hset_multiple(&id, &[("info", info.as_str()), ("busy", "0"), ("beat", beat.as_str()), ("quiet", "false")])
            .ignore()
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_MAX_WORKERS", "2"), ("DYNO_SCALER_DOWN_DELAY", "0s")]);
    let out = run(&["status", "--json"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let reason = v["processes"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("not yet seen idle on"), "{reason}");
    assert!(reason.contains("only the daemon (`dyno-scaler run`) scales these dynos down"), "{reason}");
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("only the daemon"), "{}", out.all());
    assert_eq!(fake.quantity(APP, "worker"), Some(2));
}

/// A typo in the queue filter scales nothing: `check`, `status` and the daemon's log name the watched queue the
/// store does not know, and the queues it does.
#[tokio::test]
async fn a_watched_queue_the_store_does_not_know_is_named_in_check_status_and_the_log() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 2).await;
    sidekiq_push(&mut c, "mailers", 1).await;
    let typo = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_QUEUES", "defualt,mailers")]);
    let warning = r#"watched queue "defualt" is unknown to the store (a typo?); it knows "default", "mailers""#;
    let out = run(&["check"], &typo).await;
    assert_eq!(out.code, 0, "a warning, not a failure: {}", out.all());
    assert!(out.stdout.contains(&format!("warning: {warning}")), "{}", out.stdout);
    let out = run(&["status", "--json"], &typo).await;
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["processes"][0]["unknown_queues"], serde_json::json!(["defualt"]), "{v}");
    assert_eq!(v["processes"][0]["warnings"][0].as_str(), Some(warning), "{v}");
    let out = run(&["status"], &typo).await;
    assert!(out.stdout.contains(&format!("warning for worker: {warning}")), "{}", out.stdout);
    let out = run(&["run", "--once", "--dry-run"], &typo).await;
    assert!(out.stderr.contains("WARN") && out.stderr.contains(warning), "{}", out.stderr);

    // Spelled right, nothing is said.
    let right = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_QUEUES", "default,mailers")]);
    let out = run(&["check"], &right).await;
    assert!(!out.stdout.contains("unknown to the store"), "{}", out.stdout);
    let out = run(&["status", "--json"], &right).await;
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["processes"][0]["unknown_queues"], Value::Null, "{v}");
    let out = run(&["run", "--once", "--dry-run"], &right).await;
    assert!(!out.stderr.contains("unknown to the store"), "{}", out.stderr);
}

/// The Postgres sources list the distinct queue names of their table.
#[tokio::test]
async fn a_delayed_job_queue_typo_is_named_from_the_tables_queues() {
    use crate::events::{dj_enqueue, dj_table, env_dj};
    let fake = fake().await;
    let (pool, table) = dj_table(&db_url()).await;
    dj_enqueue(&pool, &table, 1).await;
    let env = with(env_dj(&fake, &db_url(), &table), &[("DYNO_SCALER_QUEUES", "defualt")]);
    let out = run(&["check"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let warning = r#"warning: watched queue "defualt" is unknown to the store (a typo?); it knows "default""#;
    assert!(out.stdout.contains(warning), "{}", out.stdout);
}
