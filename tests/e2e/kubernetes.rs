//! The binary on the Kubernetes platform, against the crate's fake API server (found through `KUBECONFIG`, a
//! plain-http kubeconfig as `kubectl proxy` serves), real Redis and real Sidekiq 6.4 processes named as their pods.

use std::time::{Duration, SystemTime};

use dyno_scaler_kubernetes::fake::{DELETION_COST, FakeKubernetes};
use serde_json::Value;

use super::common::*;
use super::deploy::documents;
use super::sidekiq_real::{marker, push_sleep, start_sidekiq, wait_for_processes};

/// The fake in namespace `app` and a kubeconfig file naming it.
async fn cluster(tag: &str) -> (FakeKubernetes, String) {
    let fake = FakeKubernetes::start("app").await;
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", unique(tag)));
    std::fs::write(&path, fake.kubeconfig()).unwrap();
    (fake, path.to_str().unwrap().to_owned())
}

/// One Sidekiq process type on Kubernetes, from the environment alone.
fn env_kube(kubeconfig: &str, redis_url: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let base = vec![
        ("DYNO_SCALER_PLATFORM", "kubernetes".to_owned()),
        ("KUBECONFIG", kubeconfig.to_owned()),
        ("DYNO_SCALER_SOURCE", "sidekiq".to_owned()),
        ("REDIS_URL", redis_url.to_owned()),
        ("DYNO_SCALER_POLICY", "classic".to_owned()),
    ];
    with(base, extra)
}

/// The scale writes the fake answered, as (path, status).
fn scale_writes(fake: &FakeKubernetes) -> Vec<(String, u16)> {
    fake.requests()
        .into_iter()
        .filter(|(m, p, _)| m == "PATCH" && p.contains("/scale"))
        .map(|(_, p, s)| (p, s))
        .collect()
}

#[tokio::test]
async fn queue_work_scales_a_deployment_and_a_statefulset_named_in_the_file() {
    let (fake, kubeconfig) = cluster("k8s_up").await;
    fake.add_deployment("worker", 0);
    fake.add_statefulset("urgent-workers", 1);
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 30).await;
    sidekiq_push(&mut c, "critical", 60).await;
    let file = config_file(
        &unique("k8s_up"),
        r#"
platform = "kubernetes"
[kubernetes]
namespace = "app"

[[process]]
type = "worker"
source = "sidekiq"
queues = ["default"]
max_workers = 5
policy = "classic"

[[process]]
type = "urgent"
target = "statefulset/urgent-workers"
source = "sidekiq"
queues = ["critical"]
max_workers = 5
policy = "classic"
"#,
    );
    let env =
        vec![("DYNO_SCALER_CONFIG", file.to_str().unwrap().to_owned()), ("KUBECONFIG", kubeconfig), ("REDIS_URL", url)];
    // Nothing changed before `run`: the writes below are the daemon's.
    assert_eq!((fake.replicas("worker"), fake.replicas("urgent-workers")), (Some(0), Some(1)));
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    // The seed's table: 30 ready is 2 workers, 60 is 3.
    assert_eq!(fake.replicas("worker"), Some(2), "{}", out.all());
    assert_eq!(fake.replicas("urgent-workers"), Some(3), "{}", out.all());
    assert_eq!(fake.pods("urgent-workers"), ["urgent-workers-0", "urgent-workers-1", "urgent-workers-2"]);
    let writes = scale_writes(&fake);
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(writes.iter().all(|(_, s)| *s == 200), "{writes:?}");
    assert!(
        writes.iter().any(|(p, _)| p.starts_with("/apis/apps/v1/namespaces/app/statefulsets/urgent-workers/scale"))
    );
    assert!(out.stderr.contains("worker (sidekiq on kubernetes)"), "{}", out.stderr);
    let out = run(&["status", "--json"], &env).await;
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()));
    assert_eq!(v["processes"][1]["platform"], "kubernetes", "{v}");
    assert_eq!(v["processes"][1]["target"], "statefulset/urgent-workers", "{v}");
    assert_eq!(v["processes"][1]["current"], 3, "{v}");
}

