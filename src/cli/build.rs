//! Turns settings into sources, the platform and scalers.

use std::sync::Arc;

use dyno_scaler::core::{Platform, QueueSource, Scaler, SourceError};
use dyno_scaler::delayed_job::{DelayedJobConfig, DelayedJobSource};
use dyno_scaler::heroku::{HerokuConfig, HerokuPlatform};
use dyno_scaler::resque::{ResqueConfig, ResqueSource};
use dyno_scaler::sidekiq::{SidekiqConfig, SidekiqSource};

use super::config::{ConfigError, ProcessSettings, Settings, SourceKind};

pub fn platform(s: &Settings) -> Result<Arc<HerokuPlatform>, ConfigError> {
    let mut c = HerokuConfig::new(s.api_key.expose(), s.app.clone());
    c.base_url = s.api_url.clone();
    HerokuPlatform::new(c).map(Arc::new).map_err(|e| ConfigError(format!("HEROKU_API_URL: {e}")))
}

pub fn source(p: &ProcessSettings) -> Result<Arc<dyn QueueSource>, ConfigError> {
    let bad = |e: SourceError| ConfigError(format!("process type {}: {e}", p.process_type));
    Ok(match p.source {
        SourceKind::Sidekiq => {
            let mut c = SidekiqConfig::new(p.url.expose());
            c.namespace = p.namespace.clone();
            c.queues = p.queues.clone();
            c.tls_verify = p.redis_tls_verify;
            Arc::new(SidekiqSource::new(c).map_err(bad)?)
        }
        SourceKind::Resque => {
            let mut c = ResqueConfig::new(p.url.expose());
            if let Some(ns) = &p.namespace {
                c.namespace = ns.clone();
            }
            c.queues = p.queues.clone();
            c.tls_verify = p.redis_tls_verify;
            Arc::new(ResqueSource::new(c).map_err(bad)?)
        }
        SourceKind::DelayedJob => {
            let mut c = DelayedJobConfig::new(p.url.expose());
            if let Some(t) = &p.table {
                c.table = t.clone();
            }
            c.queues = p.queues.clone();
            c.min_priority = p.min_priority;
            c.max_priority = p.max_priority;
            if let Some(m) = p.max_run_time {
                c.max_run_time = m;
            }
            Arc::new(DelayedJobSource::new(c).map_err(bad)?)
        }
    })
}

pub fn scalers(s: &Settings, dry_run: bool) -> Result<(Arc<HerokuPlatform>, Vec<Scaler>), ConfigError> {
    let platform = platform(s)?;
    let shared: Arc<dyn Platform> = platform.clone();
    let mut out = Vec::new();
    for p in &s.processes {
        let scaler = Scaler::builder(p.process_type.clone(), source(p)?, shared.clone(), p.policy.clone())
            .dry_run(dry_run)
            .build();
        out.push(scaler);
    }
    Ok((platform, out))
}
