//! dyno-scaler [`QueueSource`] for **web dynos**: request queue time, as the gem's Rack middleware
//! (`DynoScaler::QueueTime`) writes it into the app's Redis.
//!
//! The middleware keeps, per second, a hash `<namespace:>dyno-scaler:rq:<type>:<unix second>` with the requests
//! finished (`reqs`), those with a queue time (`n`), their queue times added and the longest (`sum`, `max`, µs),
//! the time in the app (`app`, µs), the headers it dropped (`dropped`) and a histogram (`h0`..`h11`, bounds in
//! [`dyno_scaler_core::requests::BOUNDS_MS`]), each key living two minutes; and `<...>:alive`, refreshed by every
//! process's flush each second (30 s TTL).
//!
//! One snapshot reads the last `window` of *complete* seconds (the current second and the one before, still being
//! flushed, are left out) in one pipelined round trip, and merges them into
//! [`RequestStats`](dyno_scaler_core::requests::RequestStats) (`Snapshot::requests`) for the web rule, plus a
//! `requests` pseudo-queue for the logs, `status` and the dashboard: `ready` = requests waiting on average,
//! `running` = threads busy on average (Little's law), latency = the percentile of queue time.
//!
//! No `alive` key means no process with the middleware has run lately: the reading is marked unreadable, which
//! holds the quantity (a missing middleware is not zero traffic); with it, an empty window is zero traffic.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use dyno_scaler_core::requests::{Bucket, RequestStats};
use dyno_scaler_core::secret::debug_source;
use dyno_scaler_core::{Capabilities, QueueSource, Secret, SettingError, Snapshot, Source, SourceError, check};
use dyno_scaler_redis::{RedisStore, connect, map_redis_error};

pub use dyno_scaler_redis::TlsVerify;

pub(crate) const NAME: &str = "request_queue";

/// The seconds left out at the end of a window: the current one, and the one the middleware may still be flushing.
const UNSETTLED: u64 = 2;

/// Settings of a [`RequestQueueSource`]; as a TOML table or JSON object they take the field names below, every
/// field but `url` optional.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestQueueConfig {
    /// The app's Redis, which the middleware writes to. Secret: it may hold a password.
    pub url: Secret,
    /// A key prefix, the middleware's `namespace:` option (none by default).
    pub namespace: String,
    /// The name the middleware keeps its measurements under, its `process_type:` option (`web`).
    pub middleware_type: String,
    /// How many complete seconds one reading merges (10 s: Judoscale's aggregation).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The percentile of queue time the web rule keeps under its target (95).
    pub percentile: f64,
    /// Whether a `rediss://` URL's certificate is checked (Heroku's Redis needs [`TlsVerify::None`]).
    #[serde(rename = "redis_tls_verify")]
    pub tls_verify: TlsVerify,
    /// Bound on one snapshot, connection included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RequestQueueConfig {
    fn default() -> Self {
        Self::new("")
    }
}

impl RequestQueueConfig {
    /// Defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            namespace: String::new(),
            middleware_type: "web".into(),
            window: Duration::from_secs(10),
            percentile: 95.0,
            tls_verify: TlsVerify::Full,
            timeout: Duration::from_secs(2),
        }
    }

    /// Checks every setting, naming the one that cannot be used.
    pub fn validate(&self) -> Result<(), SettingError> {
        check::url("url", self.url.expose(), &["redis", "rediss"])?;
        check::not_empty("middleware_type", Some(&self.middleware_type))?;
        check::duration("window", self.window, Duration::from_secs(1), Duration::from_secs(110))?;
        if !(self.percentile > 0.0 && self.percentile <= 100.0) {
            return Err(SettingError::new(
                "percentile",
                format!("{} is not a percentile; use 1 to 100", self.percentile),
            ));
        }
        check::duration("timeout", self.timeout, Duration::from_millis(10), Duration::from_secs(60))
    }

    /// The namespace's key prefix (`<namespace>:`, or none), where the store's keys live too.
    fn namespace_prefix(&self) -> String {
        if self.namespace.is_empty() { String::new() } else { format!("{}:", self.namespace) }
    }

    fn prefix(&self) -> String {
        format!("{}dyno-scaler:rq:{}:", self.namespace_prefix(), self.middleware_type)
    }
}

