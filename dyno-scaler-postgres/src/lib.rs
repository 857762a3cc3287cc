//! What the Postgres sources of dyno-scaler (DelayedJob, Solid Queue, GoodJob) share: a read-only pool with a
//! statement timeout, a session of its own for `LISTEN`, errors with redacted URLs, table names checked and
//! quoted, the column type that says which clock to read, and the learned-summary table.
#![deny(missing_docs)]

use std::time::Duration;

use dyno_scaler_core::error::Cause;
use dyno_scaler_core::events::{EventMode, Hints};
use dyno_scaler_core::secret::{redact_url, scrub_url, url_password};
use dyno_scaler_core::{QueueStats, Secret, SettingError, Snapshot, SourceError};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

mod history;
pub mod learned;
pub mod lease;
mod store;
pub mod trigger;
pub use store::{PostgresStore, whole_source, whole_source_with_history};

/// A source's connection to its database: the snapshot pool and the `LISTEN` session's own.
#[derive(Clone)]
pub struct Db {
    name: &'static str,
    url: Secret,
    timeout: Duration,
    /// The snapshots' statements ([`Db::pool`]): one connection, so every snapshot finds it warm (with two, a
    /// snapshot asking while the last statement's connection was still on its way back opened a second one, 90 ms),
    /// replaced when a statement gets no answer in time. Nothing else runs on it: the event path's `LISTEN` session
    /// is apart ([`Db::listen`]), and so is everything off the hot path ([`Db::side`]), so the snapshot an event
    /// wakes finds its connection warm and free (a new one costs a TLS handshake: 80 ms on Debian's Postgres).
    pool: std::sync::Arc<std::sync::RwLock<PgPool>>,
    /// Everything off the hot path (one connection): the learned summary and the pause, the queue names seen, the
    /// trigger's and the indexes' checks. A read of every job row's queue name (hundreds of milliseconds on a
    /// big GoodJob table) at the start once held the snapshots' only connection, so the first event's snapshot
    /// opened another: 85 ms instead of 5 (issue 34).
    side: std::sync::Arc<std::sync::RwLock<PgPool>>,
    /// The learned table (quoted), where one is set ([`learned`]).
    learned: Option<String>,
    /// How the pools connect (for a lease's own session).
    opts: PgConnectOptions,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("name", &self.name).field("url", &redact_url(self.url.expose())).finish()
    }
}

/// A pool of one connection, connecting lazily with `opts` (every pool here serves one kind of statement in turn).
fn pool(opts: &PgConnectOptions, timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        .test_before_acquire(false)
        .connect_lazy_with(opts.clone())
}

/// A pool ([`pool`]) in a slot [`Db::renew_pool`] can replace it in.
fn shared(opts: &PgConnectOptions, timeout: Duration) -> std::sync::Arc<std::sync::RwLock<PgPool>> {
    std::sync::Arc::new(std::sync::RwLock::new(pool(opts, timeout)))
}

/// How often the `LISTEN` session is asked whether it still answers (as the Redis event path pings).
pub const LISTEN_PROBE: Duration = Duration::from_secs(15);

impl Db {
    /// Lazy pools for `url`, keeping what the policy learned in `learned_table` when one is set (no I/O here): every statement bounded by `timeout`, no parallel workers (the
    /// snapshots read a few thousand index entries: starting workers costs more than it saves), no JIT.
    pub fn new(
        name: &'static str,
        url: &Secret,
        timeout: Duration,
        learned_table: Option<&str>,
    ) -> Result<Self, SettingError> {
        let opts: PgConnectOptions = url.expose().parse().map_err(|e: sqlx::Error| {
            let message = format!("invalid database URL {}: {}", redact_url(url.expose()), scrub(&e, url));
            SettingError::new("url", message)
        })?;
        let opts = opts.application_name("dyno-scaler").options([
            ("statement_timeout", format!("{}", timeout.as_millis().max(1))),
            ("max_parallel_workers_per_gather", "0".to_string()),
            // The statements are many small parts whose summed cost crosses `jit_above_cost` on big tables: JIT then
            // compiles for half a second to save microseconds (measured: 640 ms against 25 ms on GoodJob's tables).
            ("jit", "off".to_string()),
        ]);
        let (pool, side) = (shared(&opts, timeout), shared(&opts, timeout));
        let learned = learned_table.and_then(quote_table);
        Ok(Self { name, url: url.clone(), timeout, pool, side, learned, opts })
    }