#[tokio::test]
async fn an_idle_pod_goes_first_and_a_busy_pod_keeps_running() {
    let (fake, kubeconfig) = cluster("k8s_busy").await;
    fake.add_deployment("worker", 3);
    let pods = fake.pods("worker");
    let (_redis, url, mut c) = own_redis().await;
    // Each Sidekiq names its pod as its host, as in a pod (Sidekiq 6.4 takes the host from DYNO, else the host
    // name, which Kubernetes sets to the pod's name). The newest pod alone serves `slow`, and is kept busy there.
    let _p0 = start_sidekiq(&pods[0], &url, "default");
    let _p1 = start_sidekiq(&pods[1], &url, "default");
    let _p2 = start_sidekiq(&pods[2], &url, "slow");
    wait_for_processes(&mut c, 3).await;
    let done = marker("k8s_slow");
    push_sleep(&mut c, "slow", 60, done.to_str().unwrap()).await;
    let started = done.with_extension("started");
    assert!(eventually(Duration::from_secs(20), || started.exists()).await, "the slow job started");
    let env = env_kube(
        &kubeconfig,
        &url,
        &[
            ("DYNO_SCALER_MIN_WORKERS", "1"),
            ("DYNO_SCALER_MAX_WORKERS", "3"),
            ("DYNO_SCALER_QUEUES", "default"),
            ("DYNO_SCALER_DOWN_DELAY", "0s"),
            ("DYNO_SCALER_POLL_INTERVAL", "500ms"),
        ],
    );
    let child = command(&["run"], &env).spawn().unwrap();
    // 3 → 1 at once, the two idle pods chosen: on Heroku the busy dyno (the newest, worker.3) would go first and the
    // shrink would wait for its job; here it is not a victim, so the job keeps running.
    assert!(
        eventually(Duration::from_secs(45), || fake.replicas("worker") == Some(1)).await,
        "the Deployment shrank to 1: {:?}",
        fake.requests()
    );
    let shrunk = SystemTime::now();
    assert_eq!(fake.pods("worker"), [pods[2].clone()], "the busy pod is the one left");
    assert!(!done.exists(), "the busy pod's job was still running at the shrink ({shrunk:?})");
    // The victims were marked before the decrement.
    let requests = fake.requests();
    let decrement = requests.iter().position(|(m, p, _)| m == "PATCH" && p.contains("/scale")).expect("a scale write");
    for victim in &pods[..2] {
        let marked = requests.iter().position(|(m, p, _)| m == "PATCH" && p.contains(&format!("/pods/{victim}")));
        assert!(marked.is_some_and(|i| i < decrement), "{victim} was marked before the decrement: {requests:?}");
    }
    // The busy pod is marked to go last, also before the decrement.
    let busy_mark = requests.iter().position(|(m, p, _)| m == "PATCH" && p.contains(&format!("/pods/{}", pods[2])));
    assert!(busy_mark.is_some_and(|i| i < decrement), "{requests:?}");
    assert_eq!(fake.annotation(&pods[2], DELETION_COST).as_deref(), Some("1000"));
    let stderr = stop_daemon(child).await;
    assert!(stderr.contains("marked the scale-down's victims"), "{stderr}");
    let _ = std::fs::remove_file(&done);
    let _ = std::fs::remove_file(&started);
}

#[tokio::test]
async fn a_refused_right_exits_1_naming_it_and_check_lists_what_is_missing() {
    let (fake, kubeconfig) = cluster("k8s_403").await;
    fake.add_deployment("worker", 0);
    fake.forbid("patch", "deployments/scale");
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 5).await;
    let env = env_kube(&kubeconfig, &url, &[]);
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains(r#"cannot patch resource "deployments/scale""#), "{}", out.stderr);
    assert!(out.stderr.contains("deploy/kubernetes/rbac.yaml"), "{}", out.stderr);
    assert_eq!(fake.replicas("worker"), Some(0));

    let out = run(&["check"], &env).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("may not patch deployments/scale: grant them"), "{}", out.stdout);

    // A target that does not exist: named, with the settings that fix it.
    let env = with(env, &[("DYNO_SCALER_TARGET", "deployment/sidekiq")]);
    let out = run(&["check"], &env).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains(r#"deployments.apps "sidekiq" not found"#), "{}", out.stdout);
    assert!(out.stdout.contains("DYNO_SCALER_TARGET"), "{}", out.stdout);
}

