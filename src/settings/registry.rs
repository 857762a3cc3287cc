//! The adapters this binary is built with. Adding a queue source is its crate, its Cargo feature, and one entry
//! in [`sources`] (with the few lines that tie its settings type to [`SourceSpec`]).

use std::sync::Arc;

use crate::core::{Secret, SettingError, Source, SourceError};
use serde::de::DeserializeOwned;

use super::{ConfigError, Layers};

/// A source's settings, read and checked, ready to build the source.
pub trait SourceSpec: std::fmt::Debug + Send + Sync {
    /// Checks every setting (the adapter's own `validate`).
    fn validate(&self) -> Result<(), SettingError>;
    /// Where the queue lives (shown redacted).
    fn url(&self) -> &Secret;
    /// The queues watched, when a filter is set.
    fn queues(&self) -> Option<Vec<String>>;
    /// The source with every part it offers. Connects lazily: no I/O here.
    fn build(&self) -> Result<Source, SettingError>;
    /// The insert trigger that feeds the source's event path, where it needs one (`install-trigger`).
    fn trigger(&self) -> Option<Result<Arc<dyn Trigger>, SettingError>> {
        None
    }
}

/// A database trigger that feeds a source's event path: a schema change, made only on request.
#[async_trait::async_trait]
pub trait Trigger: Send + Sync {
    /// The SQL that installs it (idempotent).
    fn install_sql(&self) -> String;
    /// The SQL that removes it (idempotent).
    fn uninstall_sql(&self) -> String;
    /// Installs it, in one transaction.
    async fn install(&self) -> Result<(), SourceError>;
    /// Removes it, in one transaction.
    async fn uninstall(&self) -> Result<(), SourceError>;
}

/// Reads a source's settings from the layers left after the common and policy ones.
pub type ParseFn = fn(&mut Layers, &'static str) -> Result<Arc<dyn SourceSpec>, ConfigError>;

/// One queue source the binary knows.
pub struct SourceEntry {
    /// `DYNO_SCALER_SOURCE` / `source = "..."`.
    pub name: &'static str,
    /// Other spellings accepted.
    pub aliases: &'static [&'static str],
    /// Settings taken from other variables when the process does not set them: `(key, variable)`.
    pub env_defaults: &'static [(&'static str, &'static str)],
    /// Reads the settings left after the common and policy ones.
    pub parse: ParseFn,
    /// The policy when none is set (`None`: the adaptive one).
    pub default_policy: Option<crate::core::PolicyKind>,
}

impl SourceEntry {
    /// Whether `name` (any case, `-` or `_`) names this source.
    pub fn is(&self, name: &str) -> bool {
        let n = name.trim().to_ascii_lowercase().replace('-', "_");
        n == self.name || self.aliases.contains(&n.as_str())
    }
}

/// Types the layers as the adapter's settings `C` and checks them; errors name where the value came from.
fn parse_as<C: DeserializeOwned + SourceSpec + 'static>(
    layers: &mut Layers,
    name: &'static str,
) -> Result<Arc<dyn SourceSpec>, ConfigError> {
    let spec: C = layers.deserialize(&format!("the {name} source"))?;
    spec.validate().map_err(|e| ConfigError(format!("{}: {}", layers.origin(&e.setting), e.message)))?;
    Ok(Arc::new(spec))
}

#[cfg(any(feature = "sidekiq", feature = "resque", feature = "request-queue"))]
const REDIS_DEFAULTS: &[(&str, &str)] = &[("url", "REDIS_URL"), ("redis_tls_verify", "DYNO_SCALER_REDIS_TLS_VERIFY")];

