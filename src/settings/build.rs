//! Turns settings into the platforms and scalers.

use std::sync::Arc;

use crate::core::lease::{self, LeaseOptions};
use crate::core::{Platform, Scaler, Source};
#[cfg(feature = "heroku")]
use crate::heroku::HerokuPlatform;
#[cfg(feature = "kubernetes")]
use crate::kubernetes::KubernetesPlatform;

use super::{ConfigError, ProcessSettings, Settings};

/// The platforms the process types run on, each built once and shared by its process types, by name.
#[derive(Default)]
pub struct Platforms(std::collections::BTreeMap<&'static str, Arc<dyn Platform>>);

impl Platforms {
    /// The platform `p` runs on.
    pub fn of(&self, p: &ProcessSettings) -> Arc<dyn Platform> {
        self.0.get(p.platform.name()).cloned().expect("built for every process type")
    }
}

/// Builds the platforms the process types use, each once, from the registry ([`super::platform::platforms`]):
/// Heroku's from its settings, Kubernetes' from the in-cluster configuration or `KUBECONFIG`.
pub async fn platforms(s: &Settings) -> Result<Platforms, ConfigError> {
    let mut out = Platforms::default();
    for entry in super::platform::platforms() {
        if s.processes.iter().any(|p| p.platform.is(entry.name)) {
            out.0.insert(entry.name, (entry.build)(s).await?);
        }
    }
    Ok(out)
}

/// The Heroku platform.
#[cfg(feature = "heroku")]
pub fn heroku(s: &Settings) -> Result<Arc<HerokuPlatform>, ConfigError> {
    let config = s
        .heroku
        .clone()
        .ok_or_else(|| ConfigError("HEROKU_API_KEY is not set: this command needs the Heroku platform".into()))?;
    HerokuPlatform::new(config).map(Arc::new).map_err(|e| ConfigError(format!("HEROKU_API_URL: {e}")))
}

/// The Kubernetes platform, with the target of every process type that runs there.
#[cfg(feature = "kubernetes")]
pub async fn kubernetes(s: &Settings) -> Result<Arc<KubernetesPlatform>, ConfigError> {
    let targets = s
        .processes
        .iter()
        .filter(|p| p.platform.is("kubernetes"))
        .filter_map(|p| Some((p.process_type.clone(), p.platform.target.as_ref()?.parse().ok()?)))
        .collect();
    KubernetesPlatform::infer(s.kubernetes_namespace.clone(), targets).await.map(Arc::new).map_err(|e| {
        ConfigError(format!(
            "the Kubernetes platform: {e}; run in a pod with a service account, or set KUBECONFIG to a kubeconfig file"
        ))
    })
}

/// One process type's source.
pub fn source(s: &Settings, p: &ProcessSettings) -> Result<Source, ConfigError> {
    let source = p.spec.build().map_err(|e| ConfigError(format!("process type {}: {e}", p.process_type)))?;
    // A store configured apart from the sources replaces each source's own.
    Ok(match &s.store {
        Some(store) => source.with_store(store.build()?),
        None => source,
    })
}

/// Every process type's scaler on its platform, each with its source's lease (one identity for this process).
pub async fn scalers(s: &Settings, dry_run: bool) -> Result<Vec<Scaler>, ConfigError> {
    let platforms = platforms(s).await?;
    let identity = lease::identity();
    s.processes.iter().map(|p| scaler(s, p, platforms.of(p), dry_run, s.lease, &identity)).collect()
}

/// Every process type's scaler over `platform`; only the lease's holder acts when `exclusive` (else the lease's
/// store serves the pause alone).
#[cfg(feature = "keda")]
pub fn scalers_on(
    s: &Settings,
    platform: Arc<dyn Platform>,
    dry_run: bool,
    exclusive: bool,
) -> Result<Vec<Scaler>, ConfigError> {
    let identity = lease::identity();
    s.processes.iter().map(|p| scaler(s, p, platform.clone(), dry_run, exclusive, &identity)).collect()
}

/// `p`'s scaler over `platform`; `identity` names this process in every lease.
fn scaler(
    s: &Settings,
    p: &ProcessSettings,
    platform: Arc<dyn Platform>,
    dry_run: bool,
    exclusive: bool,
    identity: &str,
) -> Result<Scaler, ConfigError> {
    let source = source(s, p)?;
    let lease = source.store.as_ref().map(|store| store.lease(&p.process_type));
    let mut b =
        Scaler::builder(p.process_type.clone(), source, platform, p.policy.clone()).dry_run(dry_run).events(s.events);
    if let Some(l) = lease {
        let options = LeaseOptions { exclusive, ttl: s.lease_ttl, identity: identity.to_owned() };
        b = b.lease(l, options);
    }
    Ok(b.build())
}
