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

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
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

/// Query parameters whose values are credentials (`?password=...` is accepted by Postgres and some Redis clients).
const SECRET_PARAMS: &[&str] = &["password", "pass", "pwd", "passwd", "secret", "token", "sslpassword", "auth"];

/// What stands for a URL that cannot be parsed: it may hold a password anywhere, so none of it is shown.
pub const UNPARSEABLE: &str = "[unparseable URL, not shown]";

/// A URL safe to log: its password (and a user name standing alone, which is often a token) and any credential
/// query parameter replaced by `***`. The URL is parsed (the `url` crate), so a password holding `/`, `?`, `#` or
/// `@` unencoded is still found; a URL that cannot be parsed is not shown at all.
///
/// ```
/// use dyno_scaler_core::secret::redact_url;
/// assert_eq!(redact_url("redis://:hunter2@host:6379/0"), "redis://:***@host:6379/0");
/// assert_eq!(redact_url("postgres://app:pw@db/app"), "postgres://app:***@db/app");
/// assert_eq!(redact_url("redis://localhost:6379"), "redis://localhost:6379");
/// assert_eq!(redact_url("redis://:pa/ss?w#d@host:6379"), "redis://***@host:6379");
/// assert_eq!(redact_url("redis:/:hunter2@host"), "redis:***@host");
/// assert_eq!(redact_url("postgres://db/app?password=pw&sslmode=require"), "postgres://db/app?password=***&sslmode=require");
/// ```
pub fn redact_url(url: &str) -> String {
    match parsed_safely(url) {
        Some(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            } else if !u.username().is_empty() {
                let _ = u.set_username("***");
            }
            if u.query_pairs().any(|(k, _)| is_secret_param(&k)) {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if is_secret_param(&k) { "***".to_owned() } else { v.into_owned() };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
                return u.as_str().replace("%2A%2A%2A", "***");
            }
            u.as_str().to_owned()
        }
        None => match url.rfind('@') {
            // Everything before the last `@` may be user information: keep only the scheme.
            Some(at) => {
                let scheme_end = url.find("://").map(|i| i + 3).or_else(|| url.find(':').map(|i| i + 1));
                let scheme = scheme_end.filter(|e| *e <= at).map_or("", |e| &url[..e]);
                format!("{scheme}***{}", &url[at..])
            }
            None => UNPARSEABLE.to_owned(),
        },
    }
}

fn is_secret_param(key: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| key.eq_ignore_ascii_case(p))
}

/// The URL parsed, unless it parses into something other than what a person meant: an `@` that did not end up in
/// the user information (a password with an unencoded `/`, `?` or `#` splits the URL early), or no host.
fn parsed_safely(url: &str) -> Option<url::Url> {
    let u = url::Url::parse(url).ok()?;
    let has_userinfo = !u.username().is_empty() || u.password().is_some();
    if (url.contains('@') && !has_userinfo) || !u.has_host() {
        return None;
    }
    // An `@` after the one that ends the user information sits in the path, query or fragment: suspicious.
    if has_userinfo && u[url::Position::BeforeHost..].contains('@') {
        return None;
    }
    Some(u)
}

/// Removes every occurrence of `secret` (when non-empty) from `text`.
pub fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() { text.to_owned() } else { text.replace(secret, "***") }
}

/// The password of a URL's user information, if any (`scheme://user:password@host`), as written (not decoded).
/// The user information ends at the last `@`, so a password holding `/`, `?` or `#` unencoded is found whole.
///
/// ```
/// use dyno_scaler_core::secret::url_password;
/// assert_eq!(url_password("redis://:pw@h:1/0"), Some("pw"));
/// assert_eq!(url_password("redis://:p/w#x@h:1/0"), Some("p/w#x"));
/// assert_eq!(url_password("postgres://u@h/db"), None);
/// ```
pub fn url_password(url: &str) -> Option<&str> {
    userinfo(url)?.split_once(':').map(|(_, p)| p).filter(|p| !p.is_empty())
}

/// Everything between the scheme and the last `@`.
fn userinfo(url: &str) -> Option<&str> {
    let rest = &url[url.find("://").map_or(url.find(':')? + 1, |i| i + 3)..];
    Some(&rest[..rest.rfind('@')?])
}

