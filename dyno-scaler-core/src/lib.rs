//! Core of dyno-scaler: the [`QueueSource`] and [`Platform`] traits, the [`Snapshot`] model, the pure
//! [`Policy`], the [`Scaler`] and [`Controller`], clocks, and in-memory fakes for tests.
//!
//! ```
//! use dyno_scaler_core::*;
//! use std::sync::Arc;
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! # rt.block_on(async {
//! let clock = Arc::new(ManualClock::at_secs(0));
//! let queue = InMemoryQueue::new(clock.clone());
//! let platform = InMemoryPlatform::new();
//! let policy = Policy::new(PolicyConfig { max_workers: 3, ..PolicyConfig::default() }).unwrap();
//! let scaler = Scaler::builder("worker", Arc::new(queue.clone()), Arc::new(platform.clone()), policy)
//!     .clock(clock.clone())
//!     .build();
//! queue.push("default");
//! scaler.reconcile().await.unwrap();
//! assert_eq!(platform.quantity("worker"), 1);
//! # });
//! ```
#![deny(missing_docs)]

pub mod backoff;
pub mod cedar;
pub mod check;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod controller;
pub mod cycle_log;
pub mod drain;
pub mod error;
pub mod events;
pub mod gate;
pub mod history;
pub mod lease;
pub mod memory;
pub mod platform;
pub mod policy;
pub mod requests;
pub mod scaler;
pub mod secret;
pub mod serde_secs;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod timefmt;

pub use clock::{Clock, ManualClock, SystemClock};
pub use controller::Controller;
pub use error::{PlatformError, ScalerError, SettingError, SourceError};
pub use gate::Gate;
pub use history::{FinishedJob, History};
pub use lease::{Lease, LeaseOptions, LeaseState, Pause};
pub use memory::{InMemoryLease, InMemoryPlatform, InMemoryQueue, InMemoryStore, PlatformCall};
pub use platform::{Formation, Hosts, Placement, Platform, PlatformExt, PlatformTelemetry, ProcessInfo, ScaleRequest};
pub use policy::{
    Adaptive, Decision, DemandRule, Direction, DownMode, Learned, MaxMode, Policy, PolicyConfig, PolicyError,
    PolicyInput, PolicyKind, PolicySettings, PolicyState, Verdict,
};
pub use scaler::{LIMIT_MEMORY, Report, Scaler, ScalerBuilder};
pub use secret::Secret;
pub use snapshot::{QueueStats, Snapshot, WorkerInfo};
pub use source::{Capabilities, Events, Inspect, QueueSource, Quiet, Source};
pub use store::Store;