    /// The same pools with `plan_cache_mode = force_generic_plan`: a statement is planned once per connection, not
    /// at each snapshot. For statements whose plans do not depend on their parameters' values (the clock hidden in
    /// InitPlans; parameters that are bounds or lists whose size the plan need not know): Postgres otherwise keeps
    /// re-planning a statement whose generic estimate looks costlier than its custom plans, as it did Solid Queue's
    /// at every snapshot (BENCHMARKS.md; GoodJob's it planned generically already). The pools are lazy: making
    /// them again costs no connection.
    pub fn generic_plans(mut self) -> Self {
        self.opts = self.opts.options([("plan_cache_mode", "force_generic_plan")]);
        (self.pool, self.side) = (shared(&self.opts, self.timeout), shared(&self.opts, self.timeout));
        self
    }

    /// A database error as a typed [`SourceError`], the URL and its password removed, the cause kept (scrubbed).
    pub fn map_err(&self, e: sqlx::Error) -> SourceError {
        let message = scrub(&e, &self.url);
        let url = self.url.expose();
        let cause = Some(Cause::scrubbed(&e, &[url, url_password(url).unwrap_or_default()]));
        let source_name = self.name.into();
        match &e {
            sqlx::Error::PoolTimedOut => SourceError::Timeout { source_name, timeout: self.timeout },
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
                SourceError::Unavailable { source_name, message, cause }
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
                SourceError::Timeout { source_name, timeout: self.timeout }
            }
            _ => SourceError::Protocol { source_name, message, cause },
        }
    }

    /// Runs `work` (a snapshot's statement) bounded by the timeout, connecting included; a pool that cannot
    /// connect times out like a slow query, so "connection refused" is said when that is why.
    pub async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.timeout + Duration::from_millis(500), work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(SourceError::Timeout { .. })) | Err(_) => {
                if let Some(e) = self.refused().await {
                    return Err(e);
                }
                self.renew_pool();
                Err(SourceError::Timeout { source_name: self.name.into(), timeout: self.timeout })
            }
            Ok(Err(e)) => Err(e),
        }
    }

    /// The pool the snapshots' statements run on, and nothing else.
    pub fn pool(&self) -> PgPool {
        self.pool.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The pool of every statement off the hot path (not a snapshot's).
    pub fn side(&self) -> PgPool {
        self.side.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// After a statement got no answer in time: a new pool, so that no connection of the old one (held half-open
    /// by the network, or stuck giving a cancelled statement's connection back) serves the next statement. The old
    /// pool's connections close as their sockets fail.
    fn renew_pool(&self) {
        for slot in [&self.pool, &self.side] {
            *slot.write().unwrap_or_else(|e| e.into_inner()) = pool(&self.opts, self.timeout);
        }
        tracing::warn!(source = self.name, "Postgres did not answer in time: the connections are replaced");
    }

    /// The distinct names one statement returns (`sql`, with `arg` as `$1`), sorted, bounded like a snapshot: the
    /// queue names a table has seen ([`dyno_scaler_core::Inspect::queues_seen`]).
    pub async fn names(&self, sql: String, arg: Option<String>) -> Result<Vec<String>, SourceError> {
        let work = async {
            let q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(arg);
            q.fetch_all(&self.side()).await.map_err(|e| self.map_err(e))
        };
        let mut names = self.bounded(work).await?;
        names.sort();
        Ok(names)
    }

    /// `Some` when the database's port refuses connections (checked with one TCP connect).
    async fn refused(&self) -> Option<SourceError> {
        let url = url::Url::parse(self.url.expose()).ok()?;
        let (host, port) = (url.host_str()?.to_owned(), url.port().unwrap_or(5432));
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        match tokio::time::timeout(Duration::from_millis(500), connect).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(SourceError::Unavailable {
                source_name: self.name.into(),
                cause: Some(Cause::scrubbed(&e, &[])),
                message: format!("connection refused by {host}:{port}"),
            }),
            _ => None,
        }
    }

    /// Whether a learned table is set ([`dyno_scaler_core::Store::remembers`]).
    pub fn remembers(&self) -> bool {
        self.learned.is_some()
    }

    /// Keeps `summary` for `process_type` in the learned table, when one is set.
    pub async fn remember(&self, process_type: &str, summary: &str) -> Result<(), SourceError> {
        match &self.learned {
            Some(t) => {
                self.bounded(async {
                    learned::remember(&self.side(), t, process_type, summary).await.map_err(|e| self.map_err(e))
                })
                .await
            }
            None => Ok(()),
        }
    }

    /// The learned table (quoted), where one is set.
    pub fn learned_table(&self) -> Option<&str> {
        self.learned.as_deref()
    }

    /// The lease of `process_type` for the queue in `scope` (its table or schema, so two apps sharing a database
    /// have their own): an advisory lock on a session of its own ([`lease`]).
    pub fn lease(&self, scope: &str, process_type: &str) -> lease::PgLease {
        lease::PgLease::new(self.clone(), self.opts.clone(), scope, process_type)
    }

    /// Deletes the learned table's row `key`, when a table is set.
    pub async fn forget(&self, key: &str) -> Result<(), SourceError> {
        match &self.learned {
            Some(t) => {
                self.bounded(async { learned::forget(&self.side(), t, key).await.map_err(|e| self.map_err(e)) }).await
            }
            None => Ok(()),
        }
    }

    /// The summary last kept for `process_type` in the learned table, when one is set.
    pub async fn recall(&self, process_type: &str) -> Result<Option<String>, SourceError> {
        match &self.learned {
            Some(t) => {
                self.bounded(async {
                    learned::recall(&self.side(), t, process_type).await.map_err(|e| self.map_err(e))
                })
                .await
            }
            None => Ok(None),
        }
    }

    /// The SQL type of `table.column` (`format_type`), or a clear error when the table or column is missing.
    pub async fn column_type(&self, table: &str, column: &str) -> Result<String, SourceError> {
        let ty: Option<String> = self
            .bounded(async {
                sqlx::query_scalar(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
                     WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped",
                )
                .bind(table)
                .bind(column)
                .fetch_optional(&self.pool())
                .await
                .map_err(|e| self.map_err(e))
            })
            .await?;
        ty.ok_or_else(|| SourceError::Protocol {
            source_name: self.name.into(),
            cause: None,
            message: format!("table {table} with a {column} column not found"),
        })
    }

    /// `LISTEN channel` until the session breaks (an error: the caller reconnects), waking `hints` for each
    /// notification whose payload `ours` accepts; `what` says what feeds the channel.
    pub async fn listen(
        &self,
        channel: &str,
        what: &str,
        hints: &Hints,
        ours: impl Fn(&str) -> bool,
    ) -> Result<(), SourceError> {
        // A session of its own each time: a session given up (it stopped answering) is left to sqlx's `UNLISTEN`,
        // which waits on it until TCP gives up, and must not hold the slot the next session needs.
        let sessions = pool(&self.opts, self.timeout);
        // The snapshot an event wakes must find its connection open: it is opened now, beside the LISTEN session,
        // not by the first event (a connection costs a TLS handshake: 80 ms on Debian's Postgres, issue 34). The
        // pause read just before acting runs on the lease's session ([`lease`]), open already.
        let snapshots = self.pool();
        let warm = async {
            let _ = snapshots.acquire().await;
        };
        let (listener, ()) = tokio::join!(PgListener::connect_with(&sessions), warm);
        let mut listener = listener.map_err(|e| self.map_err(e))?;
        listener.listen(channel).await.map_err(|e| self.map_err(e))?;
        hints.active(EventMode::Listen, format!("LISTEN {channel}, {what}"));
        let mut probe = tokio::time::interval_at(tokio::time::Instant::now() + LISTEN_PROBE, LISTEN_PROBE);
        loop {
            let received = tokio::select! {
                r = listener.try_recv() => r.map_err(|e| self.map_err(e))?,
                _ = probe.tick() => {
                    // A session held half-open delivers nothing and says nothing: it must answer a statement.
                    let ask = sqlx::query("SELECT 1").execute(&mut listener);
                    match tokio::time::timeout(self.timeout, ask).await {
                        Ok(answer) => {
                            answer.map_err(|e| self.map_err(e))?;
                            continue;
                        }
                        Err(_) => return Err(SourceError::Unavailable {
                            source_name: self.name.into(),
                            message: format!("event path: the LISTEN session did not answer within {:?}", self.timeout),
                            cause: None,
                        }),
                    }
                }
            };
            match received {
                Some(n) if ours(n.payload()) => hints.wake(),
                Some(_) => {}
                None => {
                    return Err(SourceError::Unavailable {
                        source_name: self.name.into(),
                        message: "event path: the LISTEN connection was lost".into(),
                        cause: None,
                    });
                }
            }
        }
    }
}

/// Folds the rows of a snapshot statement into a [`Snapshot`]. Each row has `kind`, `q` (the queue), `c` (a
/// count), `age` (seconds) and, optionally, `bad`: `ready` rows (several per queue add up; `age` the latency, `bad`
/// the rows whose time cannot be meant, counted as skipped), `running`, `scheduled`, `elsewhere` (running outside
/// the filter), `bad` rows (skipped entries, counted apart) and one `due` row (`age`: seconds until the next
/// scheduled job).
pub fn fold(rows: Vec<sqlx::postgres::PgRow>) -> Snapshot {
    use sqlx::Row;
    let secs = |v: Option<f64>| v.and_then(|a| Duration::try_from_secs_f64(a.max(0.0)).ok());
    let mut snap = Snapshot::default();
    for row in rows {
        let kind: String = row.get("kind");
        let count = row.get::<i64, _>("c").max(0) as u64;
        match kind.as_str() {
            "elsewhere" => snap.running_elsewhere += count,
            "bad" => snap.skipped += count,
            "due" => snap.next_due = secs(row.get("age")),
            _ => {
                let q: String = row.get("q");
                let mut stats = QueueStats::default();
                match kind.as_str() {
                    "ready" => {
                        stats.ready = count;
                        stats.oldest_ready_age = secs(row.get("age"));
                        snap.skipped += row.try_get::<i64, _>("bad").unwrap_or(0).max(0) as u64;
                    }
                    "running" => stats.running = count,
                    _ => stats.scheduled = count,
                }
                snap.add(&q, stats);
            }
        }
    }
    snap
}

/// The current time as a column of `column_type` holds it: `now()` for `timestamp with time zone`, the UTC wall
/// clock for `timestamp without time zone` (Rails writes UTC there, whatever the database's time zone).
pub fn now_for(column_type: &str) -> &'static str {
    if column_type.contains("with time zone") { "now()" } else { "(now() AT TIME ZONE 'UTC')" }
}

