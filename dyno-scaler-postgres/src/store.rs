//! [`PostgresStore`]: the lease, the pause and the learned summary in the queue's own database.

use std::sync::Arc;

use async_trait::async_trait;
use dyno_scaler_core::{Events, History, Inspect, Lease, QueueSource, Source, SourceError, Store};

use crate::Db;

/// A [`Store`] in Postgres: the lease is an advisory lock on a session of its own ([`crate::lease`]), keyed by
/// `scope` (the queue's table or schema, so two apps sharing a database have their own); the pause and the
/// learned summary are rows of the learned table, where one is set (without it, nothing is kept and nothing can
/// be paused).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    db: Db,
    scope: String,
}

impl PostgresStore {
    /// A store on `db`'s database, its leases keyed by `scope`.
    pub fn new(db: Db, scope: &str) -> Self {
        Self { db, scope: scope.to_owned() }
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn name(&self) -> &str {
        "postgres"
    }

    fn remembers(&self) -> bool {
        self.db.remembers()
    }

    fn lease(&self, process_type: &str) -> Arc<dyn Lease> {
        Arc::new(self.db.lease(&self.scope, process_type))
    }

    async fn remember(&self, process_type: &str, summary: &str) -> Result<(), SourceError> {
        self.db.remember(process_type, summary).await
    }

    async fn recall(&self, process_type: &str) -> Result<Option<String>, SourceError> {
        self.db.recall(process_type).await
    }
}

/// A Postgres source's whole [`Source`]: the reading, its event path, its queue list, and `store`.
pub fn whole_source<S: QueueSource + Events + Inspect + 'static>(source: S, store: PostgresStore) -> Source {
    parts(Arc::new(source), store)
}

/// [`whole_source`] for a source whose table keeps finished jobs with their times: with its [`History`].
pub fn whole_source_with_history<S: QueueSource + Events + Inspect + History + 'static>(
    source: S,
    store: PostgresStore,
) -> Source {
    let source = Arc::new(source);
    parts(source.clone(), store).with_history(source)
}

fn parts<S: QueueSource + Events + Inspect + 'static>(source: Arc<S>, store: PostgresStore) -> Source {
    Source::new(source.clone()).with_events(source.clone()).with_inspect(source).with_store(Arc::new(store))
}
