//! A process type's [`Lease`] in Postgres: an advisory lock held on a session of its own (closing the session lets
//! it go), and the pause in the learned table beside what the policy learned.
//!
//! The session is opened with `idle_session_timeout` set to the lease's TTL (Postgres 14 and later), and each
//! campaign is a statement on it: a holder cut from the database (a network partition) has its session ended by the
//! server a TTL after its last campaign, so the lock never outlives the lease the holder believes it has.
//!
//! Each campaign and each read is one statement that also reads the pause, and a read runs on the lease's session
//! when there is one: the check made just before acting (is a pause set?) needs no other connection, so it never
//! opens one on the hot path (a connection costs a TLS handshake, 80 ms; issue 34).

use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::SourceError;
use dyno_scaler_core::lease::{Lease, LeaseState, Pause};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::Mutex;

use crate::Db;

/// The lock's 64-bit key, from its name (`$1`).
macro_rules! key {
    () => {
        "WITH k AS (SELECT ('x' || substr(md5($1), 1, 16))::bit(64)::bigint AS k)"
    };
}

/// The sessions holding the lock of `k` in this database (an int8 advisory lock shows its high half as `classid`,
/// its low half as `objid`, and `objsubid` 1).
macro_rules! holders {
    () => {
        "SELECT x.pid FROM pg_locks x, k WHERE x.locktype = 'advisory' AND x.granted AND x.objsubid = 1 \
         AND x.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND ((x.classid::bigint << 32) | x.objid::bigint) = k.k"
    };
}

/// The holder's `application_name`, as the column `holder`.
macro_rules! holder {
    () => {
        concat!(
            "(SELECT a.application_name FROM pg_stat_activity a WHERE a.pid IN (",
            holders!(),
            ") LIMIT 1) AS holder"
        )
    };
}

/// Takes the lock unless this session has it (so its count stays one), then names the holder (read after the
/// taking). `$1`: the lock's name. The pause column follows ([`with_pause`]).
const CAMPAIGN: &str = concat!(
    key!(),
    ", t AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM (",
    holders!(),
    ") l WHERE l.pid = pg_backend_pid()) THEN true ELSE pg_try_advisory_lock(k.k) END AS held FROM k) SELECT t.held, ",
    holder!(),
);

/// Who holds the lock, without taking it. The pause column follows ([`with_pause`]).
const READ: &str = concat!(key!(), " SELECT false AS held, ", holder!());

/// `select` (a campaign or a read) with the pause as its last column: the learned table's row `$2`, or NULL
/// without a table; `from` ends the statement.
fn with_pause(select: &str, learned: Option<&str>, from: &str) -> String {
    match learned {
        Some(t) => format!("{select}, (SELECT summary FROM {t} WHERE process_type = $2) AS pause{from}"),
        None => format!("{select}, NULL::text AS pause{from}"),
    }
}

/// A campaign's or a read's row: held, holder, pause (JSON).
type Row = (bool, Option<String>, Option<String>);

/// The prefix of the session's `application_name`; the rest is the holder's identity.
const APP: &str = "dyno-scaler ";

/// The lease of one process type (lock name `dyno-scaler:lease:<scope>:<process type>`, the scope being the queue's
/// table or schema).
pub struct PgLease {
    db: Db,
    opts: PgConnectOptions,
    lock: String,
    pause_key: String,
    campaign: String,
    read: String,
    session: Mutex<Option<PgConnection>>,
}

impl std::fmt::Debug for PgLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLease").field("lock", &self.lock).finish()
    }
}

impl PgLease {
    pub(crate) fn new(db: Db, opts: PgConnectOptions, scope: &str, process_type: &str) -> Self {
        let learned = db.learned_table().map(str::to_owned);
        Self {
            campaign: with_pause(CAMPAIGN, learned.as_deref(), " FROM t"),
            read: with_pause(READ, learned.as_deref(), ""),
            db,
            opts,
            lock: format!("dyno-scaler:lease:{scope}:{process_type}"),
            pause_key: format!("{process_type}#pause"),
            session: Mutex::new(None),
        }
    }

    fn holder(name: Option<String>) -> Option<String> {
        name.map(|n| n.strip_prefix(APP).map(str::to_owned).unwrap_or(n))
    }