/// Every source compiled in.
pub fn sources() -> Vec<SourceEntry> {
    vec![
        #[cfg(feature = "sidekiq")]
        SourceEntry {
            name: "sidekiq",
            aliases: &[],
            env_defaults: REDIS_DEFAULTS,
            parse: parse_as::<crate::sidekiq::SidekiqConfig>,
            default_policy: None,
        },
        #[cfg(feature = "resque")]
        SourceEntry {
            name: "resque",
            aliases: &[],
            env_defaults: REDIS_DEFAULTS,
            parse: parse_as::<crate::resque::ResqueConfig>,
            default_policy: None,
        },
        #[cfg(feature = "delayed-job")]
        SourceEntry {
            name: "delayed_job",
            aliases: &["delayedjob"],
            env_defaults: &[("url", "DATABASE_URL")],
            parse: parse_as::<crate::delayed_job::DelayedJobConfig>,
            default_policy: None,
        },
        #[cfg(feature = "good-job")]
        SourceEntry {
            name: "good_job",
            aliases: &["goodjob"],
            env_defaults: &[("url", "DATABASE_URL"), ("enable_pauses", "GOOD_JOB_ENABLE_PAUSES")],
            parse: parse_as::<crate::good_job::GoodJobConfig>,
            default_policy: None,
        },
        #[cfg(feature = "solid-queue")]
        SourceEntry {
            name: "solid_queue",
            aliases: &["solidqueue"],
            env_defaults: &[("url", "DATABASE_URL")],
            parse: parse_as::<crate::solid_queue::SolidQueueConfig>,
            default_policy: None,
        },
        #[cfg(feature = "request-queue")]
        SourceEntry {
            name: "request_queue",
            aliases: &["web"],
            env_defaults: REDIS_DEFAULTS,
            parse: parse_as::<crate::request_queue::RequestQueueConfig>,
            default_policy: Some(crate::core::PolicyKind::Web),
        },
    ]
}

/// `impl SourceSpec` for an adapter's settings type whose source is built by `Source::new(config)`.
macro_rules! source_spec {
    ($config:ty, $source:ty) => {
        source_spec!($config, $source, trigger: |_c: &$config| None);
    };
    ($config:ty, $source:ty, trigger: $trigger:expr) => {
        impl SourceSpec for $config {
            fn validate(&self) -> Result<(), SettingError> {
                <$config>::validate(self)
            }
            fn url(&self) -> &Secret {
                &self.url
            }
            fn queues(&self) -> Option<Vec<String>> {
                self.queues.clone()
            }
            fn build(&self) -> Result<Source, SettingError> {
                Ok(<$source>::new(self.clone())?.into())
            }
            fn trigger(&self) -> Option<Result<Arc<dyn Trigger>, SettingError>> {
                ($trigger)(self)
            }
        }
    };
}

#[cfg(feature = "sidekiq")]
source_spec!(crate::sidekiq::SidekiqConfig, crate::sidekiq::SidekiqSource);
#[cfg(feature = "resque")]
source_spec!(crate::resque::ResqueConfig, crate::resque::ResqueSource);
#[cfg(feature = "delayed-job")]
source_spec!(crate::delayed_job::DelayedJobConfig, crate::delayed_job::DelayedJobSource, trigger: |c: &crate::delayed_job::DelayedJobConfig| {
    Some(crate::delayed_job::DelayedJobSource::new(c.clone()).map(|s| Arc::new(s.trigger()) as Arc<dyn Trigger>))
});

#[cfg(feature = "good-job")]
source_spec!(crate::good_job::GoodJobConfig, crate::good_job::GoodJobSource);
#[cfg(feature = "request-queue")]
impl SourceSpec for crate::request_queue::RequestQueueConfig {
    fn validate(&self) -> Result<(), SettingError> {
        crate::request_queue::RequestQueueConfig::validate(self)
    }
    fn url(&self) -> &Secret {
        &self.url
    }
    fn queues(&self) -> Option<Vec<String>> {
        None
    }
    fn build(&self) -> Result<Source, SettingError> {
        Ok(crate::request_queue::RequestQueueSource::new(self.clone())?.into())
    }
}
#[cfg(feature = "solid-queue")]
source_spec!(crate::solid_queue::SolidQueueConfig, crate::solid_queue::SolidQueueSource, trigger: |c: &crate::solid_queue::SolidQueueConfig| {
    Some(crate::solid_queue::SolidQueueSource::new(c.clone()).map(|s| Arc::new(s.trigger()) as Arc<dyn Trigger>))
});

#[cfg(any(feature = "delayed-job", feature = "solid-queue"))]
#[async_trait::async_trait]
impl Trigger for dyno_scaler_postgres::trigger::InsertTrigger {
    fn install_sql(&self) -> String {
        self.install_sql()
    }
    fn uninstall_sql(&self) -> String {
        self.uninstall_sql()
    }
    async fn install(&self) -> Result<(), SourceError> {
        self.install().await
    }
    async fn uninstall(&self) -> Result<(), SourceError> {
        self.uninstall().await
    }
}
