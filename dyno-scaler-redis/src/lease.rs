//! A process type's [`Lease`] in Redis: a key set with NX and a TTL, renewed by its holder and deleted only with
//! the holder's token (scripts, so each is one atomic round trip), and the pause in a key beside it.

use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::lease::{Lease, LeaseState, Pause};
use dyno_scaler_core::{Secret, SourceError};
use redis::Value;

use crate::{as_str, items, map_redis_error};

/// Takes the lease when free, renews it when `ARGV[1]` holds it; returns `{held, holder, pause}`.
const CAMPAIGN: &str = r"
local cur = redis.call('GET', KEYS[1])
local held = 0
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]); held = 1
elseif not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]); held = 1; cur = ARGV[1]
end
return {held, cur, redis.call('GET', KEYS[2])}
";

/// Deletes the lease only when `ARGV[1]` holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The lease of one process type, keyed `<prefix>dyno-scaler:lease:<process type>` (the pause:
/// `<prefix>dyno-scaler:pause:<process type>`), beside the queue's own keys.
#[derive(Clone)]
pub struct RedisLease {
    conn: crate::Conn,
    name: &'static str,
    url: Secret,
    key: String,
    pause_key: String,
}

impl std::fmt::Debug for RedisLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLease").field("key", &self.key).finish()
    }
}

impl RedisLease {
    /// `process_type`'s lease over `conn` (the source's connection to `url`), under the namespace `prefix`.
    pub fn new(conn: crate::Conn, (name, url): (&'static str, &Secret), prefix: &str, process_type: &str) -> Self {
        Self {
            conn,
            name,
            url: url.clone(),
            key: format!("{prefix}dyno-scaler:lease:{process_type}"),
            pause_key: format!("{prefix}dyno-scaler:pause:{process_type}"),
        }
    }

    fn err(&self, e: redis::RedisError) -> SourceError {
        map_redis_error(self.name, &self.url, e)
    }
}

/// A pause read back; one that cannot be read is a pause until resumed (never scaling is the safe reading).
fn pause(v: &Value) -> Option<Pause> {
    let raw = as_str(v)?;
    Some(serde_json::from_str(raw).unwrap_or_else(|_| Pause::until_resumed(format!("unreadable: {raw:.40}"))))
}

#[async_trait]
impl Lease for RedisLease {
    fn store(&self) -> &str {
        "redis"
    }

    async fn campaign(&self, me: &str, ttl: Duration) -> Result<LeaseState, SourceError> {
        let v: Value = redis::Script::new(CAMPAIGN)
            .key(&self.key)
            .key(&self.pause_key)
            .arg(me)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(e))?;
        let r = items(&v);
        let held = r.first().and_then(crate::as_i64) == Some(1);
        let holder = r.get(1).and_then(as_str).map(str::to_owned);
        Ok(LeaseState::new(held, holder, r.get(2).and_then(pause)))
    }

    async fn read(&self) -> Result<LeaseState, SourceError> {
        let (holder, p): (Value, Value) = redis::pipe()
            .get(&self.key)
            .get(&self.pause_key)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(e))?;
        Ok(LeaseState::new(false, as_str(&holder).map(str::to_owned), pause(&p)))
    }

    async fn release(&self, me: &str) -> Result<(), SourceError> {
        let _: Value = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(me)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn set_pause(&self, p: Option<&Pause>) -> Result<(), SourceError> {
        let mut conn = self.conn.clone();
        let Some(p) = p else {
            return redis::cmd("DEL").arg(&self.pause_key).query_async::<()>(&mut conn).await.map_err(|e| self.err(e));
        };
        let json = serde_json::to_string(p).expect("a pause encodes");
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.pause_key).arg(json);
        if let Some(until) = p.until {
            // The key ends with the pause (a second late at most: the scaler reads `until` too).
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
            cmd.arg("EXAT").arg(until.max(now + 1) + 1);
        }
        cmd.query_async::<()>(&mut conn).await.map_err(|e| self.err(e))
    }
}
