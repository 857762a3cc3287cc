//! Log set-up: human-readable or JSON on stderr, filtered by RUST_LOG.
//!
//! The JSON lines keep each field's type: numbers and booleans as JSON numbers and booleans, a field given as
//! `Option` only when set (absent otherwise, never `"Some(..)"`), a list (a field whose text is a JSON array or
//! object, as `Vec<String>`'s `Debug` is) as that array, and every other value as a string. One object per line:
//! `timestamp`, `level`, `message`, then the fields. Errors a command reports once logging is set up go through
//! [`error`], so a JSON log stays JSON to its last line.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::config::LogFormat;

static JSON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let json = matches!(format, LogFormat::Json);
    let _ = JSON.set(json);
    let _ = if json { builder.event_format(JsonLines).try_init() } else { builder.with_ansi(false).try_init() };
}

/// Reports a command's error: `error: ...` on stderr, or a JSON record (`level` ERROR, `message` "error", `error`)
/// when the log is JSON.
pub fn error(message: impl std::fmt::Display) {
    if JSON.get().copied().unwrap_or(false) {
        tracing::error!(error = %message, "error");
    } else {
        eprintln!("error: {message}");
    }
}

/// One JSON object per event, its fields typed.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut record = Map::new();
        let now = dyno_scaler::core::timefmt::format_rfc3339_nanos(std::time::SystemTime::now());
        record.insert("timestamp".into(), Value::String(now));
        record.insert("level".into(), Value::String(event.metadata().level().to_string()));
        event.record(&mut Fields(&mut record));
        let line = serde_json::to_string(&Value::Object(record)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Collects an event's fields into a JSON object, each with its JSON type.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.put(field, typed(text));
    }
}

/// A value's text as JSON: a list or a map whose text is JSON already (`Debug` of `Vec<String>`) as itself, any
/// other text as a string.
fn typed(text: String) -> Value {
    if (text.starts_with('[') || text.starts_with('{'))
        && let Ok(v) = serde_json::from_str::<Value>(&text)
    {
        return v;
    }
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_become_arrays_and_other_text_stays_a_string() {
        let hosts = vec!["worker.2".to_owned(), "worker.3".to_owned()];
        assert_eq!(typed(format!("{hosts:?}")), serde_json::json!(["worker.2", "worker.3"]));
        assert_eq!(typed(format!("{:?}", Vec::<String>::new())), serde_json::json!([]));
        // A reason that happens to begin with a bracket but is no JSON stays text.
        assert_eq!(typed("[a, b] ready".into()), Value::String("[a, b] ready".into()));
        assert_eq!(typed("Some(2.5)".into()), Value::String("Some(2.5)".into()));
    }
}
