//! The Redis event path against real `redis-server`s: client tracking, the keyspace fallback when an ACL refuses
//! `CLIENT`, polling when neither is there, and a restart mid-run.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::conformance::{self, events_reach, settled};
use dyno_scaler_core::events::{EventMode, EventStatus, Hints};
use dyno_scaler_core::{Capabilities, Events, QueueSource, Secret, Snapshot, Source, SourceError};
use dyno_scaler_redis::TlsVerify;
use dyno_scaler_redis::events::{Watch, watch};
use dyno_scaler_test_support::{OwnRedis, redis_url, unique};
use tokio::sync::watch::Receiver;

/// A source with only an event path, watching `prefixes` on `url`.
#[derive(Debug)]
struct Watcher {
    url: Secret,
    prefixes: Vec<String>,
}

#[async_trait]
impl QueueSource for Watcher {
    fn name(&self) -> &str {
        "test"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        Ok(Snapshot::default())
    }
}

#[async_trait]
impl Events for Watcher {
    async fn watch(&self, hints: &Hints) -> Result<(), SourceError> {
        let w = Watch {
            name: "test",
            url: &self.url,
            verify: TlsVerify::Full,
            timeout: Duration::from_secs(2),
            prefixes: &self.prefixes,
        };
        watch(w, hints).await
    }
}

/// Starts the supervised event path on `prefixes`; the stop sender ends it when dropped.
fn start(url: &str, prefixes: &[&str]) -> (Hints, Receiver<EventStatus>, tokio::sync::watch::Sender<bool>) {
    let source =
        Arc::new(Watcher { url: Secret::new(url), prefixes: prefixes.iter().map(|p| p.to_string()).collect() });
    conformance::watching(Source::new(source.clone()).with_events(source))
}

async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn cmd(c: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(c).await.unwrap()
}

#[tokio::test]
async fn client_tracking_hears_pushes_and_schedules_under_the_prefixes_only() {
    let ns = unique("ev_track");
    let (queue, schedule) = (format!("{ns}:queue:"), format!("{ns}:schedule"));
    let (hints, mut status, _stop) = start(&redis_url(), &[&queue, &schedule]);
    let s = settled(&mut status, |s| s.mode != EventMode::Starting).await;
    assert_eq!(s.mode, EventMode::ClientTracking, "{s}");
    let mut c = conn(&redis_url()).await;
    cmd(&mut c, &["LPUSH", &format!("{queue}default"), "{}"]).await;
    events_reach(&hints, 1).await;
    cmd(&mut c, &["ZADD", &schedule, "1", "{}"]).await;
    events_reach(&hints, 2).await;
    // A key outside the prefixes is not heard (the two writes above prove events arrive at all).
    let before = hints.events();
    cmd(&mut c, &["SADD", &format!("{ns}:queues"), "default"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hints.events(), before, "a write outside the prefixes woke the scaler");
    cmd(&mut c, &["DEL", &format!("{queue}default"), &schedule, &format!("{ns}:queues")]).await;
}

/// A server whose user `limited` may not run `CLIENT` (nor, with `config` false, `CONFIG`).
async fn limited(server: &OwnRedis, config: bool, keyspace: &str) -> String {
    let mut c = conn(&server.url()).await;
    let rules = if config { "-client" } else { "-client -config" };
    let mut acl = vec!["ACL", "SETUSER", "limited", "on", ">secret-pw", "~*", "&*", "+@all"];
    acl.extend(rules.split(' '));
    cmd(&mut c, &acl).await;
    cmd(&mut c, &["CONFIG", "SET", "notify-keyspace-events", keyspace]).await;
    format!("redis://limited:secret-pw@127.0.0.1:{}", server.port)
}

#[tokio::test]
async fn refused_client_tracking_falls_back_to_keyspace_notifications_and_says_so() {
    let server = OwnRedis::start();
    let url = limited(&server, true, "Kl").await;
    let (hints, mut status, _stop) = start(&url, &["queue:", "schedule"]);
    let s = settled(&mut status, |s| s.mode != EventMode::Starting).await;
    assert_eq!(s.mode, EventMode::KeyspaceNotifications, "{s}");
    assert!(s.detail.contains("CLIENT TRACKING refused"), "{s}");
    assert!(!s.to_string().contains("secret-pw"), "{s}");
    let mut c = conn(&server.url()).await;
    cmd(&mut c, &["RPUSH", "queue:default", "{}"]).await;
    events_reach(&hints, 1).await;
}

#[tokio::test]
async fn refused_client_tracking_without_keyspace_events_polls_and_says_why() {
    let server = OwnRedis::start();
    let url = limited(&server, true, "").await;
    let (_hints, mut status, _stop) = start(&url, &["queue:"]);
    let s = settled(&mut status, |s| s.mode != EventMode::Starting).await;
    assert_eq!(s.mode, EventMode::Polling, "{s}");
    assert!(s.detail.contains("CLIENT TRACKING refused") && s.detail.contains("notify-keyspace-events"), "{s}");
}

#[tokio::test]
async fn without_config_a_probe_write_tells_whether_keyspace_notifications_are_on() {
    // As on Heroku's Redis: CONFIG is refused, the flags are set from outside.
    let server = OwnRedis::start();
    let url = limited(&server, false, "Kl").await;
    let (hints, mut status, _stop) = start(&url, &["app:queue:"]);
    let s = settled(&mut status, |s| s.mode != EventMode::Starting).await;
    assert_eq!(s.mode, EventMode::KeyspaceNotifications, "{s}");
    assert!(s.detail.contains("CONFIG GET refused; a probe write was heard"), "{s}");
    let mut c = conn(&server.url()).await;
    let before = hints.events();
    cmd(&mut c, &["LPUSH", "app:queue:default", "{}"]).await;
    events_reach(&hints, before + 1).await;
    // The probe left nothing behind.
    assert_eq!(cmd(&mut c, &["KEYS", "app:queue:dyno-scaler-probe*"]).await, redis::Value::Array(vec![]));

    let server = OwnRedis::start();
    let url = limited(&server, false, "").await;
    let (_hints, mut status, _stop) = start(&url, &["queue:"]);
    let s = settled(&mut status, |s| s.mode != EventMode::Starting).await;
    assert_eq!(s.mode, EventMode::Polling, "{s}");
    assert!(s.detail.contains("CONFIG GET refused") && s.detail.contains("heroku redis:keyspace-notifications"), "{s}");
}

#[tokio::test]
async fn a_restarted_server_is_listened_to_again() {
    let mut server = OwnRedis::start();
    let (hints, mut status, _stop) = start(&server.url(), &["queue:"]);
    assert_eq!(settled(&mut status, |s| s.mode != EventMode::Starting).await.mode, EventMode::ClientTracking);
    server.stop();
    let s = settled(&mut status, |s| s.mode == EventMode::Polling).await;
    assert!(s.detail.contains("event path lost"), "{s}");
    server.restart();
    settled(&mut status, |s| s.mode == EventMode::ClientTracking).await;
    let before = hints.events();
    let mut c = conn(&server.url()).await;
    cmd(&mut c, &["LPUSH", "queue:default", "{}"]).await;
    events_reach(&hints, before + 1).await;
}