    fn state((held, holder, pause): Row) -> LeaseState {
        let pause =
            pause.map(|json| serde_json::from_str(&json).unwrap_or_else(|_| Pause::until_resumed("unreadable")));
        LeaseState::new(held, Self::holder(holder), pause)
    }

    /// Runs `sql` (a campaign or a read) on `conn`, bounded.
    async fn row(&self, sql: &str, conn: &mut PgConnection) -> Result<Row, SourceError> {
        self.db
            .bounded(async {
                sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
                    .bind(&self.lock)
                    .bind(&self.pause_key)
                    .fetch_one(conn)
                    .await
                    .map_err(|e| self.db.map_err(e))
            })
            .await
    }

    async fn campaign_on(&self, me: &str, ttl: Duration) -> Result<Row, SourceError> {
        let mut session = self.session.lock().await;
        // A session kept from before may have been ended by the server (idle past the TTL while this scaler was
        // stuck): then one new session is tried at once.
        for kept in [session.is_some(), false] {
            if session.is_none() {
                let opts = self
                    .opts
                    .clone()
                    .application_name(&format!("{APP}{me}"))
                    .options([("idle_session_timeout", format!("{}", ttl.as_millis().max(1)))]);
                let conn =
                    self.db.bounded(async { PgConnection::connect_with(&opts).await.map_err(|e| self.db.map_err(e)) });
                let mut conn = conn.await?;
                // Prepared now, so the read made just before acting is never planned on the hot path.
                self.row(&self.read, &mut conn).await?;
                *session = Some(conn);
            }
            // Out of the slot while the statement runs: if the campaign is abandoned (its caller timed out), the
            // session goes with it instead of staying behind in the middle of an answer.
            let mut conn = session.take().expect("connected above");
            match self.row(&self.campaign, &mut conn).await {
                Ok(row) => {
                    *session = Some(conn);
                    return Ok(row);
                }
                // A session that failed may still hold the lock on the server's side: it is dropped (the server
                // ends it anyway after the TTL).
                Err(_) if kept => *session = None,
                Err(e) => {
                    *session = None;
                    return Err(e);
                }
            }
        }
        unreachable!("the second pass returns")
    }
}

#[async_trait]
impl Lease for PgLease {
    fn store(&self) -> &str {
        "postgres"
    }

    async fn campaign(&self, me: &str, ttl: Duration) -> Result<LeaseState, SourceError> {
        Ok(Self::state(self.campaign_on(me, ttl).await?))
    }

    /// On the lease's session where this scaler campaigns (open and warm), else on the side pool.
    async fn read(&self) -> Result<LeaseState, SourceError> {
        let mut session = self.session.lock().await;
        if let Some(mut conn) = session.take() {
            // Out of the slot while the statement runs, as in a campaign; a session that fails is dropped (the
            // next campaign opens another).
            let row = self.row(&self.read, &mut conn).await?;
            *session = Some(conn);
            return Ok(Self::state(row));
        }
        drop(session);
        let mut conn =
            self.db.bounded(async { self.db.side().acquire().await.map_err(|e| self.db.map_err(e)) }).await?;
        Ok(Self::state(self.row(&self.read, &mut conn).await?))
    }

    async fn release(&self, me: &str) -> Result<(), SourceError> {
        let _ = me;
        // Ending the session lets the lock go; a session the server already ended has let it go too.
        if let Some(conn) = self.session.lock().await.take()
            && let Err(e) = conn.close().await
        {
            tracing::debug!(error = %self.db.map_err(e), "the lease's session was already gone");
        }
        Ok(())
    }

    async fn set_pause(&self, pause: Option<&Pause>) -> Result<(), SourceError> {
        if !self.db.remembers() {
            return Err(SourceError::Other {
                source_name: self.store().into(),
                message: "a Postgres process type keeps its pause in the learned table: create it and name it in \
                          learned_table (see the README)"
                    .into(),
            });
        }
        match pause {
            Some(p) => self.db.remember(&self.pause_key, &serde_json::to_string(p).expect("a pause encodes")).await,
            None => self.db.forget(&self.pause_key).await,
        }
    }
}
