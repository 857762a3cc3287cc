//! The fake's in-memory world: apps, formations, dynos, tokens, rate limits, faults, recorded requests.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use dyno_scaler_core::timefmt::format_rfc3339;

use super::FakeConfig;
use crate::api::{Dyno, Formation, IdName, ReleaseRef};

/// What a fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer with this status and Heroku's body for it.
    Status(u16),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Close the connection without an answer.
    DropConnection,
    /// Answer exactly this: a status, a body taken as it is (malformed JSON included) and extra headers
    /// (`Retry-After`, ...).
    Respond {
        /// HTTP status.
        status: u16,
        /// The body, sent as it is.
        body: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
}

/// A fault for the next matching requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// `GET`, `PATCH`, ... (`None`: any).
    pub method: Option<String>,
    /// Requests whose path starts with this (`None`: any).
    pub path_prefix: Option<String>,
    /// How many requests it applies to.
    pub times: u32,
    /// What happens.
    pub action: FaultAction,
}

impl Fault {
    /// `times` requests of any kind get `action`.
    pub fn any(times: u32, action: FaultAction) -> Self {
        Self { method: None, path_prefix: None, times, action }
    }

    /// `times` formation changes (`PATCH`) are refused as Heroku refuses them during a release phase or a preboot
    /// cut-over (422, `"Cannot change formation for a preboot app until release phase and preboot complete"`).
    pub fn preboot(times: u32) -> Self {
        let body = r#"{"id":"invalid_params","message":"Cannot change formation for a preboot app until release phase and preboot complete."}"#;
        Self::on("PATCH", times, FaultAction::Respond { status: 422, body: body.into(), headers: Vec::new() })
    }

    /// `times` requests with `method` get `action`.
    pub fn on(method: &str, times: u32, action: FaultAction) -> Self {
        Self { method: Some(method.to_owned()), path_prefix: None, times, action }
    }
}

/// One request as the fake received it, with the credentials removed.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Arrival order (1, 2, ...).
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path (and query).
    pub path: String,
    /// Headers, except `Authorization`.
    pub headers: Vec<(String, String)>,
    /// `Bearer` or `Basic`, when an `Authorization` header came.
    pub auth_scheme: Option<String>,
    /// The body, as text.
    pub body: String,
    /// The status answered (0: no answer sent, e.g. a dropped connection or a client that gave up).
    pub status: u16,
    /// When it arrived (the fake's clock).
    pub at: SystemTime,
}

impl RecordedRequest {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct FakeDyno {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) process_type: String,
    pub(crate) command: String,
    pub(crate) size: String,
    pub(crate) created: SystemTime,
    /// Listed until this time (draining after a scale-down).
    pub(crate) gone_at: Option<SystemTime>,
}

#[derive(Debug, Clone)]
pub(crate) struct FakeFormation {
    pub(crate) id: String,
    pub(crate) process_type: String,
    pub(crate) command: String,
    pub(crate) size: String,
    pub(crate) quantity: u32,
    pub(crate) created: SystemTime,
    pub(crate) updated: SystemTime,
}

#[derive(Debug, Clone)]
pub(crate) struct FakeApp {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) accounts: Vec<String>,
    pub(crate) formations: Vec<FakeFormation>,
    pub(crate) dynos: Vec<FakeDyno>,
    pub(crate) release: ReleaseRef,
}

/// Heroku's dyno sizes: canonical name and per-type limit.
pub(crate) const SIZES: [(&str, Option<u32>); 9] = [
    ("Eco", Some(1)),
    ("Basic", Some(1)),
    ("Standard-1X", None),
    ("Standard-2X", None),
    ("Performance-M", Some(10)),
    ("Performance-L", Some(10)),
    ("Private-S", Some(10)),
    ("Private-M", Some(10)),
    ("Private-L", Some(10)),
];

pub(crate) fn canonical_size(name: &str) -> Option<&'static str> {
    SIZES.iter().map(|(n, _)| *n).find(|n| n.eq_ignore_ascii_case(name))
}

pub(crate) struct State {
    pub(crate) config: FakeConfig,
    pub(crate) apps: Vec<FakeApp>,
    pub(crate) tokens: HashMap<String, String>,
    buckets: HashMap<String, (f64, SystemTime)>,
    pub(crate) type_limits: HashMap<(String, String), u32>,
    pub(crate) faults: Vec<Fault>,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) seq: u64,
    counter: u64,
}

impl State {
    pub(crate) fn new(config: FakeConfig) -> Self {
        Self {
            config,
            apps: Vec::new(),
            tokens: HashMap::new(),
            buckets: HashMap::new(),
            type_limits: HashMap::new(),
            faults: Vec::new(),
            requests: Vec::new(),
            seq: 0,
            counter: 0,
        }
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.config.clock.now()
    }

