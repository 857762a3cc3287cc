//! What lets people watch `run`: `/metrics`, `/healthz` and the dashboard on the listen address, the l2met lines,
//! and the notifications; and the one observer that feeds them all every cycle's result.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dyno_scaler::core::{Controller, Report, ScalerError};
use dyno_scaler::dashboard::{Dashboard, unix};
use dyno_scaler::metrics::Metrics;
use dyno_scaler::notify::{Conditions, Notifier};

use super::super::config::Settings;

/// How often the dashboard's day is written to each process type's store.
const PERSIST_EVERY: Duration = Duration::from_secs(60);

/// Binds `--listen` (or `DYNO_SCALER_LISTEN`): the listener and the address it got.
pub(super) async fn listen(addr: std::net::SocketAddr) -> Result<(tokio::net::TcpListener, String), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--listen / DYNO_SCALER_LISTEN {addr}: cannot listen: {e}"))?;
    let bound = listener.local_addr().map_or(addr.to_string(), |a| a.to_string());
    Ok((listener, bound))
}

/// Everything fed with each cycle's result.
pub(super) struct Watchers {
    pub metrics: Arc<Metrics>,
    pub dashboard: Option<Arc<Dashboard>>,
    notify: Option<(Conditions, Notifier)>,
}

impl Watchers {
    /// Takes in one cycle's result (on the controller's task: nothing here waits).
    pub fn observe(&mut self, r: &Result<Report, ScalerError>) {
        self.metrics.observe(r);
        if let Some(d) = &self.dashboard {
            d.observe(r);
        }
        if let Some((conditions, notifier)) = &mut self.notify {
            for n in conditions.observe(unix(SystemTime::now()), r) {
                notifier.send(n);
            }
        }
    }

    /// Before the program exits: the notices still queued are sent (15 s at most), the dashboard's day kept.
    pub async fn finish(&self) {
        if let Some((_, notifier)) = &self.notify {
            notifier.flush(Duration::from_secs(15)).await;
        }
        if let Some(d) = &self.dashboard {
            let _ = tokio::time::timeout(Duration::from_secs(5), d.persist()).await;
        }
    }
}

/// Starts the server, the l2met lines, the dashboard (restored from the stores) and the notifier.
pub(super) async fn watch(s: &Settings, controller: &Controller) -> Result<Watchers, String> {
    let metrics = Arc::new(Metrics::new());
    let mut dashboard = None;
    if let Some(addr) = s.listen {
        let (listener, bound) = listen(addr).await?;
        let d = Arc::new(Dashboard::new(s.watch.price_per_dyno_hour, s.watch.dashboard_token.clone()));
        for sc in controller.scalers() {
            let store = sc.source().store.clone();
            d.track(sc.process_type(), sc.policy().config().max_workers, sc.source().queue.name(), store);
        }
        d.restore().await;
        let keeper = d.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PERSIST_EVERY, PERSIST_EVERY);
            loop {
                tick.tick().await;
                keeper.persist().await;
            }
        });
        tracing::info!(address = %bound, read_only = s.watch.dashboard_token.is_none(), "serving /metrics and /healthz, the dashboard (/) and /api/history");
        let pts = s.processes.iter().map(|p| p.process_type.clone()).collect();
        // Healthy while every process type had a successful cycle within three intervals (30 s at least).
        let stale = (s.poll_interval * 3).max(Duration::from_secs(30));
        let served = dyno_scaler::metrics::Served {
            metrics: metrics.clone(),
            dashboard: Some(d.clone()),
            process_types: Arc::new(pts),
            stale,
        };
        tokio::spawn(dyno_scaler::metrics::serve(listener, served));
        dashboard = Some(d);
    }
    if let Some(every) = s.log_metrics {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                for line in metrics.l2met() {
                    println!("{line}");
                }
            }
        });
    }
    let notify = match &s.watch.notify {
        None => None,
        Some(n) => {
            let notifier = Notifier::start(n)?;
            let mut conditions = Conditions::new(n.after);
            for sc in controller.scalers() {
                conditions.track(sc.process_type(), sc.policy().config().max_workers);
            }
            tracing::info!(after_secs = n.after.as_secs(), format = ?n.format, "notifications on");
            Some((conditions, notifier))
        }
    };
    Ok(Watchers { metrics, dashboard, notify })
}
