//! The Redis event path: a dedicated RESP3 connection that hears of every write to the queue keys.
//!
//! First choice is client-side caching in broadcast mode (`CLIENT TRACKING ON BCAST PREFIX ...`, Redis 6+): it
//! needs no server setting, and every write to a key under a prefix sends an invalidation. Where the server
//! refuses it (an ACL without `client`, a proxy), keyspace notifications serve when the server has them on
//! (`notify-keyspace-events` with `K` and `l`, or `A`); else there is no event path and the poll alone finds work.
//! A message never says what changed: it only wakes the scaler, whose snapshot decides.

use std::time::Duration;

use dyno_scaler_core::events::{EventMode, Hints};
use dyno_scaler_core::{Secret, SourceError};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{TlsVerify, as_str, client_url, map_redis_error, scrub_url};

/// How often the event connection is pinged: a connection cut without a close (a partition) is found this fast.
const PING_EVERY: Duration = Duration::from_secs(15);

/// Where to listen: the source's name and connection settings, and the key prefixes to watch (each a full key
/// prefix, namespace included: `queue:`, `schedule`, `resque:queue:` ...; they must not overlap).
#[derive(Debug, Clone, Copy)]
pub struct Watch<'a> {
    /// The source's name, for messages.
    pub name: &'a str,
    /// The Redis URL (secret).
    pub url: &'a Secret,
    /// TLS verification of a `rediss://` URL.
    pub verify: TlsVerify,
    /// Bound on connecting and on each command.
    pub timeout: Duration,
    /// The key prefixes.
    pub prefixes: &'a [String],
}

/// Runs the event path until the connection breaks (an error: the caller backs off and calls again). Returns
/// `Ok(())` after saying why when the server offers no path.
pub async fn watch(w: Watch<'_>, hints: &Hints) -> Result<(), SourceError> {
    let err = |e| map_redis_error(w.name, w.url, e);
    let client = redis::Client::open(client_url(w.url.expose(), w.verify)).map_err(|e| SourceError::Other {
        source_name: w.name.to_owned(),
        message: scrub_url(&e.to_string(), w.url),
    })?;
    let info = client.get_connection_info().clone();
    let db = info.redis_settings().db();
    let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(resp3);
    let client = redis::Client::open(info).map_err(err)?;
    let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(w.timeout))
        .set_response_timeout(Some(w.timeout))
        .set_push_sender(tx);
    let mut conn = match client.get_multiplexed_async_connection_with_config(&config).await {
        Ok(c) => c,
        Err(e) if refused(&e) => {
            hints.polling(format!("RESP3 refused ({}): Redis 6 or later is needed for events", reason(w, &e)));
            return Ok(());
        }
        Err(e) => return Err(err(e)),
    };
    let mut tracking = redis::cmd("CLIENT");
    tracking.arg("TRACKING").arg("ON").arg("BCAST");
    for p in w.prefixes {
        tracking.arg("PREFIX").arg(p);
    }
    match tracking.query_async::<()>(&mut conn).await {
        Ok(()) => hints.active(EventMode::ClientTracking, format!("CLIENT TRACKING BCAST on {}", list(w.prefixes))),
        Err(e) if !refused(&e) => return Err(err(e)),
        Err(e) => {
            let why = format!("CLIENT TRACKING refused: {}", reason(w, &e));
            match keyspace(w, db, &mut conn, &mut pushes).await? {
                Ok(how) => hints.active(EventMode::KeyspaceNotifications, format!("{why}; {how}")),
                Err(not) => {
                    hints.polling(format!("{why}; {not}"));
                    return Ok(());
                }
            }
        }
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            push = pushes.recv() => match push {
                None => return Err(lost(w, "the connection closed")),
                Some(p) => match p.kind {
                    PushKind::Disconnection => return Err(lost(w, "the connection closed")),
                    PushKind::Invalidate | PushKind::PMessage | PushKind::Message => hints.wake(),
                    _ => {}
                },
            },
            _ = ping.tick() => {
                redis::cmd("PING").query_async::<()>(&mut conn).await.map_err(err)?;
            }
        }
    }
}