/// `name` (`table` or `schema.table`, letters, digits and `_`) quoted for SQL, or `None` when it is not such a name.
pub fn quote_table(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.is_empty() || parts.len() > 2 {
        return None;
    }
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit())
    };
    if !parts.iter().all(|p| ok(p)) {
        return None;
    }
    Some(parts.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join("."))
}

/// The schema prefix of a `schema.table` setting, quoted with its dot (`"app".`), or empty.
pub fn schema_prefix(table_setting: &str) -> String {
    match table_setting.split_once('.') {
        Some((schema, _)) => format!("\"{schema}\"."),
        None => String::new(),
    }
}

/// The error as one line (a Postgres message may quote the statement over many lines), at most 300 characters,
/// without the URL or its password.
fn scrub(e: &sqlx::Error, url: &Secret) -> String {
    let text = scrub_url(&e.to_string(), url.expose());
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > 300 {
        let cut = (0..=300).rev().find(|i| line.is_char_boundary(*i)).unwrap_or(0);
        line.truncate(cut);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_validated_and_quoted() {
        assert_eq!(quote_table("delayed_jobs").as_deref(), Some("\"delayed_jobs\""));
        assert_eq!(quote_table("app.jobs").as_deref(), Some("\"app\".\"jobs\""));
        for bad in ["", "a.b.c", "jobs; drop table x", "1jobs", "a b", "\"x\""] {
            assert_eq!(quote_table(bad), None, "{bad}");
        }
        assert_eq!(schema_prefix("app.jobs"), "\"app\".");
        assert_eq!(schema_prefix("jobs"), "");
    }

    #[test]
    fn the_clock_follows_the_column_type() {
        assert_eq!(now_for("timestamp(6) with time zone"), "now()");
        assert_eq!(now_for("timestamp(6) without time zone"), "(now() AT TIME ZONE 'UTC')");
    }
}