    /// A fresh version-4 UUID (deterministic sequence).
    pub(crate) fn uuid(&mut self) -> String {
        self.counter += 1;
        let mut rng = fastrand::Rng::with_seed(self.counter);
        let hex = format!("{:016x}{:016x}", rng.u64(..), rng.u64(..));
        format!("{}-{}-4{}-8{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
    }

    pub(crate) fn add_app(&mut self, name: &str, account: &str) {
        let id = self.uuid();
        let release = ReleaseRef { id: self.uuid(), version: 42 };
        self.apps.push(FakeApp {
            id,
            name: name.to_owned(),
            accounts: vec![account.to_owned()],
            formations: Vec::new(),
            dynos: Vec::new(),
            release,
        });
    }

    pub(crate) fn grant(&mut self, app: &str, account: &str) {
        if let Some(a) = self.app_mut(app) {
            a.accounts.push(account.to_owned());
        }
    }

    pub(crate) fn app_index(&self, id_or_name: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.name == id_or_name || a.id == id_or_name)
    }

    fn app_mut(&mut self, id_or_name: &str) -> Option<&mut FakeApp> {
        let i = self.app_index(id_or_name)?;
        Some(&mut self.apps[i])
    }

    pub(crate) fn add_formation(&mut self, app: &str, process_type: &str, command: &str, size: &str, quantity: u32) {
        let id = self.uuid();
        let now = self.now();
        let size = canonical_size(size).unwrap_or("Standard-1X").to_owned();
        if let Some(a) = self.app_mut(app) {
            a.formations.push(FakeFormation {
                id,
                process_type: process_type.to_owned(),
                command: command.to_owned(),
                size,
                quantity: 0,
                created: now,
                updated: now,
            });
        }
        self.apply_quantity(app, process_type, quantity);
    }

    pub(crate) fn add_one_off(&mut self, app: &str, dyno_type: &str, command: &str) {
        let id = self.uuid();
        let now = self.now();
        if let Some(a) = self.app_mut(app) {
            let n = a.dynos.iter().filter(|d| d.process_type == dyno_type).count() + 1;
            a.dynos.push(FakeDyno {
                id,
                name: format!("{dyno_type}.{n}"),
                process_type: dyno_type.to_owned(),
                command: command.to_owned(),
                size: "Standard-1X".into(),
                created: now,
                gone_at: None,
            });
        }
    }

    pub(crate) fn quantity(&self, app: &str, process_type: &str) -> Option<u32> {
        let a = &self.apps[self.app_index(app)?];
        a.formations.iter().find(|f| f.process_type == process_type).map(|f| f.quantity)
    }

    /// Sets a quantity and adds or stops dynos: new ones get the next numbers; the highest numbers stop first.
    pub(crate) fn apply_quantity(&mut self, app: &str, process_type: &str, quantity: u32) {
        let now = self.now();
        let drain = self.config.drain_delay;
        let mut ids: Vec<String> = (0..quantity).map(|_| self.uuid()).collect();
        let fir = self.config.fir_seed;
        let mut fir_names: Vec<String> = match fir {
            Some(_) => (0..quantity)
                .map(|_| self.uuid().replace('-', ""))
                .map(|h| format!("{process_type}-{}-{}", &h[..10], &h[20..25]))
                .collect(),
            None => Vec::new(),
        };
        let Some(a) = self.app_mut(app) else { return };
        let Some(f) = a.formations.iter_mut().find(|f| f.process_type == process_type) else { return };
        f.quantity = quantity;
        f.updated = now;
        let (command, size) = (f.command.clone(), f.size.clone());
        a.dynos.retain(|d| d.gone_at.is_none_or(|g| g > now));
        let number = |d: &FakeDyno| d.name.rsplit_once('.').and_then(|(_, n)| n.parse::<u32>().ok()).unwrap_or(0);
        let mut live: Vec<usize> = (0..a.dynos.len())
            .filter(|&i| a.dynos[i].process_type == process_type && a.dynos[i].gone_at.is_none())
            .collect();
        match fir {
            // Fir: the victims are not the highest numbers; a seeded shuffle stands for Heroku's unknown rule.
            Some(seed) => live.sort_by_key(|&i| fir_rank(&a.dynos[i].id, seed)),
            // Cedar: the highest-numbered dynos stop first.
            None => live.sort_by_key(|&i| std::cmp::Reverse(number(&a.dynos[i]))),
        }
        let have = live.len() as u32;
        if quantity < have {
            for &i in live.iter().take((have - quantity) as usize) {
                if drain.is_zero() {
                    a.dynos[i].gone_at = Some(now);
                } else {
                    a.dynos[i].gone_at = Some(now + drain);
                }
            }
            a.dynos.retain(|d| d.gone_at.is_none_or(|g| g > now));
        } else {
            let mut taken: Vec<u32> = a.dynos.iter().filter(|d| d.process_type == process_type).map(number).collect();
            for _ in have..quantity {
                let n = (1..).find(|n| !taken.contains(n)).expect("a free number");
                taken.push(n);
                let name = fir_names.pop().unwrap_or_else(|| format!("{process_type}.{n}"));
                a.dynos.push(FakeDyno {
                    id: ids.pop().expect("enough ids"),
                    name,
                    process_type: process_type.to_owned(),
                    command: command.clone(),
                    size: size.clone(),
                    created: now,
                    gone_at: None,
                });
            }
        }
    }

