//! The JSON shapes of the Heroku Platform API resources dyno-scaler uses.

use serde::{Deserialize, Serialize};

/// `{"id", "name"}` of an app, a dyno size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdName {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
}

/// A formation object (`definitions.formation`; strict properties).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Formation {
    /// The app.
    pub app: IdName,
    /// Command run by the process type.
    pub command: String,
    /// When the process type was created.
    pub created_at: String,
    /// The dyno size.
    pub dyno_size: IdName,
    /// UUID of the formation.
    pub id: String,
    /// Number of processes to maintain.
    pub quantity: u32,
    /// Deprecated size name, still returned.
    pub size: String,
    /// Process type.
    #[serde(rename = "type")]
    pub process_type: String,
    /// When it was last updated.
    pub updated_at: String,
}

/// `{"id", "version"}` of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRef {
    /// UUID.
    pub id: String,
    /// Release number.
    pub version: u64,
}

/// A dyno object (`definitions.dyno`; strict properties).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dyno {
    /// The app.
    pub app: IdName,
    /// Rendezvous URL of an attached one-off dyno, or null.
    pub attach_url: Option<String>,
    /// Command.
    pub command: String,
    /// When created.
    pub created_at: String,
    /// UUID.
    pub id: String,
    /// `worker.3` on Cedar.
    pub name: String,
    /// The release it runs.
    pub release: ReleaseRef,
    /// Size name.
    pub size: String,
    /// `crashed`, `down`, `idle`, `starting` or `up`.
    pub state: String,
    /// Process type, or `run`, `release`, `scheduler`.
    #[serde(rename = "type")]
    pub process_type: String,
    /// When the state last changed.
    pub updated_at: String,
}

/// An error body: `{"id", "message"[, "url"]}` plus optional extras (`limit` on limit errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ErrorBody {
    /// Error id (`not_found`, `rate_limit`, ...).
    #[serde(default)]
    pub id: String,
    /// End-user message.
    #[serde(default)]
    pub message: String,
    /// Reference URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The quantity limit, on `cannot_run_above_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<serde_json::Value>,
}
