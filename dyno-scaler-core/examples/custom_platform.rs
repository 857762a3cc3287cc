//! A platform of your own: a process supervisor that runs numbered processes per process type (`worker-1`,
//! `worker-2`, ...; here held in memory, a real one would call the supervisor's API) and, like Kubernetes, chooses
//! which processes a scale-down stops: the idle ones first, by the busy hosts every request carries. It implements
//! `Platform` (two requests, in any order) and keeps the platform conformance suite.
//!
//! `cargo run -p dyno-scaler-core --example custom_platform`; `cargo test -p dyno-scaler-core --example
//! custom_platform` runs the conformance suite against it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dyno_scaler_core::{
    Clock, Formation, Hosts, InMemoryQueue, ManualClock, Placement, Platform, PlatformError, Policy, PolicyConfig,
    ProcessInfo, ScaleRequest, Scaler, WorkerInfo,
};

#[derive(Debug, Default)]
struct Group {
    /// The running processes' numbers, in start order.
    running: Vec<u32>,
    next: u32,
    limit: Option<u32>,
}

/// The supervisor's process groups, by process type.
#[derive(Debug, Clone, Default)]
pub struct Supervisor(Arc<Mutex<BTreeMap<String, Group>>>);

impl Supervisor {
    /// Creates a group of `quantity` processes.
    pub fn add(&self, process_type: &str, quantity: u32) {
        let mut groups = self.0.lock().expect("lock");
        let g = groups.entry(process_type.to_owned()).or_default();
        g.running.clear();
        for _ in 0..quantity {
            g.next += 1;
            g.running.push(g.next);
        }
    }

    fn with<R>(&self, process_type: &str, f: impl FnOnce(&mut Group) -> R) -> Result<R, PlatformError> {
        let mut groups = self.0.lock().expect("lock");
        let g = groups
            .get_mut(process_type)
            .ok_or_else(|| PlatformError::NotFound { message: format!("no process group {process_type}") })?;
        Ok(f(g))
    }
}

/// The platform over the supervisor.
#[derive(Debug, Clone, Default)]
pub struct SupervisorPlatform(pub Supervisor);

/// The stop order: idle processes before busy ones, the newest first within each.
fn stop_order(process_type: &str, g: &Group, hosts: &Hosts) -> Vec<String> {
    let mut names: Vec<(bool, u32, String)> = g
        .running
        .iter()
        .map(|n| {
            let name = format!("{process_type}-{n}");
            (hosts.busy.contains(&name), u32::MAX - n, name)
        })
        .collect();
    names.sort();
    names.into_iter().map(|(_, _, name)| name).collect()
}

#[async_trait]
impl Platform for SupervisorPlatform {
    fn name(&self) -> &str {
        "supervisor"
    }

    async fn formation(&self, process_type: &str, hosts: &Hosts, _fresh: bool) -> Result<Formation, PlatformError> {
        self.0.with(process_type, |g| {
            let order = stop_order(process_type, g, hosts);
            let placements = hosts
                .named
                .iter()
                .map(|h| {
                    let place =
                        order.iter().position(|n| n == h).map_or(Placement::Elsewhere, |k| Placement::Stops(k as u32));
                    (h.clone(), place)
                })
                .collect();
            Formation::new(g.running.len() as u32).placed(placements, Some(order))
        })
    }

    /// Starts new processes, or stops the first of the stop order (idle ones first).
    async fn scale(&self, request: &ScaleRequest<'_>) -> Result<(), PlatformError> {
        let (pt, quantity) = (request.process_type, request.quantity);
        self.0.with(pt, |g| {
            if g.limit.is_some_and(|l| quantity > l) {
                return Err(PlatformError::LimitExceeded {
                    requested: quantity,
                    limit: g.limit,
                    message: format!("the supervisor runs at most {} {pt} processes", g.limit.unwrap_or(0)),
                });
            }
            while (g.running.len() as u32) < quantity {
                g.next += 1;
                g.running.push(g.next);
            }
            let stop = g.running.len().saturating_sub(quantity as usize);
            for name in stop_order(pt, g, request.hosts).into_iter().take(stop) {
                g.running.retain(|n| format!("{pt}-{n}") != name);
            }
            Ok(())
        })?
    }

    async fn list_processes(&self, process_type: &str) -> Result<Option<Vec<ProcessInfo>>, PlatformError> {
        self.0.with(process_type, |g| {
            let names = g.running.iter().map(|n| ProcessInfo::new(format!("{process_type}-{n}"), "up"));
            Some(names.collect())
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let supervisor = Supervisor::default();
    supervisor.add("worker", 3);
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    // worker-1 runs a job; worker-2 and worker-3 are idle.
    let w = |n: u32, busy| {
        WorkerInfo::new(format!("worker-{n}:1"), Some(format!("worker-{n}")), busy).with_beat(Some(clock.now()))
    };
    queue.set_workers(Some(vec![w(1, 1), w(2, 0), w(3, 0)]));
    queue.add_running("default", 1);
    let policy = Policy::new(PolicyConfig { max_workers: 3, ..PolicyConfig::classic() })?;
    let platform = SupervisorPlatform(supervisor.clone());
    let scaler =
        Scaler::builder("worker", queue.clone(), Arc::new(platform.clone()), policy).clock(clock.clone()).build();
    for _ in 0..3 {
        clock.advance(std::time::Duration::from_secs(40));
        queue.heartbeat();
        let r = scaler.reconcile().await?;
        println!("{} -> {}: {}", r.decision.from, r.decision.to, r.decision.reason);
    }
    println!("running: {:?}", platform.list_processes("worker").await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyno_scaler_core::conformance::{PlatformBackend, run_platform_conformance};

    struct Backend(SupervisorPlatform);

    #[async_trait]
    impl PlatformBackend for Backend {
        async fn add(&self, process_type: &str, quantity: u32) {
            self.0.0.add(process_type, quantity);
        }
        async fn quantity(&self, process_type: &str) -> Option<u32> {
            self.0.0.with(process_type, |g| g.running.len() as u32).ok()
        }
        async fn limit(&self, process_type: &str, limit: u32) -> bool {
            self.0.0.with(process_type, |g| g.limit = Some(limit)).is_ok()
        }
        fn knows_types(&self) -> bool {
            true
        }
        fn platform(&self) -> Arc<dyn Platform> {
            Arc::new(self.0.clone())
        }
    }

    #[tokio::test]
    async fn the_supervisor_keeps_the_platform_contract() {
        run_platform_conformance(&Backend(SupervisorPlatform::default())).await;
    }

    #[tokio::test]
    async fn a_scale_down_stops_the_idle_processes_and_keeps_the_busy_one() {
        let supervisor = Supervisor::default();
        supervisor.add("worker", 3);
        let platform = SupervisorPlatform(supervisor);
        let mut hosts = Hosts::default();
        hosts.busy.insert("worker-3".to_owned());
        platform.scale(&ScaleRequest::new("worker", 1, &hosts)).await.unwrap();
        let left = platform.list_processes("worker").await.unwrap().unwrap();
        assert_eq!(left.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["worker-3"], "the busy newest stays");
    }
}