#[tokio::test]
async fn kubernetes_settings_are_checked_and_heroku_is_not_required() {
    let (_redis, url, _c) = own_redis().await;
    // No kubeconfig and no cluster: exit 2, saying what to set.
    let out = run(&["status"], &env_kube("/nonexistent/kubeconfig", &url, &[])).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("KUBECONFIG"), "{}", out.stderr);
    assert!(!out.stderr.contains("HEROKU_API_KEY"), "Heroku is not needed on Kubernetes: {}", out.stderr);
    for (extra, names) in [
        (("DYNO_SCALER_PLATFORM", "nomad"), r#"DYNO_SCALER_PLATFORM: unknown platform "nomad""#),
        (("DYNO_SCALER_TARGET", "job/x"), "DYNO_SCALER_TARGET: \"job/x\" is not a target"),
        (("DYNO_SCALER_TARGET", "deployment/Worker_1"), "is not a Kubernetes object name"),
        (("DYNO_SCALER_NAMESPACE", "App"), "DYNO_SCALER_NAMESPACE: \"App\" is not a namespace name"),
    ] {
        let out = run(&["status"], &env_kube("/nonexistent/kubeconfig", &url, &[extra])).await;
        assert_eq!(out.code, 2, "{extra:?}: {}", out.all());
        assert!(out.stderr.contains(names), "{extra:?}: {}", out.stderr);
    }
    // A target on Heroku is a mistake worth naming.
    let out = run(
        &["status"],
        &with(env_kube("/x", &url, &[("DYNO_SCALER_TARGET", "deployment/w")]), &[("DYNO_SCALER_PLATFORM", "heroku")]),
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("DYNO_SCALER_TARGET: applies to the Kubernetes platform only"), "{}", out.stderr);
}

/// What the fake refuses unless `rules` (a Role's) grant it: every verb on every resource the platform touches.
fn grant_only(fake: &FakeKubernetes, rules: &[Value]) {
    let granted = |verb: &str, group: &str, resource: &str| {
        rules.iter().any(|r| {
            let has = |k: &str, v: &str| r[k].as_array().unwrap().iter().any(|x| x == v || x == "*");
            has("verbs", verb) && has("apiGroups", group) && has("resources", resource)
        })
    };
    for verb in ["get", "list", "watch", "create", "update", "patch", "delete"] {
        for (group, resource) in [("apps", "deployments/scale"), ("apps", "statefulsets/scale"), ("", "pods")] {
            if !granted(verb, group, resource) {
                fake.forbid(verb, resource);
            }
        }
    }
}

#[tokio::test]
async fn the_shipped_role_is_enough_and_the_shipped_configuration_runs() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");
    let rbac = documents(&format!("{dir}/rbac.yaml"));
    let daemon = documents(&format!("{dir}/dyno-scaler.yaml"));
    let kind =
        |docs: &[Value], k: &str| docs.iter().find(|d| d["kind"] == k).unwrap_or_else(|| panic!("no {k}")).clone();
    let (account, role, binding) = (kind(&rbac, "ServiceAccount"), kind(&rbac, "Role"), kind(&rbac, "RoleBinding"));
    let (deployment, config) = (kind(&daemon, "Deployment"), kind(&daemon, "ConfigMap"));
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);
    assert_eq!(deployment["spec"]["template"]["spec"]["serviceAccountName"], account["metadata"]["name"]);
    let ns = &deployment["metadata"]["namespace"];
    for d in [&account, &role, &binding, &config] {
        assert_eq!(&d["metadata"]["namespace"], ns, "{}", d["kind"]);
    }
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args[..2], ["run", "--listen"]);
    let port: u64 = args[2].rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(container["livenessProbe"]["httpGet"]["port"].as_u64(), Some(port));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");

    // The fake grants exactly what the Role grants; the shipped configuration checks and scales with that.
    let (fake, kubeconfig) = cluster("k8s_rbac").await;
    grant_only(&fake, role["rules"].as_array().unwrap());
    let toml = config["data"]["dyno-scaler.toml"].as_str().unwrap();
    let target = toml.lines().find_map(|l| l.strip_prefix("target = \"deployment/")).unwrap().trim_end_matches('"');
    fake.add_deployment(target, 0);
    let file = config_file(&unique("k8s_rbac"), toml);
    let (_redis, url, mut c) = own_redis().await;
    let env = vec![
        ("DYNO_SCALER_CONFIG", file.to_str().unwrap().to_owned()),
        ("KUBECONFIG", kubeconfig),
        ("REDIS_URL", url),
        ("DYNO_SCALER_POLICY", "classic".to_owned()),
    ];
    let out = run(&["check"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("may get and patch its scale, list and patch its pods"), "{}", out.stdout);
    sidekiq_push(&mut c, "default", 30).await;
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.replicas(target), Some(2), "{}", out.all());
    // And the scale-down, which marks pods, within the same rights.
    let _: () = redis::cmd("DEL").arg("queue:default").query_async(&mut c).await.unwrap();
    let out = run(&["run", "--once"], &with(env, &[("DYNO_SCALER_DOWN_DELAY", "0s")])).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.replicas(target), Some(0), "{}", out.all());
    assert!(fake.requests().iter().all(|(_, _, s)| *s != 403), "{:?}", fake.requests());
}

