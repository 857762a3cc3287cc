//! A faithful fake of the Heroku Platform API, on an ephemeral loopback port (feature `fake`).
//!
//! It follows `heroku-platform-api.md`: header checks in Heroku's order (`Accept` → 406, credentials → 401,
//! access → 403), a GCRA token bucket per account with `RateLimit-Remaining` on every response and 429 when
//! empty, per-size and per-app quantity limits answered with Heroku's 422 body, Cedar dyno naming with the
//! highest numbers stopped first, `Range`/`Next-Range` pagination, and fault injection (forced statuses,
//! delays, dropped connections). Every request is recorded, without the credentials.
//!
//! ```
//! use dyno_scaler_heroku::fake::{FakeHeroku, FakeConfig};
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! let fake = FakeHeroku::start(FakeConfig::default()).await;
//! fake.add_app("my-app", "alice@example.com");
//! fake.add_formation("my-app", "worker", "bundle exec sidekiq", "Standard-1X", 0);
//! fake.add_token("01234567-89ab-cdef-0123-456789abcdef", "alice@example.com");
//! // point HerokuConfig::base_url at fake.url()
//! assert!(fake.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(fake.quantity("my-app", "worker"), Some(0));
//! # });
//! ```

mod formation;
mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dyno_scaler_core::{Clock, SystemClock};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use state::State;
pub use state::{Fault, FaultAction, RecordedRequest};

/// Knobs of the fake.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Token bucket capacity per account (Heroku: 4,500).
    pub rate_capacity: f64,
    /// Tokens added per second (Heroku: 1.25).
    pub rate_refill_per_sec: f64,
    /// Clock of the rate limiter and of dyno state changes.
    pub clock: Arc<dyn Clock>,
    /// A new dyno is `starting` for this long, then `up`.
    pub boot_delay: Duration,
    /// A stopped dyno stays listed for this long.
    pub drain_delay: Duration,
    /// Most dynos of all types in one app (Heroku: 100).
    pub app_limit: u32,
    /// Accept `quantity` as a numeric or signed string, as the CLI sends it.
    pub allow_string_quantity: bool,
    /// Fir generation (with this seed): dynos are named `<type>-<10 hex>-<5 alnum>` and a scale-down stops
    /// dynos picked by a seeded random rule, since Fir's stop order is not the Cedar numbering.
    pub fir_seed: Option<u64>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            rate_capacity: 4500.0,
            rate_refill_per_sec: 1.25,
            clock: Arc::new(SystemClock),
            boot_delay: Duration::ZERO,
            drain_delay: Duration::ZERO,
            app_limit: 100,
            allow_string_quantity: true,
            fir_seed: None,
        }
    }
}

/// The running fake server. Dropping it stops the server.
pub struct FakeHeroku {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeHeroku {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHeroku").field("addr", &self.addr).finish()
    }
}

impl Drop for FakeHeroku {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The answer of the router: a response, or a dropped connection.
pub(crate) enum Outcome {
    Respond(hyper::Response<Full<Bytes>>),
    Drop,
}

#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}
impl std::error::Error for Dropped {}

impl FakeHeroku {
    /// Starts the server on `127.0.0.1:<ephemeral>`.
    pub async fn start(config: FakeConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::new(config)));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<Incoming>| {
                        let st = st.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            match routes::handle(&st, parts, body).await {
                                Outcome::Respond(r) => Ok::<_, Dropped>(r),
                                Outcome::Drop => Err(Dropped),
                            }
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// The base URL to give the client (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Adds an app owned by `account` (a collaborator has access).
    pub fn add_app(&self, name: &str, account: &str) {
        self.with(|s| s.add_app(name, account));
    }

    /// Gives `account` access to `app`.
    pub fn grant(&self, app: &str, account: &str) {
        self.with(|s| s.grant(app, account));
    }

    /// Adds a process type to `app` (`size` e.g. `Standard-1X`, `Eco`, `Performance-M`).
    pub fn add_formation(&self, app: &str, process_type: &str, command: &str, size: &str, quantity: u32) {
        self.with(|s| s.add_formation(app, process_type, command, size, quantity));
    }

    /// Adds a one-off or other non-formation dyno (`run`, `release`, `scheduler`).
    pub fn add_one_off(&self, app: &str, dyno_type: &str, command: &str) {
        self.with(|s| s.add_one_off(app, dyno_type, command));
    }

    /// Makes `token` valid for `account`.
    pub fn add_token(&self, token: &str, account: &str) {
        self.with(|s| s.tokens.insert(token.to_owned(), account.to_owned()));
    }

    /// Caps the quantity of one process type (in addition to the size limits).
    pub fn set_type_limit(&self, app: &str, process_type: &str, limit: u32) {
        self.with(|s| s.type_limits.insert((app.to_owned(), process_type.to_owned()), limit));
    }

    /// Queues a fault: the next `times` requests matching `method` (any when `None`) and `path_prefix` get
    /// `action` instead of (or before, for a delay) the normal answer.
    pub fn inject(&self, fault: Fault) {
        self.with(|s| s.faults.push(fault));
    }

    /// The current quantity of a process type.
    pub fn quantity(&self, app: &str, process_type: &str) -> Option<u32> {
        self.with(|s| s.quantity(app, process_type))
    }

    /// Sets a quantity directly (a person scaling from the dashboard); not recorded as a request.
    pub fn set_quantity(&self, app: &str, process_type: &str, quantity: u32) {
        self.with(|s| s.apply_quantity(app, process_type, quantity));
    }

    /// The dyno names of a type currently listed.
    pub fn dyno_names(&self, app: &str, process_type: &str) -> Vec<String> {
        self.with(|s| s.dyno_names(app, process_type))
    }

    /// Tokens left in `account`'s pool now.
    pub fn tokens(&self, account: &str) -> f64 {
        self.with(|s| s.peek_tokens(account))
    }

    /// Sets the tokens left in `account`'s pool.
    pub fn set_tokens(&self, account: &str, tokens: f64) {
        self.with(|s| s.set_tokens(account, tokens));
    }

    /// Every request received, in order (credentials removed).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.with(|s| s.requests.clone())
    }

    /// Requests with this method, in order.
    pub fn requests_with(&self, method: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.method == method).collect()
    }

    /// Removes every queued fault: the fake answers normally again.
    pub fn clear_faults(&self) {
        self.with(|s| s.faults.clear());
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.with(|s| s.requests.clear());
    }
}