/// `text` with `url`, its password (as written and percent-decoded), a lone user name and its credential query
/// values removed: safe to show.
pub fn scrub_url(text: &str, url: &str) -> String {
    let mut secrets: Vec<String> = vec![url.to_owned()];
    if let Some(info) = userinfo(url) {
        // A user name standing alone is often a token; with a password, only the password is secret.
        secrets.push(info.trim_start_matches(':').to_owned());
    }
    if let Some(pw) = url_password(url) {
        secrets.push(pw.to_owned());
        secrets.push(percent_encoding::percent_decode_str(pw).decode_utf8_lossy().into_owned());
    }
    if let Ok(u) = url::Url::parse(url) {
        if u.password().is_none() && !u.username().is_empty() {
            secrets.push(u.username().to_owned());
        }
        secrets.extend(u.query_pairs().filter(|(k, _)| is_secret_param(k)).map(|(_, v)| v.into_owned()));
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.iter().filter(|s| s.len() >= 2).fold(text.to_owned(), |acc, s| scrub(&acc, s))
}

/// A source's `Debug`: its name, its URL with the password redacted ([`redact_url`]), then `fields`, so that a
/// source's `Debug` never shows a secret.
///
/// ```
/// use dyno_scaler_core::Secret;
/// struct S(Secret);
/// impl std::fmt::Debug for S {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         dyno_scaler_core::secret::debug_source(f, "S", &self.0, &[("queues", &None::<Vec<String>>)])
///     }
/// }
/// let s = format!("{:?}", S(Secret::new("redis://:hunter2@host:6379")));
/// assert!(!s.contains("hunter2") && s.starts_with("S { url: \"redis://") && s.ends_with("queues: None }"), "{s}");
/// ```
pub fn debug_source(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    url: &Secret,
    fields: &[(&str, &dyn fmt::Debug)],
) -> fmt::Result {
    let mut d = f.debug_struct(name);
    d.field("url", &redact_url(url.expose()));
    for (key, value) in fields {
        d.field(key, value);
    }
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way a password was seen printed: unencoded `/`, `?`, `#`, `@`, a scheme typo, query parameters.
    #[test]
    fn no_password_survives_redaction() {
        let cases = [
            ("redis://:s3cr/et@host:6379/0", "s3cr/et"),
            ("redis://:s3cr?et@host:6379", "s3cr?et"),
            ("redis://:s3cr#et@host:6379", "s3cr#et"),
            ("redis://u:s3cr@et@host:6379", "s3cr@et"),
            ("redis://h:s3cret@host:6379", "s3cret"),
            ("redis://u:123/s3cret@host", "123/s3cret"),
            ("redis:/:s3cret@host", "s3cret"),
            ("redis:s3cret@host", "s3cret"),
            ("rediss://default:p%40ss%2Fw0rd@ec2-1-2-3-4.compute.amazonaws.com:12345", "p%40ss%2Fw0rd"),
            ("postgres://db/app?password=s3cret", "s3cret"),
            ("postgres://db/app?sslmode=require&PASSWORD=s3cret", "s3cret"),
            ("redis://s3cret-token@host:6379", "s3cret-token"),
            ("http://:s3cret@h ost", "s3cret"),
        ];
        for (url, secret) in cases {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} was shown as {shown}");
            let text = format!("cannot connect to {url}: bad password {secret} for {}", url.replace("://", ":/"));
            let scrubbed = scrub_url(&text, url);
            assert!(!scrubbed.contains(secret), "{url}: scrubbed text still has it: {scrubbed}");
        }
    }

    #[test]
    fn decoded_passwords_are_scrubbed_too() {
        let url = "postgres://app:p%40ss%2Fw0rd@db/app";
        assert_eq!(scrub_url("auth failed for p@ss/w0rd", url), "auth failed for ***");
    }

    #[test]
    fn unparseable_urls_are_not_shown() {
        assert_eq!(redact_url("127.0.0.1:6379"), UNPARSEABLE);
        assert_eq!(redact_url("redis://[::1"), UNPARSEABLE);
        assert_eq!(redact_url("redis://localhost:6379/0"), "redis://localhost:6379/0");
    }
}
