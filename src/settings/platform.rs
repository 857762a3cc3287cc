//! Which platform each process type runs on (`platform`, `DYNO_SCALER_PLATFORM`) and what it scales there
//! (`target`, `DYNO_SCALER_TARGET`; `DYNO_SCALER_NAMESPACE`). Every error names the setting.

use std::sync::Arc;

use crate::core::Platform;

use super::layers::Layers;
use super::{ConfigError, err};

/// Where a process type's workers run: a platform of the registry ([`platforms`]) and what it scales there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformChoice {
    name: &'static str,
    /// What the process type scales on the platform, where the platform has targets (Kubernetes:
    /// `deployment/NAME` or `statefulset/NAME`; Heroku: none, the formation is named as the process type).
    pub target: Option<String>,
}

impl PlatformChoice {
    /// The platform `name` of the registry, with `target`.
    pub fn new(name: &'static str, target: Option<String>) -> Self {
        Self { name, target }
    }

    /// The platform's name (`heroku`, `kubernetes`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the process type runs on the platform `name`.
    pub fn is(&self, name: &str) -> bool {
        self.name == name
    }
}

/// A platform's future, boxed: what an entry's `build` returns.
pub type Building<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Arc<dyn Platform>, ConfigError>> + Send + 'a>>;

/// Reads a process type's `target` setting for a platform: the setting (`None`: not set), the process type, where
/// its platform was named; the target it scales, or none.
pub type TargetFn = fn(Option<Named>, &str, &str) -> Result<Option<String>, ConfigError>;

/// One platform this build knows. Adding a platform is its crate, its Cargo feature, and one entry in
/// [`platforms`].
pub struct PlatformEntry {
    /// `DYNO_SCALER_PLATFORM` / `platform = "..."`.
    pub name: &'static str,
    /// Checks a process type's `target` setting (`None`: not set), given the process type and where its platform
    /// was named, and gives the target it scales (or none, for a platform without targets).
    pub target: TargetFn,
    /// The platform, once, for every process type of the settings that runs on it. Connects lazily where it can.
    pub build: for<'a> fn(&'a super::Settings) -> Building<'a>,
}

/// The platforms whose names the program knows, compiled in or not (for a clear error when one is left out).
const KNOWN: &[&str] = &["heroku", "kubernetes"];

/// Every platform compiled in.
pub fn platforms() -> Vec<PlatformEntry> {
    vec![
        #[cfg(feature = "heroku")]
        PlatformEntry {
            name: "heroku",
            target: no_target,
            build: |s| Box::pin(async move { super::build::heroku(s).map(|p| p as Arc<dyn Platform>) }),
        },
        #[cfg(feature = "kubernetes")]
        PlatformEntry {
            name: "kubernetes",
            target: kubernetes,
            build: |s| Box::pin(async move { super::build::kubernetes(s).await.map(|p| p as Arc<dyn Platform>) }),
        },
    ]
}

/// A platform without targets: a `target` set for it is an error naming both settings.
#[cfg_attr(not(feature = "heroku"), allow(dead_code))]
fn no_target(target: Option<Named>, process_type: &str, origin: &str) -> Result<Option<String>, ConfigError> {
    match target {
        Some((_, t_origin)) => err(format!(
            "{t_origin}: applies to the Kubernetes platform only, and {process_type} runs on Heroku ({origin}); \
             remove it or set the platform to kubernetes"
        )),
        None => Ok(None),
    }
}

/// A platform's name as written, with where it came from.
pub type Named = (String, String);

/// The platform of the process types that name none: `DYNO_SCALER_PLATFORM`, else the file's top-level `platform`,
/// else Heroku.
pub fn default_platform(env: Option<String>, file: Option<String>) -> Named {
    match (env, file) {
        (Some(v), _) => (v, "DYNO_SCALER_PLATFORM".into()),
        (None, Some(v)) => (v, "platform".into()),
        (None, None) => ("heroku".into(), "DYNO_SCALER_PLATFORM".into()),
    }
}

/// One process type's platform: its table's `platform` over the default, with its `target` as the platform reads
/// it (Kubernetes: default `deployment/<process type>`).
pub fn choose(l: &mut Layers, default: &Named, process_type: &str) -> Result<PlatformChoice, ConfigError> {
    let (name, origin) = l.take_string("platform")?.unwrap_or_else(|| default.clone());
    let target = l.take_string("target")?;
    let name = name.trim().to_ascii_lowercase();
    match platforms().into_iter().find(|e| e.name == name) {
        Some(entry) => Ok(PlatformChoice::new(entry.name, (entry.target)(target, process_type, &origin)?)),
        None if KNOWN.contains(&name.as_str()) => err(format!(
            "{origin}: this binary was built without the {} platform: build it with the `{name}` feature",
            if name == "kubernetes" { "Kubernetes" } else { "Heroku" }
        )),
        None => err(format!("{origin}: unknown platform {name:?}; use {}", KNOWN.join(" or "))),
    }
}

#[cfg(feature = "kubernetes")]
fn kubernetes(target: Option<Named>, process_type: &str, _: &str) -> Result<Option<String>, ConfigError> {
    use crate::kubernetes::Target;
    let (text, origin) = target.unwrap_or_else(|| {
        (format!("deployment/{process_type}"), format!("DYNO_SCALER_TARGET (by default deployment/{process_type})"))
    });
    let target: Target = text.parse().map_err(|e| ConfigError(format!("{origin}: {e}")))?;
    if !is_object_name(target.name()) {
        return err(format!(
            "{origin}: {:?} is not a Kubernetes object name (lowercase letters, digits, '-' and '.'); name the \
             workload with DYNO_SCALER_TARGET (TOML target), e.g. deployment/my-worker",
            target.name()
        ));
    }
    Ok(Some(match target {
        Target::Deployment(n) => format!("deployment/{n}"),
        Target::StatefulSet(n) => format!("statefulset/{n}"),
    }))
}

/// The Kubernetes namespace: `DYNO_SCALER_NAMESPACE`, else the file's `[kubernetes] namespace`; `None` lets the
/// platform take the in-cluster one or the kubeconfig context's.
pub fn namespace(env: Option<String>, file: Option<String>) -> Result<Option<String>, ConfigError> {
    let (value, origin) = match (env, file) {
        (Some(v), _) => (v, "DYNO_SCALER_NAMESPACE"),
        (None, Some(v)) => (v, "[kubernetes] namespace"),
        (None, None) => return Ok(None),
    };
    let v = value.trim();
    let label = v.len() <= 63 && !v.contains('.') && is_object_name(v);
    if !label {
        return err(format!(
            "{origin}: {v:?} is not a namespace name (at most 63 lowercase letters, digits and '-', starting and \
             ending with a letter or digit)"
        ));
    }
    Ok(Some(v.to_owned()))
}

/// An RFC 1123 subdomain, as Kubernetes names Deployments and StatefulSets.
fn is_object_name(n: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter().all(|&c| alnum(c) || c == b'-' || c == b'.')
}
