//! `GetMetrics` answers a fresh reading without acting: the loop alone publishes, advances the policy's timers
//! and keeps what it learned.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::{InMemoryQueue, ManualClock, Policy, PolicyConfig, Scaler, Store};
use dyno_scaler_keda::proto::external_scaler_server::ExternalScaler;
use dyno_scaler_keda::proto::{GetMetricsRequest, ScaledObjectRef};
use dyno_scaler_keda::tonic::Request;
use dyno_scaler_keda::{KedaScaler, Published};

fn request() -> GetMetricsRequest {
    let metadata = HashMap::from([("processType".to_owned(), "worker".to_owned())]);
    let so = ScaledObjectRef { name: "worker".into(), namespace: "app".into(), scaler_metadata: metadata };
    GetMetricsRequest { scaled_object_ref: Some(so), metric_name: "worker".into() }
}

#[tokio::test]
async fn get_metrics_answers_a_fresh_reading_and_moves_nothing_the_loop_owns() {
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    let published = Arc::new(Published::new());
    // The adaptive policy (the default), which keeps what it learned in the source's store.
    let policy = Policy::new(PolicyConfig { max_workers: 10, ..PolicyConfig::default() }).unwrap();
    let scaler = Scaler::builder("worker", queue.clone(), published.clone(), policy).clock(clock.clone()).build();
    let keda = KedaScaler::new(std::slice::from_ref(&scaler));
    queue.push_many("default", 12);
    for _ in 0..1_000 {
        clock.advance(Duration::from_secs(1));
        let values = keda.get_metrics(Request::new(request())).await.unwrap().into_inner().metric_values;
        #[allow(deprecated)]
        let value = values[0].metric_value;
        assert_eq!(value, 3, "12 jobs, one thread each, 5 threads a worker");
    }
    assert_eq!(published.count("worker"), 0, "GetMetrics publishes nothing: only the loop's cycles do");
    assert_eq!(queue.store().recall("worker").await.unwrap(), None, "nor does it keep what the policy learned");
    assert!(scaler.last_report().is_none(), "no cycle ran");

    // One cycle of the loop publishes the count and keeps the summary.
    scaler.reconcile().await.unwrap();
    assert_eq!(published.count("worker"), 3);
    assert!(queue.store().recall("worker").await.unwrap().is_some(), "the cycle keeps what it learned");
    assert_eq!(published.len(), 1, "one number per process type");
}

/// An error quotes at most `QUOTE_MAX` characters of what the caller sent, whatever its size.
#[tokio::test]
async fn errors_quote_a_bounded_part_of_the_callers_input() {
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    let policy = Policy::new(PolicyConfig { max_workers: 2, ..PolicyConfig::classic() }).unwrap();
    let scaler = Scaler::builder("worker", Arc::new(queue), Arc::new(Published::new()), policy).build();
    let keda = KedaScaler::new(&[scaler]);
    let huge = "x".repeat(2_000_000);
    let metadata = HashMap::from([("processType".to_owned(), huge.clone())]);
    let so = ScaledObjectRef { name: huge.clone(), namespace: huge, scaler_metadata: metadata };
    let request = GetMetricsRequest { scaled_object_ref: Some(so), metric_name: "worker".into() };
    let status = keda.get_metrics(Request::new(request)).await.unwrap_err();
    assert_eq!(status.code(), dyno_scaler_keda::tonic::Code::NotFound);
    let message = status.message();
    assert!(message.len() < 4 * dyno_scaler_keda::QUOTE_MAX, "{} bytes", message.len());
    assert!(message.contains("unknown processType") && message.contains("1999744 more bytes"), "{message}");
    assert!(message.ends_with("configured: worker"), "{message}");
}
