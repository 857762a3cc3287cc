//! The external scaler: KEDA asks about a ScaledObject (its trigger metadata's `processType` names a configured
//! process type) and gets the policy's desired count.

use std::collections::BTreeMap;
use std::pin::Pin;

use dyno_scaler_core::{Report, Scaler, ScalerError};
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::proto::external_scaler_server::ExternalScaler;
use crate::proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec, MetricValue,
    ScaledObjectRef,
};

/// The trigger metadata key that names the process type.
pub const PROCESS_TYPE_KEY: &str = "processType";

struct Entry {
    scaler: Scaler,
    /// The desired count after every cycle, for `StreamIsActive`.
    desired: watch::Sender<u32>,
}

/// KEDA's external scaler over the scalers of the configured process types.
///
/// Each process type's scaler runs its loop against [`Published`](crate::Published) (KEDA and the HPA change the
/// replicas; the loop's decisions are the counts published). `GetMetrics` takes a fresh reading and answers the
/// decision the policy would take on it ([`Scaler::preview`]): it advances none of the policy's timers and learns
/// nothing, so KEDA's polling never counts twice what the loop observes. `IsActive` says whether that count is above
/// zero, and `StreamIsActive` pushes `true` the moment a cycle (woken by the event path, or the poll) wants a
/// worker. Feed it every cycle's result with [`KedaScaler::observe`].
#[derive(Clone)]
pub struct KedaScaler {
    types: std::sync::Arc<BTreeMap<String, Entry>>,
}

impl std::fmt::Debug for KedaScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KedaScaler").field("process_types", &self.types.keys().collect::<Vec<_>>()).finish()
    }
}

impl KedaScaler {
    /// The scaler of `scalers`' process types.
    pub fn new(scalers: &[Scaler]) -> Self {
        let types = scalers
            .iter()
            .map(|s| (s.process_type().to_owned(), Entry { scaler: s.clone(), desired: watch::channel(0).0 }))
            .collect();
        Self { types: std::sync::Arc::new(types) }
    }

    /// Takes in one cycle's result (from the controller's loop), so streams hear of it at once.
    pub fn observe(&self, result: &Result<Report, ScalerError>) {
        if let Ok(r) = result
            && let Some(e) = self.types.get(&r.process_type)
        {
            e.desired.send_replace(r.decision.to);
        }
    }

    fn entry(&self, r: &ScaledObjectRef) -> Result<(&str, &Entry), Status> {
        let known = || self.types.keys().cloned().collect::<Vec<_>>().join(", ");
        let (namespace, name) = (quoted(&r.namespace), quoted(&r.name));
        match r.scaler_metadata.get(PROCESS_TYPE_KEY) {
            Some(pt) => self.types.get_key_value(pt).map(|(k, e)| (k.as_str(), e)).ok_or_else(|| {
                Status::not_found(format!(
                    "ScaledObject {namespace}/{name}: unknown processType {}; configured: {}",
                    quoted(pt),
                    known()
                ))
            }),
            None if self.types.len() == 1 => {
                let (k, e) = self.types.iter().next().expect("one");
                Ok((k.as_str(), e))
            }
            None => Err(Status::invalid_argument(format!(
                "ScaledObject {namespace}/{name}: set the trigger metadata key {PROCESS_TYPE_KEY} to one of {}",
                known()
            ))),
        }
    }

    /// The decision for the process type on a fresh reading, without acting or changing the policy's history.
    async fn desired(&self, e: &Entry) -> Result<u32, Status> {
        let result = e.scaler.preview().await;
        self.observe(&result);
        result.map(|r| r.decision.to).map_err(|err| Status::unavailable(err.to_string()))
    }
}

/// The most characters of the caller's input an error quotes: a name of a ScaledObject or a process type is far
/// shorter (Kubernetes names are at most 253), and an error must not echo megabytes back.
pub const QUOTE_MAX: usize = 256;

/// `s` quoted for an error, cut to [`QUOTE_MAX`] characters with the length of what was left out.
fn quoted(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        None => format!("{s:?}"),
        Some((at, _)) => format!("{:?}... ({} more bytes)", &s[..at], s.len() - at),
    }
}

type ActiveStream = Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send>>;
type SpecStream = Pin<Box<dyn Stream<Item = Result<GetMetricSpecResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalScaler for KedaScaler {
    async fn is_active(&self, request: Request<ScaledObjectRef>) -> Result<Response<IsActiveResponse>, Status> {
        let (_, e) = self.entry(request.get_ref())?;
        let desired = self.desired(e).await?;
        Ok(Response::new(IsActiveResponse { result: desired > 0 }))
    }

    type StreamIsActiveStream = ActiveStream;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let (_, e) = self.entry(request.get_ref())?;
        // The state now, then each change of activity (KEDA acts on `true` only; `false` is said for clarity).
        let mut last = None;
        let stream = tokio_stream::wrappers::WatchStream::new(e.desired.subscribe()).filter_map(move |d| {
            let active = d > 0;
            (last.replace(active) != Some(active)).then_some(Ok(IsActiveResponse { result: active }))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let (pt, _) = self.entry(request.get_ref())?;
        // Target 1 per replica: KEDA's AverageValue arithmetic (ceil(metric / target)) lands on the desired count.
        #[allow(deprecated)]
        let spec = MetricSpec { metric_name: pt.to_owned(), target_size: 1, target_size_float: 1.0 };
        Ok(Response::new(GetMetricSpecResponse { metric_specs: vec![spec] }))
    }

    async fn get_metrics(&self, request: Request<GetMetricsRequest>) -> Result<Response<GetMetricsResponse>, Status> {
        let r = request.get_ref().scaled_object_ref.clone().unwrap_or_default();
        let (pt, e) = self.entry(&r)?;
        let desired = self.desired(e).await?;
        #[allow(deprecated)]
        let value = MetricValue {
            metric_name: pt.to_owned(),
            metric_value: i64::from(desired),
            metric_value_float: f64::from(desired),
        };
        Ok(Response::new(GetMetricsResponse { metric_values: vec![value] }))
    }

    type StreamMetricSpecStream = SpecStream;

    async fn stream_metric_spec(
        &self,
        _request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        Err(Status::unimplemented("StreamMetricSpec is not implemented: the metric spec never changes"))
    }
}
