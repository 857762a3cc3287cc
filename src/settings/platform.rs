//! Which platform each process type runs on (`platform`, `DYNO_SCALER_PLATFORM`) and what it scales there
//! (`target`, `DYNO_SCALER_TARGET`; `DYNO_SCALER_NAMESPACE`). Every error names the setting.

use super::layers::Layers;
use super::{ConfigError, err};

/// Where a process type's workers run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformChoice {
    /// The Heroku formation named as the process type.
    Heroku,
    /// A Kubernetes workload, as `deployment/NAME` or `statefulset/NAME`.
    #[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
    Kubernetes {
        /// `deployment/NAME` or `statefulset/NAME`.
        target: String,
    },
}

impl PlatformChoice {
    /// `heroku` or `kubernetes`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Heroku => "heroku",
            Self::Kubernetes { .. } => "kubernetes",
        }
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

/// One process type's platform: its table's `platform` over the default, with its `target` (Kubernetes only;
/// default `deployment/<process type>`).
pub fn choose(l: &mut Layers, default: &Named, process_type: &str) -> Result<PlatformChoice, ConfigError> {
    let (name, origin) = l.take_string("platform")?.unwrap_or_else(|| default.clone());
    let target = l.take_string("target")?;
    match name.trim().to_ascii_lowercase().as_str() {
        "heroku" => match target {
            Some((_, t_origin)) => err(format!(
                "{t_origin}: applies to the Kubernetes platform only, and {process_type} runs on Heroku ({origin}); \
                 remove it or set the platform to kubernetes"
            )),
            None => Ok(PlatformChoice::Heroku),
        },
        "kubernetes" => kubernetes(target, process_type, &origin),
        _ => err(format!("{origin}: unknown platform {name:?}; use heroku or kubernetes")),
    }
}

#[cfg(not(feature = "kubernetes"))]
fn kubernetes(_: Option<Named>, _: &str, origin: &str) -> Result<PlatformChoice, ConfigError> {
    err(format!(
        "{origin}: this binary was built without the Kubernetes platform: build it with the `kubernetes` feature"
    ))
}

#[cfg(feature = "kubernetes")]
fn kubernetes(target: Option<Named>, process_type: &str, _: &str) -> Result<PlatformChoice, ConfigError> {
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
    let target = match target {
        Target::Deployment(n) => format!("deployment/{n}"),
        Target::StatefulSet(n) => format!("statefulset/{n}"),
    };
    Ok(PlatformChoice::Kubernetes { target })
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
