//! Memory of `dyno-scaler keda-scaler` under KEDA's polling: RSS after 1,000 `GetMetrics` calls and after
//! 100,000 (target: within 1 MiB), with a Sidekiq queue of 30 jobs on a real Redis. Prints figures.
//!
//! `cargo bench --bench keda_memory` (needs Redis; KEDA_CALLS, default 100000)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dyno_scaler::keda::proto::external_scaler_client::ExternalScalerClient;
use dyno_scaler::keda::proto::{GetMetricsRequest, ScaledObjectRef};

#[path = "support/proc.rs"]
mod proc;

fn rss_kib(pid: u32, key: &str) -> u64 {
    proc::proc_field(pid, "status", key).unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: u64 = std::env::var("KEDA_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let redis_url = std::env::var("DYNO_SCALER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let ns = format!("dskeda{}", std::process::id());
    let mut redis = redis::Client::open(redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let mut p = redis::pipe();
    p.sadd(format!("{ns}:queues"), "default").ignore();
    for j in 0..30 {
        p.lpush(
            format!("{ns}:queue:default"),
            format!(r#"{{"class":"W","args":[{j}],"jid":"{j:024x}","enqueued_at":1}}"#),
        )
        .ignore();
    }
    let _: () = p.query_async(&mut redis).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let exe = env!("CARGO_BIN_EXE_dyno-scaler");
    let config = std::env::temp_dir().join(format!("{ns}.toml"));
    let toml =
        format!("[[process]]\ntype = \"worker\"\nsource = \"sidekiq\"\nnamespace = \"{ns}\"\nmax_workers = 10\n");
    std::fs::write(&config, toml).unwrap();
    let args = ["--config", config.to_str().unwrap(), "keda-scaler", "--listen", &listen];
    let mut child = proc::quiet_daemon(exe, &args, &[("REDIS_URL", redis_url.as_str())]);
    let pid = child.id().unwrap();
    let mut client = loop {
        match ExternalScalerClient::connect(format!("http://{listen}")).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let metadata = HashMap::from([("processType".to_owned(), "worker".to_owned())]);
    let so = ScaledObjectRef { name: "worker".into(), namespace: "app".into(), scaler_metadata: metadata };
    let request = GetMetricsRequest { scaled_object_ref: Some(so), metric_name: "worker".into() };
    let mut answer = 0;
    let mut rss_at = Vec::new();
    let start = Instant::now();
    for i in 1..=calls {
        #[allow(deprecated)]
        let v = client.get_metrics(request.clone()).await.unwrap().into_inner().metric_values[0].metric_value;
        answer = v;
        if [1_000, 10_000, calls].contains(&i) {
            rss_at.push((i, rss_kib(pid, "VmRSS:")));
        }
    }
    let took = start.elapsed();
    let hwm = rss_kib(pid, "VmHWM:");
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait().await;
    println!(
        "{calls} GetMetrics in {took:.1?} ({:.0} µs each), answer {answer}",
        took.as_micros() as f64 / calls as f64
    );
    for (i, rss) in &rss_at {
        println!("RSS after {i:>6} calls: {:.2} MiB", *rss as f64 / 1024.0);
    }
    let (first, last) = (rss_at[0].1 as f64, rss_at[rss_at.len() - 1].1 as f64);
    println!(
        "growth from 1,000 to {calls} calls: {:.2} MiB (target: within 1 MiB); peak RSS {:.2} MiB",
        (last - first) / 1024.0,
        hwm as f64 / 1024.0
    );
    let _: () = redis::pipe()
        .del(format!("{ns}:queues"))
        .del(format!("{ns}:queue:default"))
        .query_async(&mut redis)
        .await
        .unwrap();
}
