//! The Heroku Platform API client.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dyno_scaler_core::backoff::Backoff;
use dyno_scaler_core::{Formation, Hosts, Platform, PlatformError, ProcessInfo, ScaleRequest, SettingError};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::json;

use crate::api::{self, Dyno};
use crate::config::HerokuConfig;

pub(crate) const ACCEPT: &str = "application/vnd.heroku+json; version=3";

#[derive(Debug, Clone, Copy)]
struct Cached {
    quantity: u32,
    at: Instant,
}

/// Calls that failed for good in a row, and when the next request is allowed.
#[derive(Debug)]
pub(crate) struct Outage {
    pub(crate) backoff: Backoff,
    pub(crate) until: Option<Instant>,
    pub(crate) last: String,
    /// When a read last went through as a probe during the backoff.
    pub(crate) probed: Option<Instant>,
    /// Until when the API asked for no request at all (`Retry-After`): no probe either.
    pub(crate) asked_until: Option<Instant>,
}

/// The Heroku platform.
pub struct HerokuPlatform {
    pub(crate) config: HerokuConfig,
    pub(crate) client: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
    pub(crate) remaining: AtomicU64,
    /// Requests sent, by status (`"error"`: no answer).
    pub(crate) requests: Mutex<std::collections::BTreeMap<String, u64>>,
    pub(crate) outage: Mutex<Outage>,
    /// The process types whose queue had work ready at their last request (the `Hosts` of [`Platform::formation`] and [`Platform::scale`]): while any has, an
    /// outage is worth probing. One client serves every process type of the app.
    pub(crate) work_waiting: Mutex<std::collections::BTreeSet<String>>,
}

impl std::fmt::Debug for HerokuPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HerokuPlatform")
            .field("app", &self.config.app)
            .field("base_url", &self.config.base_url)
            .field("api_key", &self.config.api_key)
            .finish()
    }
}

/// Characters left as they are in a path segment: RFC 3986's unreserved set.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn percent_encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