/// Reads the middleware's per-second aggregates.
#[derive(Clone)]
pub struct RequestQueueSource {
    config: RequestQueueConfig,
    conn: dyno_scaler_redis::Conn,
    prefix: String,
}

impl std::fmt::Debug for RequestQueueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        debug_source(f, "RequestQueueSource", &c.url, &[("middleware_type", &c.middleware_type)])
    }
}

impl RequestQueueSource {
    /// A source for `config`, checked first. Connects lazily: Redis may be down now and come up later.
    pub fn new(config: RequestQueueConfig) -> Result<Self, SettingError> {
        config.validate()?;
        let conn = connect(NAME, &config.url, config.tls_verify, config.timeout)?;
        let prefix = config.prefix();
        Ok(Self { config, conn, prefix })
    }

    async fn read(&self, now: SystemTime) -> Result<Snapshot, SourceError> {
        let last = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs().saturating_sub(UNSETTLED);
        let n = self.config.window.as_secs().max(1);
        let mut pipe = redis::pipe();
        pipe.exists(format!("{}alive", self.prefix));
        for s in (last + 1 - n)..=last {
            pipe.hgetall(format!("{}{s}", self.prefix));
        }
        let mut conn = self.conn.clone();
        let (alive, hashes): (bool, Vec<Vec<(String, String)>>) = {
            let mut v: Vec<redis::Value> =
                pipe.query_async(&mut conn).await.map_err(|e| map_redis_error(NAME, &self.config.url, e))?;
            let alive = v.first().is_some_and(|x| matches!(x, redis::Value::Int(1)));
            let hashes = v.drain(1..).map(|h| redis::from_redis_value(h).unwrap_or_default()).collect();
            (alive, hashes)
        };
        let mut buckets = Vec::with_capacity(hashes.len());
        let mut skipped = 0;
        for h in &hashes {
            match bucket(h) {
                Some(b) => buckets.push(b),
                None => skipped += 1,
            }
        }
        if !alive && buckets.iter().all(|b| b.requests == 0) {
            let mut snap = Snapshot::default();
            snap.skipped = skipped;
            snap.unreadable.push(format!(
                "{}alive (no process with DynoScaler::QueueTime has written in 30 s: is the middleware installed?)",
                self.prefix
            ));
            return Ok(snap);
        }
        let stats = RequestStats::over(&buckets, n as f64, self.config.percentile / 100.0);
        let mut snap = stats.snapshot();
        snap.skipped = skipped + stats.dropped;
        Ok(snap)
    }
}

/// One second's hash as a [`Bucket`] (`None`: a field or a value that is not a count).
fn bucket(h: &[(String, String)]) -> Option<Bucket> {
    let mut b = Bucket::default();
    for (k, v) in h {
        let v = &v.parse::<u64>().ok()?;
        match k.as_str() {
            "reqs" => b.requests = *v,
            "n" => b.measured = *v,
            "sum" => b.queue_sum_us = *v,
            "max" => b.queue_max_us = *v,
            "app" => b.app_sum_us = *v,
            "dropped" => b.dropped = *v,
            k => {
                let i: usize = k.strip_prefix('h')?.parse().ok()?;
                *b.histogram.get_mut(i)? = *v;
            }
        }
    }
    Some(b)
}

#[async_trait]
impl QueueSource for RequestQueueSource {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        // No worker registry (requests are not jobs); the latency is the percentile of queue time.
        Capabilities::new(false, true, false)
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        match tokio::time::timeout(self.config.timeout, self.read(SystemTime::now())).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout { source_name: NAME.into(), timeout: self.config.timeout }),
        }
    }
}

/// The whole source: the reading, and the store beside the middleware's keys ([`RedisStore`]: the lease, the
/// pause, the dashboard's day).
impl From<RequestQueueSource> for Source {
    fn from(source: RequestQueueSource) -> Self {
        let ns =
            if source.config.namespace.is_empty() { String::new() } else { format!("{}:", source.config.namespace) };
        let store = RedisStore::new(source.conn.clone(), NAME, &source.config.url, &ns);
        Source::new(Arc::new(source)).with_store(Arc::new(store))
    }
}