/// The keyspace-notification fallback: subscribes to the prefixes' keyspace channels when the server publishes
/// list events, and says how it knows (`Ok(Ok(how))`) or why not (`Ok(Err(why))`). Where `CONFIG` is refused
/// (Heroku's Redis, which sets the flags through `heroku redis:keyspace-notifications`), a probe finds out: an
/// `LPUSH` and `DEL` of a key of our own under the first prefix, which no job system reads (it is in no queue set).
async fn keyspace(
    w: Watch<'_>,
    db: i64,
    conn: &mut MultiplexedConnection,
    pushes: &mut UnboundedReceiver<PushInfo>,
) -> Result<Result<String, String>, SourceError> {
    let err = |e| map_redis_error(w.name, w.url, e);
    let flags = match redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events").query_async(&mut *conn).await {
        Ok(v) => Some(config_value(v)),
        Err(e) if refused(&e) => None,
        Err(e) => return Err(err(e)),
    };
    if let Some(flags) = &flags
        && !keyspace_on(flags)
    {
        return Ok(Err(format!("notify-keyspace-events is {flags:?} (events need K and l, or A)")));
    }
    for p in w.prefixes {
        conn.psubscribe(format!("__keyspace@{db}__:{}*", glob_escape(p))).await.map_err(err)?;
    }
    let on = list(w.prefixes);
    if let Some(flags) = flags {
        return Ok(Ok(format!("keyspace notifications ({flags:?}) on {on}")));
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let probe =
        format!("{}dyno-scaler-probe:{}:{nanos}", w.prefixes.first().map_or("", String::as_str), std::process::id());
    let written =
        redis::pipe().lpush(&probe, "probe").ignore().del(&probe).ignore().query_async::<()>(&mut *conn).await;
    match written {
        Ok(()) => {}
        Err(e) if refused(&e) => {
            return Ok(Err(format!("CONFIG GET refused, and so was a probe write ({})", reason(w, &e))));
        }
        Err(e) => return Err(err(e)),
    }
    let heard = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(p) = pushes.recv().await {
            if p.kind == PushKind::PMessage && p.data.iter().any(|v| as_str(v).is_some_and(|c| c.ends_with(&probe))) {
                return true;
            }
        }
        false
    });
    Ok(match heard.await {
        Ok(true) => Ok(format!("keyspace notifications on {on} (CONFIG GET refused; a probe write was heard)")),
        _ => Err("CONFIG GET refused, and a probe write raised no keyspace notification: turn them on (Heroku: \
                  `heroku redis:keyspace-notifications -c Kl`)"
            .into()),
    })
}

/// The value of a one-key `CONFIG GET` reply (an array `[name, value]` in RESP2, a map in RESP3).
fn config_value(v: Value) -> String {
    match v {
        Value::Map(kv) => kv.first().and_then(|(_, v)| as_str(v)).unwrap_or_default().to_owned(),
        Value::Array(a) => a.get(1).and_then(as_str).unwrap_or_default().to_owned(),
        _ => String::new(),
    }
}

/// Whether `notify-keyspace-events` publishes keyspace events for lists (`K` with `l`, or `A`, which is `g$lshzxetd`).
pub fn keyspace_on(flags: &str) -> bool {
    flags.contains('K') && (flags.contains('l') || flags.contains('A'))
}

/// `p` with the glob characters of `PSUBSCRIBE` patterns escaped.
fn glob_escape(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The server answered with an error (a refused or unknown command, a missing permission), as opposed to a lost
/// connection.
fn refused(e: &redis::RedisError) -> bool {
    !(e.is_io_error() || e.is_timeout() || e.is_connection_refusal() || e.is_connection_dropped())
}

fn reason(w: Watch<'_>, e: &redis::RedisError) -> String {
    scrub_url(&e.to_string(), w.url)
}

fn lost(w: Watch<'_>, what: &str) -> SourceError {
    SourceError::Unavailable { source_name: w.name.to_owned(), message: format!("event path: {what}"), cause: None }
}

fn list(prefixes: &[String]) -> String {
    prefixes.iter().map(|p| format!("{p}*")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_flags_need_keyspace_and_lists() {
        assert!(keyspace_on("Kl"));
        assert!(keyspace_on("KA"));
        assert!(keyspace_on("AKE"));
        assert!(!keyspace_on("El"));
        assert!(!keyspace_on("Kz"));
        assert!(!keyspace_on(""));
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("my[app]*:queue:"), "my\\[app\\]\\*:queue:");
        assert_eq!(glob_escape("queue:"), "queue:");
    }

    #[test]
    fn config_replies_in_both_protocols() {
        let s = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        assert_eq!(config_value(Value::Array(vec![s("notify-keyspace-events"), s("Kl")])), "Kl");
        assert_eq!(config_value(Value::Map(vec![(s("notify-keyspace-events"), s("AK"))])), "AK");
        assert_eq!(config_value(Value::Nil), "");
    }
}
