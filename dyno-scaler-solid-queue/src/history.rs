//! The finished jobs Solid Queue keeps (`preserve_finished_jobs`, on by default, for a day by default):
//! `dyno-scaler export-trace`.

use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::{FinishedJob, History, SourceError};
use dyno_scaler_postgres::now_for;

use crate::SolidQueueSource;

impl SolidQueueSource {
    /// The export statement for timestamps of type `column_type`: one row per finished job, arriving when it was
    /// due (`scheduled_at`, never before `created_at`). Solid Queue keeps no start time for a finished job (its
    /// claimed execution is deleted when it ends), so the run is from arrival to `finished_at`: **its wait
    /// included**, an upper bound of its run. `$1` the queues or `NULL`, `$2` the window in seconds.
    pub fn history_sql(&self, column_type: &str) -> String {
        let now = now_for(column_type);
        format!(
            "SELECT ROUND(EXTRACT(EPOCH FROM a) * 1000)::int8 AS at, q, \
               GREATEST(0, ROUND(EXTRACT(EPOCH FROM f - a) * 1000))::int8 AS ms FROM (\
               SELECT GREATEST(created_at, COALESCE(scheduled_at, created_at)) AS a, queue_name::text AS q, \
                 finished_at AS f, id \
               FROM {jobs} \
               WHERE finished_at IS NOT NULL AND finished_at >= {now} - make_interval(secs => $2) \
                 AND ($1::text[] IS NULL OR queue_name = ANY($1))\
             ) j WHERE a >= {now} - make_interval(secs => $2) ORDER BY a, id",
            jobs = self.table("jobs"),
        )
    }
}

#[async_trait]
impl History for SolidQueueSource {
    async fn finished(
        &self,
        since: Duration,
        each: &mut (dyn FnMut(Vec<FinishedJob>) + Send),
    ) -> Result<u64, SourceError> {
        let name = match &self.config.schema {
            Some(s) => format!("{s}.solid_queue_jobs"),
            None => "solid_queue_jobs".into(),
        };
        let ty = self.db.column_type(&name, "finished_at").await?;
        self.db.finished(&self.history_sql(&ty), self.config.queues.clone(), since, each).await
    }
}
