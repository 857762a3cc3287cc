//! dyno-scaler [`QueueSource`] for [Resque](https://github.com/resque/resque) (Redis).
//!
//! One snapshot is two pipelined round trips, whatever the number of queues: queue lengths and the oldest job
//! of each queue, the registered workers with their running job and heartbeat, and resque-scheduler's delayed
//! jobs (due ones count as ready: the scheduler has not moved them yet, and never will while no scheduler
//! runs). Due delayed jobs are counted exactly up to `delayed_cap` due timestamps and estimated beyond.
//!
//! Workers whose heartbeat is missing or older than `stale_after` (default 300 s, Resque's own pruning rule)
//! are dead registrations left behind by a killed dyno: they are ignored, so they never look busy forever.
//!
//! **Latency.** Stock Resque payloads (`{"class", "args"}`) carry no time, so `oldest_ready_age` is `None`
//! unless the oldest job carries one: Active Job's wrapper (`args[0].enqueued_at`, ISO 8601) or the
//! `timestamp` field that the Judoscale agent adds. Due delayed jobs give their due time. Use size-based
//! rules (thresholds, jobs per worker) for Resque.
//!
//! Resque worker ids carry the host name, not the dyno name, so the policy cannot tell which dyno is busy:
//! by default it scales down only when nothing runs.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::events::Hints;
use dyno_scaler_core::secret::debug_source;
use dyno_scaler_core::{
    Capabilities, Events, Inspect, QueueSource, Secret, SettingError, Snapshot, Source, SourceError, check,
};
use dyno_scaler_redis::events::Watch;

pub use dyno_scaler_redis::TlsVerify;
pub use reading::{MalformedPayload, payload_enqueued_at};

mod reading;
mod rounds;
use dyno_scaler_redis::{RedisStore, connect};

pub(crate) const NAME: &str = "resque";

/// Settings of a [`ResqueSource`]; as a TOML table or JSON object they take the field names below (durations as
/// `"300s"`), every field but `url` optional.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResqueConfig {
    /// Redis URL. Secret: it may hold a password.
    pub url: Secret,
    /// Key namespace, `resque` by default (keys are `<namespace>:queue:<q>`).
    pub namespace: String,
    /// Queues to watch; `None` watches every queue in `<ns>:queues`.
    pub queues: Option<Vec<String>>,
    /// A worker whose heartbeat is missing or older than this is dead.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// Whether a `rediss://` URL's certificate is checked (Heroku's Redis needs [`TlsVerify::None`]).
    #[serde(rename = "redis_tls_verify")]
    pub tls_verify: TlsVerify,
    /// Bound on one snapshot, connection included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How many due delayed timestamps (and delayed jobs split per queue) one snapshot reads at most.
    pub delayed_cap: usize,
    /// How many future delayed timestamps are sampled to estimate the scheduled count (not demand).
    pub future_sample: usize,
}

impl Default for ResqueConfig {
    fn default() -> Self {
        Self::new("")
    }
}

impl ResqueConfig {
    /// Checks every setting, naming the one that cannot be used.
    pub fn validate(&self) -> Result<(), SettingError> {
        check::url("url", self.url.expose(), &["redis", "rediss"])?;
        check::not_empty("namespace", Some(&self.namespace))?;
        check::queues("queues", &self.queues)?;
        check::duration("stale_after", self.stale_after, Duration::from_secs(1), Duration::from_secs(24 * 3600))?;
        check::duration("timeout", self.timeout, Duration::from_millis(10), Duration::from_secs(60))
    }

    /// Defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            namespace: "resque".into(),
            queues: None,
            stale_after: Duration::from_secs(300),
            tls_verify: TlsVerify::Full,
            timeout: Duration::from_secs(2),
            delayed_cap: 100,
            future_sample: 20,
        }
    }
}

/// Reads Resque's queues, workers and resque-scheduler's delayed jobs.
#[derive(Clone)]
pub struct ResqueSource {
    config: ResqueConfig,
    conn: dyno_scaler_redis::Conn,
    prefix: String,
}

impl std::fmt::Debug for ResqueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        debug_source(f, "ResqueSource", &c.url, &[("namespace", &c.namespace), ("queues", &c.queues)])
    }
}

impl ResqueSource {
    /// A source for `config`. Connects lazily: Redis may be down now and come up later.
    /// A source for `config`, checked first. Connects lazily: Redis may be down now and come up later.
    pub fn new(config: ResqueConfig) -> Result<Self, SettingError> {
        config.validate()?;
        let conn = connect(NAME, &config.url, config.tls_verify, config.timeout)?;
        let prefix = if config.namespace.is_empty() { String::new() } else { format!("{}:", config.namespace) };
        Ok(Self { config, conn, prefix })
    }
}

#[async_trait]
impl QueueSource for ResqueSource {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        // Worker ids carry the host name, not the dyno; stock payloads carry no time.
        // A Resque worker process runs one job at a time.
        Capabilities::new(false, false, true).with_threads(1)
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        match tokio::time::timeout(self.config.timeout, self.read()).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout { source_name: NAME.into(), timeout: self.config.timeout }),
        }
    }
}

/// The whole source: the reading, the event path, the queue list, and the store beside the queue's keys
/// ([`RedisStore`]: a lease key with NX and a TTL, the learned summary).
impl From<ResqueSource> for Source {
    fn from(source: ResqueSource) -> Self {
        let store = RedisStore::new(source.conn.clone(), NAME, &source.config.url, &source.prefix);
        let source = Arc::new(source);
        Source::new(source.clone()).with_events(source.clone()).with_inspect(source).with_store(Arc::new(store))
    }
}

#[async_trait]
impl Inspect for ResqueSource {
    /// The library's own set of every queue pushed to (`SADD queues` on each push).
    async fn queues_seen(&self) -> Result<Option<Vec<String>>, SourceError> {
        let key = format!("{}queues", self.prefix);
        dyno_scaler_redis::members(self.conn.clone(), (NAME, &self.config.url), &key).await.map(Some)
    }
}

#[async_trait]
impl Events for ResqueSource {
    /// Client tracking on the queue lists and the resque-scheduler delayed keys, else keyspace notifications, else
    /// none ([`dyno_scaler_redis::events`]).
    async fn watch(&self, hints: &Hints) -> Result<(), SourceError> {
        let prefixes: Vec<String> = ["queue:", "delayed"].iter().map(|k| format!("{}{k}", self.prefix)).collect();
        let c = &self.config;
        let w = Watch { name: NAME, url: &c.url, verify: c.tls_verify, timeout: c.timeout, prefixes: &prefixes };
        dyno_scaler_redis::events::watch(w, hints).await
    }
}

/// A worker id is `<host>:<pid>:<queues>` (node-resque: `<name>:<queues>`, where the name is `<host>:<pid>`).
fn worker_name(id: &str) -> &str {
    id.rsplit_once(':').map_or(id, |(name, _)| name)
}
