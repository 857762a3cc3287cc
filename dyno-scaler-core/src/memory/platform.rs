//! The in-memory [`Platform`]: a fake of Heroku Cedar's formation that records every call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::PlatformError;
use crate::platform::{Formation, Hosts, Placement, Platform, ProcessInfo, ScaleRequest};

/// One call an [`InMemoryPlatform`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformCall {
    /// `formation(process_type, ..)`: a read.
    Current(String),
    /// `scale(process_type, quantity)`.
    Set(String, u32),
    /// `list_processes(process_type)`.
    List(String),
}

#[derive(Debug, Default)]
struct PlatformState {
    quantities: HashMap<String, u32>,
    limits: HashMap<String, u32>,
    calls: Vec<PlatformCall>,
    failures: VecDeque<PlatformError>,
    completed_sets: usize,
    victims_unknown: bool,
}

/// A platform held in memory: it records every call, can enforce per-type limits, can be told to fail the
/// next calls, and can be slowed down.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPlatform {
    state: Arc<Mutex<PlatformState>>,
    delay: Arc<Mutex<Duration>>,
    /// Extra time `scale` takes (a write held in flight).
    write_delay: Arc<Mutex<Duration>>,
}

impl InMemoryPlatform {
    /// An empty platform (every process type at 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the platform unable to say which processes a scale-down stops (as Heroku Fir).
    pub fn set_victims_unknown(&self, unknown: bool) {
        self.with(|s| s.victims_unknown = unknown);
    }

    fn with<R>(&self, f: impl FnOnce(&mut PlatformState) -> R) -> R {
        f(&mut self.state.lock().expect("platform lock"))
    }

    /// Sets a quantity directly (as a person scaling by hand would); not recorded as a call.
    pub fn set(&self, process_type: &str, quantity: u32) {
        self.with(|s| s.quantities.insert(process_type.into(), quantity));
    }

    /// The quantity of `process_type`.
    pub fn quantity(&self, process_type: &str) -> u32 {
        self.with(|s| s.quantities.get(process_type).copied().unwrap_or(0))
    }

    /// Refuses quantities above `limit` for `process_type` with [`PlatformError::LimitExceeded`].
    pub fn set_limit(&self, process_type: &str, limit: u32) {
        self.with(|s| s.limits.insert(process_type.into(), limit));
    }

    /// Makes the next call fail with `error` (queued: several calls queue several failures).
    pub fn fail_next(&self, error: PlatformError) {
        self.with(|s| s.failures.push_back(error));
    }

    /// Makes every `scale` take `delay` more before it answers (reads answer at once): a write held in
    /// flight.
    pub fn set_write_delay(&self, delay: Duration) {
        *self.write_delay.lock().expect("delay lock") = delay;
    }

    /// Makes every call take `delay` before it answers.
    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().expect("delay lock") = delay;
    }

    /// Every call received, in order.
    pub fn calls(&self) -> Vec<PlatformCall> {
        self.with(|s| s.calls.clone())
    }

    /// The `scale` calls received.
    pub fn set_calls(&self) -> Vec<(String, u32)> {
        self.with(|s| {
            s.calls
                .iter()
                .filter_map(|c| match c {
                    PlatformCall::Set(t, q) => Some((t.clone(), *q)),
                    _ => None,
                })
                .collect()
        })
    }

    /// How many `scale` calls have finished (after their delay).
    pub fn completed_sets(&self) -> usize {
        self.with(|s| s.completed_sets)
    }

    async fn enter(&self, call: PlatformCall) -> Result<(), PlatformError> {
        let write = matches!(call, PlatformCall::Set(..));
        let failure = self.with(|s| {
            s.calls.push(call);
            s.failures.pop_front()
        });
        let mut delay = *self.delay.lock().expect("delay lock");
        if write {
            delay += *self.write_delay.lock().expect("delay lock");
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        failure.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl Platform for InMemoryPlatform {
    fn name(&self) -> &str {
        "memory"
    }

    /// The quantity, and Heroku Cedar's rule for the hosts and the stop order ([`crate::cedar`]),
    /// unless [`InMemoryPlatform::set_victims_unknown`] (every host unknown, no stop order).
    async fn formation(&self, process_type: &str, hosts: &Hosts, _fresh: bool) -> Result<Formation, PlatformError> {
        self.enter(PlatformCall::Current(process_type.into())).await?;
        let quantity = self.quantity(process_type);
        if self.with(|s| s.victims_unknown) {
            let placements = hosts.named.iter().map(|h| (h.clone(), Placement::Unknown)).collect();
            return Ok(Formation::new(quantity).placed(placements, None));
        }
        let placements =
            hosts.named.iter().map(|h| (h.clone(), crate::cedar::place(process_type, quantity, h))).collect();
        Ok(Formation::new(quantity).placed(placements, Some(crate::cedar::victims(process_type, quantity, 0))))
    }

    async fn scale(&self, request: &ScaleRequest<'_>) -> Result<(), PlatformError> {
        let (process_type, quantity) = (request.process_type, request.quantity);
        let result = self.enter(PlatformCall::Set(process_type.into(), quantity)).await;
        self.with(|s| {
            s.completed_sets += 1;
            result?;
            if let Some(limit) = s.limits.get(process_type).copied()
                && quantity > limit
            {
                return Err(PlatformError::LimitExceeded {
                    requested: quantity,
                    limit: Some(limit),
                    message: format!("Cannot run more than {limit} dynos of {process_type}."),
                });
            }
            s.quantities.insert(process_type.into(), quantity);
            Ok(())
        })
    }

    async fn list_processes(&self, process_type: &str) -> Result<Option<Vec<ProcessInfo>>, PlatformError> {
        self.enter(PlatformCall::List(process_type.into())).await?;
        let n = self.quantity(process_type);
        Ok(Some((1..=n).map(|i| ProcessInfo { name: format!("{process_type}.{i}"), state: "up".into() }).collect()))
    }
}
