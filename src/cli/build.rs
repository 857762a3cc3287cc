//! Turns settings into the platform and scalers.

use std::sync::Arc;

use dyno_scaler::core::lease::{self, LeaseOptions};
use dyno_scaler::core::{Platform, QueueSource, Scaler};
#[cfg(feature = "heroku")]
use dyno_scaler::heroku::HerokuPlatform;

use super::config::{ConfigError, ProcessSettings, Settings};

/// The platform (Heroku).
#[cfg(feature = "heroku")]
pub fn platform(s: &Settings) -> Result<Arc<HerokuPlatform>, ConfigError> {
    let config = s
        .heroku
        .clone()
        .ok_or_else(|| ConfigError("HEROKU_API_KEY is not set: this command needs the Heroku platform".into()))?;
    HerokuPlatform::new(config).map(Arc::new).map_err(|e| ConfigError(format!("HEROKU_API_URL: {e}")))
}

/// The platform every process type uses, as the trait.
pub fn shared_platform(s: &Settings) -> Result<Arc<dyn Platform>, ConfigError> {
    #[cfg(feature = "heroku")]
    {
        Ok(platform(s)?)
    }
    #[cfg(not(feature = "heroku"))]
    {
        let _ = s;
        Err(ConfigError("this binary was built without a platform: build it with the `heroku` feature".into()))
    }
}

/// One process type's source.
pub fn source(p: &ProcessSettings) -> Result<Arc<dyn QueueSource>, ConfigError> {
    p.spec.build().map_err(|e| ConfigError(format!("process type {}: {e}", p.process_type)))
}

/// Every process type's scaler over the shared platform, each with its source's lease (one identity for this
/// process).
pub fn scalers(s: &Settings, dry_run: bool) -> Result<Vec<Scaler>, ConfigError> {
    scalers_on(s, shared_platform(s)?, dry_run, s.lease)
}

/// Every process type's scaler over `platform`; only the lease's holder acts when `exclusive` (else the lease's
/// store serves the pause alone).
pub fn scalers_on(
    s: &Settings,
    platform: Arc<dyn Platform>,
    dry_run: bool,
    exclusive: bool,
) -> Result<Vec<Scaler>, ConfigError> {
    let identity = lease::identity();
    s.processes
        .iter()
        .map(|p| {
            let source = source(p)?;
            let lease = source.lease(&p.process_type);
            let mut b = Scaler::builder(p.process_type.clone(), source, platform.clone(), p.policy.clone())
                .dry_run(dry_run)
                .events(s.events);
            if let Some(l) = lease {
                let options = LeaseOptions { exclusive, ttl: s.lease_ttl, identity: identity.clone() };
                b = b.lease(l, options);
            }
            Ok(b.build())
        })
        .collect()
}
