//! `dyno-scaler keda-scaler`: a tonic client speaks to it as KEDA does, against real Redis.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dyno_scaler::keda::proto::external_scaler_client::ExternalScalerClient;
use dyno_scaler::keda::proto::{GetMetricsRequest, ScaledObjectRef};
use dyno_scaler::keda::tonic;
use serde_json::Value;
use tonic::transport::Channel;

use super::common::*;

fn scaled_object(process_type: &str) -> ScaledObjectRef {
    let metadata = HashMap::from([("processType".to_owned(), process_type.to_owned())]);
    ScaledObjectRef { name: "sidekiq-worker".into(), namespace: "app".into(), scaler_metadata: metadata }
}

/// The daemon on a free port (Sidekiq on `url`; no Heroku settings at all), a client connected to it, and the
/// environment it runs with.
async fn start(
    url: &str,
    extra: &[(&'static str, &str)],
) -> (Daemon, ExternalScalerClient<Channel>, Vec<(&'static str, String)>) {
    let port = dyno_scaler_test_support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = with(
        vec![
            ("DYNO_SCALER_SOURCE", "sidekiq".to_owned()),
            ("REDIS_URL", url.to_owned()),
            ("DYNO_SCALER_POLICY", "classic".to_owned()),
            ("DYNO_SCALER_MAX_WORKERS", "4".to_owned()),
            ("DYNO_SCALER_DOWN_DELAY", "0s".to_owned()),
        ],
        extra,
    );
    let daemon = Daemon::start_with(&["keda-scaler", "--listen", &listen], &env);
    daemon.logged("serving KEDA's external scaler", 1).await;
    let client = ExternalScalerClient::connect(format!("http://{listen}")).await.expect("the gRPC server answers");
    (daemon, client, env)
}

#[tokio::test]
async fn get_metrics_is_what_status_calls_desired_and_is_active_flips_with_work() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    let (daemon, mut client, env) = start(&url, &[]).await;
    let so = scaled_object("worker");
    assert!(!client.is_active(so.clone()).await.unwrap().into_inner().result, "nothing queued: inactive");

    let spec = client.get_metric_spec(so.clone()).await.unwrap().into_inner();
    #[allow(deprecated)]
    let (name, target, target_f) = (
        spec.metric_specs[0].metric_name.clone(),
        spec.metric_specs[0].target_size,
        spec.metric_specs[0].target_size_float,
    );
    assert_eq!((name.as_str(), target, target_f), ("worker", 1, 1.0));

    sidekiq_push(&mut c, "default", 30).await;
    let request = GetMetricsRequest { scaled_object_ref: Some(so.clone()), metric_name: "worker".into() };
    let values = client.get_metrics(request.clone()).await.unwrap().into_inner().metric_values;
    let out = run(&["status", "--json"], &with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_MAX_WORKERS", "4")])).await;
    let status: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let desired = status["processes"][0]["desired"].as_i64().unwrap();
    assert_eq!(desired, 2, "30 jobs, the seed's table: {status}");
    #[allow(deprecated)]
    let (int, float) = (values[0].metric_value, values[0].metric_value_float);
    assert_eq!((int, float), (desired, desired as f64), "both fields carry the desired count");
    assert!(client.is_active(so.clone()).await.unwrap().into_inner().result, "work queued: active");

    let _: () = redis::cmd("DEL").arg("queue:default").query_async(&mut c).await.unwrap();
    assert!(!client.is_active(so.clone()).await.unwrap().into_inner().result, "drained: inactive again");
    #[allow(deprecated)]
    let zero = client.get_metrics(request.clone()).await.unwrap().into_inner().metric_values[0].metric_value;
    assert_eq!(zero, 0);

    // A pause (set without any Heroku setting) holds the answer where it is, until resumed.
    assert_eq!(run(&["pause", "worker"], &env).await.code, 0);
    sidekiq_push(&mut c, "default", 30).await;
    #[allow(deprecated)]
    let held = client.get_metrics(request.clone()).await.unwrap().into_inner().metric_values[0].metric_value;
    assert_eq!(held, 0, "paused");
    assert_eq!(run(&["resume", "worker"], &env).await.code, 0);
    #[allow(deprecated)]
    let resumed = client.get_metrics(request).await.unwrap().into_inner().metric_values[0].metric_value;
    assert_eq!(resumed, 2, "resumed");

    let err = client.is_active(scaled_object("nosuch")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(err.message().contains("unknown processType \"nosuch\"") && err.message().contains("worker"), "{err}");
    let err = client.stream_metric_spec(so).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    daemon.stop().await;
}

#[tokio::test]
async fn stream_is_active_says_true_within_100ms_of_an_enqueue() {
    let (_redis, url, mut c) = own_redis().await;
    // A slow poll: only the event path can explain a fast answer.
    let (daemon, mut client, _) = start(&url, &[("DYNO_SCALER_POLL_INTERVAL", "60s")]).await;
    daemon.logged("mode=client tracking", 1).await;
    let mut stream = client.stream_is_active(scaled_object("worker")).await.unwrap().into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
    assert!(!first.result, "the state now: inactive");
    let mut took = Vec::new();
    for round in 0..5 {
        let enqueued = Instant::now();
        sidekiq_push(&mut c, "default", 1).await;
        let next = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
        took.push(enqueued.elapsed());
        assert!(next.result, "round {round}: active after the enqueue");
        let _: () = redis::cmd("DEL").arg("queue:default").query_async(&mut c).await.unwrap();
        let off = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
        assert!(!off.result, "round {round}: inactive once drained");
    }
    took.sort();
    println!("enqueue to StreamIsActive true: {took:?}");
    assert!(took[took.len() - 1] < Duration::from_millis(100), "enqueue to `true`: {took:?}");
    daemon.stop().await;
}
