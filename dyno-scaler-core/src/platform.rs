//! The `Platform` trait: where worker processes run.

use async_trait::async_trait;
use serde::Serialize;

use crate::error::PlatformError;

/// One running process (dyno) of a process type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    /// The platform's name of the process (`worker.3`).
    pub name: String,
    /// The platform's state (`up`, `starting`, ...).
    pub state: String,
}

/// A runtime that runs a number of identical worker processes per process type.
///
/// Quantities are always absolute, so retries and several scaler instances are safe.
#[async_trait]
pub trait Platform: Send + Sync + std::fmt::Debug {
    /// A short name of the platform (`heroku`, `memory`).
    fn name(&self) -> &str;

    /// The quantity the platform currently maintains for `process_type`.
    async fn current_quantity(&self, process_type: &str) -> Result<u32, PlatformError>;

    /// Sets the quantity of `process_type` to exactly `quantity`.
    async fn set_quantity(&self, process_type: &str, quantity: u32) -> Result<(), PlatformError>;

    /// The processes a change of `process_type` from `from` to `to` (`to < from`) stops, by name, where the
    /// platform knows them (`None`: unknown). Heroku Cedar stops the highest-numbered first: `type.(to+1..=from)`.
    fn victims(&self, _process_type: &str, _from: u32, _to: u32) -> Option<Vec<String>> {
        None
    }

    /// The live processes of `process_type`, where the platform can list them (`Ok(None)` otherwise).
    async fn list_processes(&self, _process_type: &str) -> Result<Option<Vec<ProcessInfo>>, PlatformError> {
        Ok(None)
    }
}
