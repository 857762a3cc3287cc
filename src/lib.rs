//! dyno-scaler: keeps the number of worker processes matched to the background jobs waiting for them.
//!
//! This facade re-exports the core and, behind Cargo features, the adapters:
//! `sidekiq`, `resque` (Redis), `delayed-job` (Postgres), `heroku` (Platform API). See the README.
//!
//! ```
//! use dyno_scaler::core::*;
//! use std::sync::Arc;
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! # rt.block_on(async {
//! let queue = InMemoryQueue::new(Arc::new(SystemClock));
//! let platform = InMemoryPlatform::new();
//! let policy = Policy::new(PolicyConfig { max_workers: 4, ..PolicyConfig::default() }).unwrap();
//! let scaler = Scaler::builder("worker", Arc::new(queue.clone()), Arc::new(platform.clone()), policy).build();
//! queue.push_many("default", 60);
//! scaler.reconcile().await.unwrap();
//! // The adaptive policy, no job duration learned yet: a thread per job, 5 a worker, at most 4.
//! assert_eq!(platform.quantity("worker"), 4);
//! # });
//! ```
#![deny(missing_docs)]

pub use dyno_scaler_core as core;
pub use dyno_scaler_core::{
    Clock, Controller, Decision, DemandRule, DownMode, InMemoryPlatform, InMemoryQueue, ManualClock, Platform,
    PlatformError, Policy, PolicyConfig, QueueSource, QueueStats, Report, Scaler, ScalerError, Snapshot, SourceError,
    SystemClock, WorkerInfo,
};

/// Sidekiq queue source (feature `sidekiq`).
#[cfg(feature = "sidekiq")]
pub use dyno_scaler_sidekiq as sidekiq;

/// Resque queue source (feature `resque`).
#[cfg(feature = "resque")]
pub use dyno_scaler_resque as resque;

/// DelayedJob queue source (feature `delayed-job`).
#[cfg(feature = "delayed-job")]
pub use dyno_scaler_delayed_job as delayed_job;

/// GoodJob queue source (feature `good-job`).
#[cfg(feature = "good-job")]
pub use dyno_scaler_good_job as good_job;

/// Solid Queue queue source (feature `solid-queue`).
#[cfg(feature = "solid-queue")]
pub use dyno_scaler_solid_queue as solid_queue;

/// Web dynos' request queue time, as the gem's Rack middleware writes it (feature `request-queue`).
#[cfg(feature = "request-queue")]
pub use dyno_scaler_request_queue as request_queue;

/// The Redis helpers and store shared by the Sidekiq, Resque and request-queue sources.
#[cfg(any(feature = "sidekiq", feature = "resque", feature = "request-queue"))]
pub use dyno_scaler_redis as redis;

/// The Postgres helpers and store shared by the DelayedJob, GoodJob and Solid Queue sources.
#[cfg(any(feature = "delayed-job", feature = "good-job", feature = "solid-queue"))]
pub use dyno_scaler_postgres as postgres;

/// Heroku platform (feature `heroku`).
#[cfg(feature = "heroku")]
pub use dyno_scaler_heroku as heroku;

/// Kubernetes platform (feature `kubernetes`).
#[cfg(feature = "kubernetes")]
pub use dyno_scaler_kubernetes as kubernetes;

/// The program's settings (environment, TOML file, flags) and what they build: sources with their stores, platforms
/// and scalers, from the same registry the program uses (feature `settings`).
#[cfg(feature = "settings")]
pub mod settings;

/// KEDA's external scaler (gRPC).
#[cfg(feature = "keda")]
pub use dyno_scaler_keda as keda;

/// Prometheus metrics and l2met lines of what the scalers did.
#[cfg(feature = "metrics")]
pub mod dashboard;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "cli")]
pub mod notify;
#[cfg(all(test, feature = "metrics"))]
mod test_report;