impl HerokuPlatform {
    /// A client for `config`, checked first. Installs the ring TLS provider for the process if none is installed.
    pub fn new(config: HerokuConfig) -> Result<Self, SettingError> {
        config.validate()?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("dyno-scaler/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| SettingError::new("api_url", format!("cannot build the HTTP client: {e}")))?;
        let outage = Outage {
            backoff: Backoff::new(config.retry.outage_initial, config.retry.outage_max),
            until: None,
            last: String::new(),
            probed: None,
            asked_until: None,
        };
        Ok(Self {
            config,
            client,
            cache: Mutex::new(HashMap::new()),
            remaining: AtomicU64::new(u64::MAX),
            requests: Mutex::default(),
            outage: Mutex::new(outage),
            work_waiting: Mutex::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &HerokuConfig {
        &self.config
    }

    /// The last `RateLimit-Remaining` seen, if any.
    pub fn rate_limit_remaining(&self) -> Option<u64> {
        match self.remaining.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(n),
        }
    }

    fn app_path(&self) -> String {
        format!("/apps/{}", percent_encode(&self.config.app))
    }
}

impl HerokuPlatform {
    fn cached(&self, process_type: &str) -> Option<u32> {
        let c = *self.cache.lock().expect("cache").get(process_type)?;
        let low = self.rate_limit_remaining().is_some_and(|r| r < self.config.rate_limit_floor);
        let ttl = if low { self.config.refresh_interval * 10 } else { self.config.refresh_interval };
        (c.at.elapsed() < ttl).then_some(c.quantity)
    }

    fn remember(&self, process_type: &str, quantity: u32) {
        self.cache.lock().expect("cache").insert(process_type.to_owned(), Cached { quantity, at: Instant::now() });
    }

    /// Notes whether work waits for `process_type`, so that an outage's backoff lets a probe through.
    fn hear(&self, process_type: &str, hosts: &Hosts) {
        let mut waiting = self.work_waiting.lock().expect("work lock");
        if hosts.work_waiting {
            if !waiting.contains(process_type) {
                waiting.insert(process_type.to_owned());
            }
        } else {
            waiting.remove(process_type);
        }
    }

    fn forget(&self, process_type: &str) {
        self.cache.lock().expect("cache").remove(process_type);
    }

    /// Reads one formation (always a request; [`Platform::formation`] uses the cache unless asked fresh).
    pub async fn read_formation(&self, process_type: &str) -> Result<api::Formation, PlatformError> {
        let path = format!("{}/formation/{}", self.app_path(), percent_encode(process_type));
        let result =
            self.call(Method::GET, &path, None, None, None).await.and_then(|a| self.decode::<api::Formation>(&a.body));
        match &result {
            Ok(f) => self.remember(process_type, f.quantity),
            Err(_) => self.forget(process_type),
        }
        result
    }

    /// Every formation of the app.
    pub async fn formations(&self) -> Result<Vec<api::Formation>, PlatformError> {
        let path = format!("{}/formation", self.app_path());
        let list: Vec<api::Formation> = self.decode(&self.call(Method::GET, &path, None, None, None).await?.body)?;
        for f in &list {
            self.remember(&f.process_type, f.quantity);
        }
        Ok(list)
    }

    /// Sets several process types in one request (batch update). All or nothing on Heroku's side.
    pub async fn set_quantities(&self, updates: &[(&str, u32)]) -> Result<Vec<api::Formation>, PlatformError> {
        let body =
            json!({"updates": updates.iter().map(|(t, q)| json!({"type": t, "quantity": q})).collect::<Vec<_>>()});
        let path = format!("{}/formation", self.app_path());
        let requested = updates.iter().map(|(_, q)| *q).max();
        match self
            .call(Method::PATCH, &path, Some(&body), None, requested)
            .await
            .and_then(|a| self.decode::<Vec<api::Formation>>(&a.body))
        {
            Ok(list) => {
                for f in &list {
                    self.remember(&f.process_type, f.quantity);
                }
                Ok(list)
            }
            Err(e) => {
                for (t, _) in updates {
                    self.forget(t);
                }
                Err(e)
            }
        }
    }

    /// Every dyno of the app, following `Next-Range` pagination.
    pub async fn dynos(&self) -> Result<Vec<Dyno>, PlatformError> {
        let path = format!("{}/dynos", self.app_path());
        let mut out = Vec::new();
        let mut range: Option<String> = None;
        for _ in 0..1000 {
            let answer = self.call(Method::GET, &path, None, range.as_deref(), None).await?;
            out.extend(self.decode::<Vec<Dyno>>(&answer.body)?);
            match answer.next_range {
                Some(next) => range = Some(next),
                None => return Ok(out),
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Platform for HerokuPlatform {
    fn name(&self) -> &str {
        "heroku"
    }

    fn telemetry(&self) -> dyno_scaler_core::PlatformTelemetry {
        dyno_scaler_core::PlatformTelemetry::new(
            self.requests.lock().expect("requests lock").clone(),
            self.rate_limit_remaining(),
        )
    }

    /// The quantity (from the cache unless `fresh`), Cedar's placements of the hosts and its stop order
    /// ([`crate::cedar`]). On Fir no process has these names, so nothing is quieted; its hosts are placed as
    /// unknown, and nothing scales down while they run jobs. Whether work waits lets an outage's backoff probe
    /// sooner ([`crate::RetryPolicy::outage_probe`]).
    async fn formation(&self, process_type: &str, hosts: &Hosts, fresh: bool) -> Result<Formation, PlatformError> {
        self.hear(process_type, hosts);
        if fresh {
            self.forget(process_type);
        }
        let quantity = match self.cached(process_type) {
            Some(q) => q,
            None => self.read_formation(process_type).await?.quantity,
        };
        let placements =
            hosts.named.iter().map(|h| (h.clone(), crate::cedar::place(process_type, quantity, h))).collect();
        Ok(Formation::new(quantity).placed(placements, Some(crate::cedar::victims(process_type, quantity, 0))))
    }

    async fn scale(&self, request: &ScaleRequest<'_>) -> Result<(), PlatformError> {
        let (process_type, quantity) = (request.process_type, request.quantity);
        self.hear(process_type, request.hosts);
        let path = format!("{}/formation/{}", self.app_path(), percent_encode(process_type));
        let body = json!({ "quantity": quantity });
        match self
            .call(Method::PATCH, &path, Some(&body), None, Some(quantity))
            .await
            .and_then(|a| self.decode::<api::Formation>(&a.body))
        {
            Ok(f) => {
                self.remember(process_type, f.quantity);
                Ok(())
            }
            Err(e) => {
                self.forget(process_type);
                Err(e)
            }
        }
    }

    async fn list_processes(&self, process_type: &str) -> Result<Option<Vec<ProcessInfo>>, PlatformError> {
        let dynos = self.dynos().await?;
        Ok(Some(
            dynos
                .into_iter()
                .filter(|d| d.process_type == process_type && (d.state == "up" || d.state == "starting"))
                .map(|d| ProcessInfo::new(d.name, d.state))
                .collect(),
        ))
    }
}
