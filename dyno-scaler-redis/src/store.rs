//! [`RedisStore`]: the lease, the pause and the learned summary in Redis, beside a job library's keys.

use std::sync::Arc;

use async_trait::async_trait;
use dyno_scaler_core::{Lease, Secret, SourceError, Store};
use redis::Value;

use crate::lease::RedisLease;
use crate::{Conn, LEARNED_TTL, as_str, learned_key, map_redis_error};

/// A [`Store`] in Redis: the lease is a key set with NX and a TTL ([`crate::lease`]), the learned summary a key
/// kept for [`LEARNED_TTL`] after its last write, both under `prefix` (the job library's namespace, so they sit
/// beside its keys). Errors name the source it serves (`sidekiq`, `resque`) and never show the URL's password.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    name: &'static str,
    url: Secret,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("name", &self.name).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on `conn` (to `url`), its keys under `prefix`, its errors naming `name`.
    pub fn new(conn: Conn, name: &'static str, url: &Secret, prefix: &str) -> Self {
        Self { conn, name, url: url.clone(), prefix: prefix.to_owned() }
    }

    fn err(&self, e: redis::RedisError) -> SourceError {
        map_redis_error(self.name, &self.url, e)
    }
}

#[async_trait]
impl Store for RedisStore {
    fn name(&self) -> &str {
        "redis"
    }

    fn lease(&self, process_type: &str) -> Arc<dyn Lease> {
        Arc::new(RedisLease::new(self.conn.clone(), (self.name, &self.url), &self.prefix, process_type))
    }

    /// `SET <learned_key> summary EX <LEARNED_TTL>`.
    async fn remember(&self, process_type: &str, summary: &str) -> Result<(), SourceError> {
        redis::cmd("SET")
            .arg(learned_key(&self.prefix, process_type))
            .arg(summary)
            .arg("EX")
            .arg(LEARNED_TTL.as_secs())
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(e))
    }

    /// `GET <learned_key>`; a key of another type is no summary.
    async fn recall(&self, process_type: &str) -> Result<Option<String>, SourceError> {
        let key = learned_key(&self.prefix, process_type);
        let v: Value =
            redis::cmd("GET").arg(key).query_async(&mut self.conn.clone()).await.or_else(|e| match e.code() {
                Some("WRONGTYPE") => Ok(Value::Nil),
                _ => Err(self.err(e)),
            })?;
        Ok(as_str(&v).map(str::to_owned))
    }
}