#[tokio::test]
async fn solid_queue_names_its_pods_so_an_idle_pod_goes_first() {
    // Solid Queue's workers record `Socket.gethostname`, a pod's name: the registry places the one claimed job's
    // worker on the newest pod, so the scale-down marks the two idle pods and leaves the busy one.
    let (fake, kubeconfig) = cluster("k8s_sq").await;
    fake.add_deployment("worker", 3);
    let pods = fake.pods("worker");
    let pool = sqlx::PgPool::connect(&db_url()).await.unwrap();
    let s = unique("k8s_sq");
    let ddl = format!("CREATE SCHEMA {s}; {}", solid_queue_ddl(&s));
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl)).execute(&pool).await.unwrap();
    let now = "(now() AT TIME ZONE 'UTC')";
    // One Worker process per pod (`SolidQueue::Process.register`), heartbeating; a job claimed by the newest.
    let mut script = String::new();
    for (i, pod) in pods.iter().enumerate() {
        script += &format!(
            "INSERT INTO {s}.solid_queue_processes (kind, last_heartbeat_at, pid, hostname, metadata, created_at, name) \
             VALUES ('Worker', {now}, {i}, '{pod}', '{{\"queues\":\"*\",\"thread_pool_size\":3}}', {now}, 'worker-{i}');"
        );
    }
    script += &format!(
        "INSERT INTO {s}.solid_queue_jobs (queue_name, class_name, arguments, priority, active_job_id, scheduled_at, \
           created_at, updated_at) VALUES ('default', 'SlowJob', '{{}}', 0, gen_random_uuid()::text, {now}, {now}, {now});
         INSERT INTO {s}.solid_queue_claimed_executions (job_id, process_id, created_at) \
           SELECT j.id, p.id, {now} FROM {s}.solid_queue_jobs j, {s}.solid_queue_processes p WHERE p.name = 'worker-2';"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(script)).execute(&pool).await.unwrap();
    let env = vec![
        ("DYNO_SCALER_PLATFORM", "kubernetes".to_owned()),
        ("KUBECONFIG", kubeconfig.clone()),
        ("DYNO_SCALER_SOURCE", "solid_queue".to_owned()),
        ("DATABASE_URL", db_url()),
        ("DYNO_SCALER_SCHEMA", s.clone()),
        ("DYNO_SCALER_POLICY", "classic".to_owned()),
        ("DYNO_SCALER_MIN_WORKERS", "1".to_owned()),
        ("DYNO_SCALER_MAX_WORKERS", "3".to_owned()),
        ("DYNO_SCALER_DOWN_DELAY", "0s".to_owned()),
        ("DYNO_SCALER_POLL_INTERVAL", "500ms".to_owned()),
    ];
    let child = command(&["run"], &env).spawn().unwrap();
    assert!(
        eventually(Duration::from_secs(30), || fake.replicas("worker") == Some(1)).await,
        "the Deployment shrank to 1: {:?}",
        fake.requests()
    );
    assert_eq!(fake.pods("worker"), [pods[2].clone()], "the busy pod is the one left");
    for victim in &pods[..2] {
        assert!(fake.annotation(victim, DELETION_COST).is_some() || !fake.pods("worker").contains(victim));
    }
    assert_eq!(fake.annotation(&pods[2], DELETION_COST).as_deref(), Some("1000"), "the busy pod goes last");
    stop_daemon(child).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {s} CASCADE"))).execute(&pool).await.unwrap();
}
