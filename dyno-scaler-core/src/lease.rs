//! Exactly one active scaler per process type: a [`Lease`] in the store the process type already uses (a Redis key
//! set with NX and a TTL, a Postgres advisory lock on a session of its own, memory for tests), and the [`Pause`]
//! kept beside it, where every instance sees it.
//!
//! A scaler given a lease acts (scales, quiets, keeps what it learned) only while it holds the lease; the others
//! follow warm: they read and decide every cycle, so one of them takes over within the lease's TTL plus one
//! interval when the holder dies. A holder that cannot renew (its store connection cut) stops acting at once, and
//! in any case `ttl / 4` before the store lets the lease go, so two never act at the same time.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::SourceError;

/// A pause of a process type: it is never scaled while the pause lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Pause {
    /// When it ends, in Unix seconds (`None`: until `resume`).
    pub until: Option<u64>,
    /// Who paused it (the host and process of `dyno-scaler pause`).
    pub by: String,
}

impl Pause {
    /// A pause by `by` until resumed (a store reads an unreadable pause so: never scaling is the safe reading).
    pub fn until_resumed(by: impl Into<String>) -> Self {
        Self { until: None, by: by.into() }
    }

    /// A pause by `by` for `duration` from `now` (`None`: until resumed).
    pub fn new(by: impl Into<String>, now: SystemTime, duration: Option<Duration>) -> Self {
        let until = duration.map(|d| unix_secs(now + d).max(unix_secs(now) + 1));
        Self { until, by: by.into() }
    }

    /// Whether it still holds at `now`.
    pub fn holds_at(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|u| unix_secs(now) < u)
    }

    /// When it ends, as a time.
    pub fn until_time(&self) -> Option<SystemTime> {
        self.until.map(|u| SystemTime::UNIX_EPOCH + Duration::from_secs(u))
    }

    /// "until 2026-11-28T10:00:00Z" or "until resumed".
    pub fn describe(&self) -> String {
        match self.until_time() {
            Some(t) => format!("until {}", crate::timefmt::format_rfc3339(t)),
            None => "until resumed".to_owned(),
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// What the store says about a process type's lease and pause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LeaseState {
    /// Whether the caller holds the lease (after [`Lease::campaign`]; always `false` after [`Lease::read`]).
    pub held: bool,
    /// Who holds it, if anyone.
    pub holder: Option<String>,
    /// The pause, if one is set (it may have ended: see [`Pause::holds_at`]).
    pub pause: Option<Pause>,
}

impl LeaseState {
    /// Whether the caller holds it, who does, and the pause.
    pub fn new(held: bool, holder: Option<String>, pause: Option<Pause>) -> Self {
        Self { held, holder, pause }
    }
}

/// A process type's lease and pause in a store every scaler instance reaches.
///
/// Implementations keep one holder at a time: [`Lease::campaign`] takes the lease when it is free, renews it when
/// `me` holds it, and otherwise says who does. A lease not renewed for `ttl` is free again.
#[async_trait]
pub trait Lease: Send + Sync + std::fmt::Debug {
    /// Where it is kept (`redis`, `postgres`, `memory`).
    fn store(&self) -> &str;

    /// Takes or renews the lease for `me` for `ttl`; says who holds it and the pause, in one round trip where the
    /// store allows.
    async fn campaign(&self, me: &str, ttl: Duration) -> Result<LeaseState, SourceError>;

    /// Who holds the lease and the pause, without campaigning.
    async fn read(&self) -> Result<LeaseState, SourceError>;

    /// Gives the lease up if `me` holds it (a graceful stop: a follower takes over at its next campaign).
    async fn release(&self, me: &str) -> Result<(), SourceError>;

    /// Sets the pause (`Some`) or clears it (`None`).
    async fn set_pause(&self, pause: Option<&Pause>) -> Result<(), SourceError>;
}

/// How a scaler uses its lease.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// Whether only the holder acts (`false`: every instance acts, and the lease's store serves only the pause).
    pub exclusive: bool,
    /// How long a lease lasts unrenewed; it is renewed every `ttl / 3`.
    pub ttl: Duration,
    /// This instance's name in the store (unique per process: host, process id and a random suffix).
    pub identity: String,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        Self { exclusive: true, ttl: DEFAULT_TTL, identity: identity() }
    }
}

/// The default lease TTL: a dead leader's successor acts within this plus one poll interval.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// How soon a lease's store that could not be reached is asked again (one connection attempt a second costs a
/// store nothing; waiting for the next renewal, `ttl / 3`, held every scale-up for up to 5 s after a restart).
pub const RETRY_UNREACHABLE: Duration = Duration::from_secs(1);

