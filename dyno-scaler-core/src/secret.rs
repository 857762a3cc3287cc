//! Secrets that never reach logs, errors or `Debug` output.

use std::fmt;

/// A secret string (API key, password, URL with credentials). `Debug` and `Display` print `[redacted]`;
/// [`Secret::expose`] is the only way to read it.
///
/// ```
/// use dyno_scaler_core::Secret;
/// let key = Secret::new("01234567-89ab-cdef");
/// assert_eq!(format!("{key:?} {key}"), "Secret([redacted]) [redacted]");
/// assert_eq!(key.expose(), "01234567-89ab-cdef");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A URL with its password (and a user name that carries a token) replaced by `***`, safe to log.
///
/// ```
/// use dyno_scaler_core::secret::redact_url;
/// assert_eq!(redact_url("redis://:hunter2@host:6379/0"), "redis://:***@host:6379/0");
/// assert_eq!(redact_url("postgres://app:pw@db/app"), "postgres://app:***@db/app");
/// assert_eq!(redact_url("redis://localhost:6379"), "redis://localhost:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let redacted = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{}{}{}", &url[..scheme_end + 3], redacted, &rest[at..])
}

/// Removes every occurrence of `secret` (when non-empty) from `text`.
pub fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() { text.to_owned() } else { text.replace(secret, "***") }
}

/// The password of a URL's user information, if any (`scheme://user:password@host`).
///
/// ```
/// use dyno_scaler_core::secret::url_password;
/// assert_eq!(url_password("redis://:pw@h:1/0"), Some("pw"));
/// assert_eq!(url_password("postgres://u@h/db"), None);
/// ```
pub fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    userinfo.split_once(':').map(|(_, p)| p).filter(|p| !p.is_empty())
}

/// `text` with `url` and the URL's password removed: safe to show.
pub fn scrub_url(text: &str, url: &str) -> String {
    let full = scrub(text, url);
    match url_password(url) {
        Some(pw) => scrub(&full, pw),
        None => full,
    }
}
