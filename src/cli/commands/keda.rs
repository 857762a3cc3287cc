//! `dyno-scaler keda-scaler --listen ADDR`: KEDA's external scaler (gRPC). The scalers run their loops as under
//! `run` (the event paths wake them) and publish their decisions ([`Published`]): KEDA and the HPA change the
//! replicas. `GetMetrics` answers a fresh reading without advancing the policy.

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler::core::{Controller, Platform};
use dyno_scaler::keda::{KedaScaler, Published};

use super::super::build;
use super::super::config::Settings;
use super::{CycleLogger, shutdown_signal};

pub async fn serve(s: &Settings) -> u8 {
    let Some(addr) = s.listen else {
        crate::cli::logging::error("keda-scaler: --listen is required");
        return 2;
    };
    // Every replica of the scaler service answers KEDA, so the lease is not exclusive; it still carries the pause.
    let platform: Arc<dyn Platform> = Arc::new(Published::new());
    let scalers = match build::scalers_on(s, platform, false, false) {
        Ok(v) => v,
        Err(e) => {
            crate::cli::logging::error(e);
            return 2;
        }
    };
    let (listener, bound) = match super::watch::listen(addr).await {
        Ok(l) => l,
        Err(e) => {
            crate::cli::logging::error(e);
            return 1;
        }
    };
    let keda = KedaScaler::new(&scalers);
    let observer = keda.clone();
    let types: Vec<&str> = s.processes.iter().map(|p| p.process_type.as_str()).collect();
    tracing::info!(address = %bound, process_types = %types.join(", "), "serving KEDA's external scaler (gRPC)");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(dyno_scaler::keda::serve(keda, listener, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    let controller = Controller::new(scalers, s.poll_interval).with_shutdown_grace(Duration::from_millis(800));
    let mut logger = CycleLogger::new();
    let result = controller
        .run_observed(shutdown_signal(), |r| {
            logger.log(r, false);
            observer.observe(r);
        })
        .await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            0
        }
        Err(e) => {
            crate::cli::logging::error(e);
            1
        }
    }
}
