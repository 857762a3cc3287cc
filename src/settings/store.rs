//! A store configured apart from the source (`DYNO_SCALER_STORE_URL`, `store_url`): where every process type keeps
//! its lease, its pause and what the policy learned, instead of the source's own store. For a source without a
//! store of its own, or to keep them in one place for several sources.

use std::sync::Arc;
use std::time::Duration;

use crate::core::{Secret, Store};

use super::ConfigError;

/// How long a statement or command of the store may take.
#[cfg(any(
    feature = "sidekiq",
    feature = "resque",
    feature = "delayed-job",
    feature = "good-job",
    feature = "solid-queue"
))]
const TIMEOUT: Duration = Duration::from_secs(5);

/// The learned table a Postgres store uses unless `DYNO_SCALER_STORE_TABLE` names another.
pub const DEFAULT_TABLE: &str = "dyno_scaler_learned";

/// The store's settings, checked.
#[derive(Clone)]
pub struct StoreSettings {
    url: Secret,
    /// The Postgres learned table (`DYNO_SCALER_STORE_TABLE`, `store_table`).
    table: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Redis,
    Postgres,
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::core::secret::debug_source(f, "StoreSettings", &self.url, &[("table", &self.table)])
    }
}

impl StoreSettings {
    /// Checks `url` (from `setting`) and the table; `None` when no store is configured apart from the sources.
    pub fn parse(url: Option<(String, &str)>, table: Option<(String, &str)>) -> Result<Option<Self>, ConfigError> {
        let Some((url, setting)) = url else {
            return match table {
                Some((_, t)) => Err(ConfigError(format!("{t} is set but no store URL is (DYNO_SCALER_STORE_URL)"))),
                None => Ok(None),
            };
        };
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let kind = match scheme.as_deref() {
            Some("redis" | "rediss") => Kind::Redis,
            Some("postgres" | "postgresql") => Kind::Postgres,
            _ => {
                return Err(ConfigError(format!(
                    "{setting}: not a store URL (the value is not shown); use redis://, rediss:// or postgres://"
                )));
            }
        };
        let table = match table {
            Some((_, s)) if kind == Kind::Redis => {
                return Err(ConfigError(format!("{s}: a table is for a Postgres store; the store URL is Redis")));
            }
            Some((t, s)) => {
                #[cfg(any(feature = "delayed-job", feature = "good-job", feature = "solid-queue"))]
                if crate::postgres::quote_table(&t).is_none() {
                    return Err(ConfigError(format!(
                        "{s}: {t:?} is not a table name (letters, digits and _, optionally schema.table)"
                    )));
                }
                let _ = s;
                t
            }
            None => DEFAULT_TABLE.to_owned(),
        };
        Ok(Some(Self { url: Secret::new(url), table, kind }))
    }

    /// `redis` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Redis => "redis",
            Kind::Postgres => "postgres",
        }
    }

    /// The URL with its password redacted.
    pub fn redacted_url(&self) -> String {
        crate::core::secret::redact_url(self.url.expose())
    }

    /// The store. Connects lazily: no I/O here.
    pub fn build(&self) -> Result<Arc<dyn Store>, ConfigError> {
        #[allow(unused)]
        let fail = |e: crate::core::SettingError| {
            let setting = if e.setting == "url" { "DYNO_SCALER_STORE_URL" } else { "DYNO_SCALER_STORE_TABLE" };
            ConfigError(format!("{setting}: {}", e.message))
        };
        match self.kind {
            #[cfg(any(feature = "sidekiq", feature = "resque"))]
            Kind::Redis => {
                use crate::redis::{RedisStore, TlsVerify, connect};
                let conn = connect("store", &self.url, TlsVerify::default(), TIMEOUT).map_err(fail)?;
                Ok(Arc::new(RedisStore::new(conn, "store", &self.url, "")))
            }
            #[cfg(any(feature = "delayed-job", feature = "good-job", feature = "solid-queue"))]
            Kind::Postgres => {
                use crate::postgres::{Db, PostgresStore};
                let db = Db::new("store", &self.url, TIMEOUT, Some(&self.table)).map_err(fail)?;
                Ok(Arc::new(PostgresStore::new(db, "dyno_scaler")))
            }
            #[allow(unreachable_patterns)]
            k => Err(ConfigError(format!(
                "DYNO_SCALER_STORE_URL: this build has no {} store (its Cargo features leave it out)",
                match k {
                    Kind::Redis => "Redis",
                    Kind::Postgres => "Postgres",
                }
            ))),
        }
    }
}
