//! Notifications when dyno-scaler cannot do its job ([`Conditions`]), posted to a webhook off the scaling path
//! ([`Notifier`]): one message when a condition begins to count and one when it clears, rate-limited, retried with
//! backoff, never carrying a secret (the webhook's URL is one, and appears nowhere either).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dyno_scaler_core::backoff::Backoff;
use serde_json::json;
use tokio::sync::mpsc;

use crate::settings::watch::{NotifyFormat, NotifySettings};

mod conditions;

pub use conditions::{Condition, Conditions, Notice};

/// How many notices may wait to be sent; more are dropped (and counted), never waited for.
const QUEUE: usize = 64;
/// How many attempts a notice gets.
const ATTEMPTS: u32 = 6;
/// The rate limit: a burst of this many, then one more per `REFILL`.
const BURST: f64 = 10.0;
const REFILL: Duration = Duration::from_secs(60);

/// The body of `n` in `format`, as posted.
///
/// ```
/// use dyno_scaler::notify::{Condition, Notice, body};
/// use dyno_scaler::settings::watch::NotifyFormat;
/// let n = Notice { condition: Condition::PinnedAtMax, process_type: "worker".into(), firing: true, since: 0.0,
///     at: 300.0, message: "4 workers (max_workers) and 9 jobs still waiting".into() };
/// let slack = body(&n, NotifyFormat::Slack, "web.1");
/// assert!(slack["text"].as_str().unwrap().contains("worker: pinned at max_workers"));
/// assert_eq!(body(&n, NotifyFormat::Json, "web.1")["condition"], "pinned_at_max");
/// ```
pub fn body(n: &Notice, format: NotifyFormat, instance: &str) -> serde_json::Value {
    let what = match n.condition {
        Condition::SourceUnreadable => "queue unreadable",
        Condition::PinnedAtMax => "pinned at max_workers with work waiting",
        Condition::PlatformRefused => "the platform refuses",
        Condition::LeaseLost => "lease lost, nobody scaling",
        Condition::DrainGivenUp => "scale-down given up",
    };
    let state = if n.firing { "firing" } else { "recovered" };
    match format {
        NotifyFormat::Slack => {
            let mark = if n.firing { ":warning:" } else { ":white_check_mark:" };
            json!({ "text": format!("{mark} dyno-scaler {}: {what}{}: {}", n.process_type,
                if n.firing { "" } else { ", recovered" }, n.message) })
        }
        NotifyFormat::Json => json!({
            "source": "dyno-scaler",
            "instance": instance,
            "condition": n.condition.name(),
            "state": state,
            "process_type": n.process_type,
            "since": n.since,
            "at": n.at,
            "summary": what,
            "message": n.message,
        }),
    }
}

/// Sends notices to the webhook on a task of its own.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Notice>,
    dropped: Arc<AtomicU64>,
    pending: Arc<AtomicU64>,
}

impl Notifier {
    /// Starts the sending task (on the current Tokio runtime).
    pub fn start(settings: &NotifySettings) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("dyno-scaler/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("DYNO_SCALER_NOTIFY_URL: cannot build the HTTP client: {}", e.without_url()))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let pending = Arc::new(AtomicU64::new(0));
        let task = Task {
            client,
            url: settings.url.clone(),
            format: settings.format,
            instance: dyno_scaler_core::lease::identity(),
            dropped: dropped.clone(),
            pending: pending.clone(),
        };
        tokio::spawn(task.run(rx));
        Ok(Self { tx, dropped, pending })
    }

    /// Queues `n` without waiting: a full queue drops it (counted, and said in the next message sent).
    pub fn send(&self, n: Notice) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.try_send(n).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Waits until every queued notice is sent or given up, `limit` at most (before the program exits).
    pub async fn flush(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.pending.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }
}

struct Task {
    client: reqwest::Client,
    url: dyno_scaler_core::Secret,
    format: NotifyFormat,
    instance: String,
    dropped: Arc<AtomicU64>,
    pending: Arc<AtomicU64>,
}

impl Task {
    async fn run(self, mut rx: mpsc::Receiver<Notice>) {
        let mut tokens = BURST;
        let mut refilled = tokio::time::Instant::now();
        while let Some(n) = rx.recv().await {
            let now = tokio::time::Instant::now();
            tokens = (tokens + (now - refilled).as_secs_f64() / REFILL.as_secs_f64()).min(BURST);
            refilled = now;
            if tokens < 1.0 {
                self.dropped.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(condition = n.condition.name(), process_type = %n.process_type, "notification dropped: more than the rate limit allows");
            } else {
                tokens -= 1.0;
                self.deliver(&n).await;
            }
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    async fn deliver(&self, n: &Notice) {
        let mut b = body(n, self.format, &self.instance);
        let dropped = self.dropped.swap(0, Ordering::SeqCst);
        if dropped > 0 {
            let note = format!(" ({dropped} earlier notifications were dropped)");
            match self.format {
                NotifyFormat::Slack => b["text"] = format!("{}{note}", b["text"].as_str().unwrap_or_default()).into(),
                NotifyFormat::Json => b["dropped"] = dropped.into(),
            }
        }
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for attempt in 1..=ATTEMPTS {
            let outcome = self.client.post(self.url.expose()).json(&b).send().await;
            let why = match outcome {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(condition = n.condition.name(), process_type = %n.process_type, firing = n.firing, "notification sent");
                    return;
                }
                Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 && r.status().as_u16() != 408 => {
                    tracing::warn!(
                        status = r.status().as_u16(),
                        condition = n.condition.name(),
                        "notification refused by the webhook; not retried"
                    );
                    return;
                }
                Ok(r) => format!("status {}", r.status().as_u16()),
                Err(e) => e.without_url().to_string(),
            };
            if attempt == ATTEMPTS {
                tracing::warn!(error = %why, condition = n.condition.name(), attempts = ATTEMPTS, "notification given up");
                return;
            }
            let wait = backoff.fail(None);
            tracing::debug!(error = %why, retry_in_ms = wait.as_millis() as u64, "notification failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests;