    pub(crate) fn dyno_names(&self, app: &str, process_type: &str) -> Vec<String> {
        let now = self.now();
        let Some(i) = self.app_index(app) else { return Vec::new() };
        self.apps[i]
            .dynos
            .iter()
            .filter(|d| d.process_type == process_type && d.gone_at.is_none_or(|g| g > now))
            .map(|d| d.name.clone())
            .collect()
    }

    pub(crate) fn formation_json(&self, app: &FakeApp, f: &FakeFormation) -> Formation {
        Formation {
            app: IdName { id: app.id.clone(), name: app.name.clone() },
            command: f.command.clone(),
            created_at: format_rfc3339(f.created),
            dyno_size: IdName { id: size_uuid(&f.size), name: f.size.clone() },
            id: f.id.clone(),
            quantity: f.quantity,
            size: f.size.clone(),
            process_type: f.process_type.clone(),
            updated_at: format_rfc3339(f.updated),
        }
    }

    pub(crate) fn dyno_json(&self, app: &FakeApp, d: &FakeDyno) -> Dyno {
        let now = self.now();
        let booted = d.created + self.config.boot_delay;
        let state = if d.gone_at.is_some() {
            "up"
        } else if now < booted && d.process_type != "run" {
            "starting"
        } else {
            "up"
        };
        Dyno {
            app: IdName { id: app.id.clone(), name: app.name.clone() },
            attach_url: None,
            command: d.command.clone(),
            created_at: format_rfc3339(d.created),
            id: d.id.clone(),
            name: d.name.clone(),
            release: app.release.clone(),
            size: d.size.clone(),
            state: state.into(),
            process_type: d.process_type.clone(),
            updated_at: format_rfc3339(if now < booted { d.created } else { booted }),
        }
    }

    /// Refills and takes one token; `Err(remaining)` when the pool is empty.
    pub(crate) fn take_token(&mut self, account: &str) -> Result<u64, u64> {
        let tokens = self.refill(account);
        let now = self.now();
        if tokens >= 1.0 {
            self.buckets.insert(account.to_owned(), (tokens - 1.0, now));
            Ok((tokens - 1.0).floor() as u64)
        } else {
            self.buckets.insert(account.to_owned(), (tokens, now));
            Err(0)
        }
    }

    fn refill(&self, account: &str) -> f64 {
        let now = self.now();
        let cap = self.config.rate_capacity;
        match self.buckets.get(account) {
            None => cap,
            Some((tokens, at)) => {
                let elapsed = now.duration_since(*at).unwrap_or_default().as_secs_f64();
                (tokens + elapsed * self.config.rate_refill_per_sec).min(cap)
            }
        }
    }

    pub(crate) fn peek_tokens(&self, account: &str) -> f64 {
        self.refill(account)
    }

    pub(crate) fn set_tokens(&mut self, account: &str, tokens: f64) {
        let now = self.now();
        self.buckets.insert(account.to_owned(), (tokens, now));
    }

    /// The action of the first fault matching the request, consuming one use of it.
    pub(crate) fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultAction> {
        let i = self.faults.iter().position(|f| {
            f.times > 0
                && f.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
                && f.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
        })?;
        self.faults[i].times -= 1;
        let action = self.faults[i].action.clone();
        if self.faults[i].times == 0 {
            self.faults.remove(i);
        }
        Some(action)
    }
}

fn fir_rank(id: &str, seed: u64) -> u64 {
    id.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

pub(crate) fn size_uuid(size: &str) -> String {
    let i = SIZES.iter().position(|(n, _)| *n == size).unwrap_or(0);
    format!("e9c1a4b0-3a4f-4d2b-9c1e-1f2a3b4c5d{i:02x}")
}