/// A name for this process: `$DYNO` (or the host name) and the process id, with a random suffix so two processes
/// never share it; at most 48 bytes (it is a Postgres `application_name` too).
pub fn identity() -> String {
    let host = std::env::var("DYNO")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let host: String = host.chars().filter(|c| c.is_ascii_graphic()).take(28).collect();
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

/// What the last campaign said, as a scaler keeps it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Leadership {
    /// Holding until this instant (`ttl / 4` before the store would let go).
    pub held_until: Option<tokio::time::Instant>,
    /// When the store was last asked.
    pub asked: Option<tokio::time::Instant>,
    /// The last answer.
    pub state: LeaseState,
    /// Why the last campaign failed, if it did.
    pub error: Option<String>,
    /// Since when the platform has failed every call this holder needed (none answered since).
    pub platform_failing_since: Option<tokio::time::Instant>,
    /// When this instance last took the lease (the last holder's write may still land: [`crate::scaler::settle`]).
    pub took_at: Option<tokio::time::Instant>,
    /// Until when this instance stands aside (takes no lease) after giving the lease up for a platform it could
    /// not reach.
    pub stand_aside_until: Option<tokio::time::Instant>,
}

impl Leadership {
    /// Whether the lease is held now.
    pub fn holds(&self) -> bool {
        self.held_until.is_some_and(|t| tokio::time::Instant::now() < t)
    }

    /// Whether this instance stands aside now (it campaigns for nothing, only reads).
    pub fn standing_aside(&self) -> bool {
        self.stand_aside_until.is_some_and(|t| tokio::time::Instant::now() < t)
    }

    /// Whether the store should be asked again: every `ttl / 3`, or every [`RETRY_UNREACHABLE`] while the last
    /// ask failed, so a store back from a restart is found in a second, not at the next renewal.
    pub fn due(&self, ttl: Duration) -> bool {
        self.asked.is_none_or(|t| t.elapsed() >= self.every(ttl))
    }

    /// The wait between two asks (see [`Leadership::due`]).
    pub fn every(&self, ttl: Duration) -> Duration {
        if self.error.is_some() { RETRY_UNREACHABLE.min(ttl / 3) } else { ttl / 3 }
    }

    /// Records a campaign started at `started`.
    pub fn record(&mut self, started: tokio::time::Instant, ttl: Duration, answer: Result<LeaseState, SourceError>) {
        self.asked = Some(started);
        match answer {
            Ok(state) => {
                self.held_until = state.held.then(|| started + ttl - ttl / 4);
                self.state = state;
                self.error = None;
            }
            Err(e) => {
                // Not reaching the store is not holding: stop acting now, not when the lease would end.
                self.held_until = None;
                self.error = Some(e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_holds_until_its_end_and_an_open_one_until_resumed() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let p = Pause::new("me", now, Some(Duration::from_secs(60)));
        assert_eq!(p.until, Some(1_060));
        assert!(p.holds_at(now) && p.holds_at(now + Duration::from_secs(59)));
        assert!(!p.holds_at(now + Duration::from_secs(60)));
        let open = Pause::new("me", now, None);
        assert!(open.holds_at(now + Duration::from_secs(86_400 * 365)));
        assert_eq!(open.describe(), "until resumed");
        assert!(p.describe().starts_with("until 1970-01-01T00:17:40"), "{}", p.describe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_renewal_stops_the_holder_at_once() {
        let ttl = Duration::from_secs(12);
        let mut l = Leadership::default();
        assert!(!l.holds() && l.due(ttl));
        let held = LeaseState { held: true, holder: Some("me".into()), pause: None };
        l.record(tokio::time::Instant::now(), ttl, Ok(held.clone()));
        assert!(l.holds() && !l.due(ttl));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(l.due(ttl) && l.holds());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!l.holds(), "ttl/4 before the store lets go, the holder stops");
        l.record(tokio::time::Instant::now(), ttl, Ok(held));
        assert!(l.holds());
        let cut = SourceError::Unavailable { source_name: "redis".into(), message: "cut".into(), cause: None };
        l.record(tokio::time::Instant::now(), ttl, Err(cut));
        assert!(!l.holds());
        assert_eq!(l.error.as_deref().map(|e| e.contains("cut")), Some(true));
        // An unreachable store is asked again a second later, not at the next renewal.
        assert!(!l.due(ttl));
        tokio::time::advance(RETRY_UNREACHABLE).await;
        assert!(l.due(ttl));
        l.record(tokio::time::Instant::now(), ttl, Ok(LeaseState { held: true, ..LeaseState::default() }));
        tokio::time::advance(RETRY_UNREACHABLE).await;
        assert!(l.holds() && !l.due(ttl), "once answered, every ttl / 3 again");
    }

    #[test]
    fn identities_differ_and_fit_an_application_name() {
        let (a, b) = (identity(), identity());
        assert!(a.len() <= 48 && !a.is_empty());
        assert_ne!(a, b);
    }
}
