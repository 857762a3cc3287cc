//! The finished jobs GoodJob keeps (`preserve_job_records`, on by default): `dyno-scaler export-trace`.

use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::{FinishedJob, History, SourceError};
use dyno_scaler_postgres::now_for;

use crate::GoodJobSource;

impl GoodJobSource {
    /// The export statement for a `scheduled_at` column of type `column_type`: one row per finished job (its last
    /// run, for a job retried), arriving when it was due (`scheduled_at`, or `created_at` before v4.8.2, and never
    /// after its start), running from `performed_at` to `finished_at`. `$1` the queues or `NULL`, `$2` the
    /// window in seconds.
    pub fn history_sql(&self, column_type: &str) -> String {
        let now = now_for(column_type);
        format!(
            "SELECT ROUND(EXTRACT(EPOCH FROM a) * 1000)::int8 AS at, q, ms FROM (\
               SELECT LEAST(COALESCE(scheduled_at, created_at), performed_at) AS a, \
                 COALESCE(queue_name, 'default')::text AS q, \
                 GREATEST(0, ROUND(EXTRACT(EPOCH FROM finished_at - performed_at) * 1000))::int8 AS ms, id \
               FROM {jobs} \
               WHERE finished_at IS NOT NULL AND performed_at IS NOT NULL \
                 AND finished_at >= {now} - make_interval(secs => $2) \
                 AND ($1::text[] IS NULL OR COALESCE(queue_name, 'default') = ANY($1))\
             ) j WHERE a >= {now} - make_interval(secs => $2) ORDER BY a, id",
            jobs = self.jobs,
        )
    }
}

#[async_trait]
impl History for GoodJobSource {
    async fn finished(
        &self,
        since: Duration,
        each: &mut (dyn FnMut(Vec<FinishedJob>) + Send),
    ) -> Result<u64, SourceError> {
        let ty = self.db.column_type(&self.config.table, "scheduled_at").await?;
        self.db.finished(&self.history_sql(&ty), self.config.queues.clone(), since, each).await
    }
}
