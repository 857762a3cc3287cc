//! The DelayedJob snapshot statements: one part per figure through the recommended partial indexes, or one pass
//! over the table where they are missing.

use crate::DelayedJobConfig;

/// The filters of a snapshot: `(filters, only, elsewhere)`: every condition a counted row meets, the queue and
/// priority conditions alone, and what a row running outside them fails.
fn filters(c: &DelayedJobConfig) -> (String, Vec<&'static str>, String) {
    // DelayedJob reserves with `queue IN (...)` when its workers are given queues: a row without a queue is
    // never theirs, unless the user says which queue such rows belong to ($8, `null_queue`).
    let mut only: Vec<&str> = Vec::new();
    if c.queues.is_some() {
        only.push("(queue = ANY($3) OR (queue IS NULL AND $8::text = ANY($3)))");
    }
    if c.min_priority.is_some() {
        only.push("priority >= $4");
    }
    if c.max_priority.is_some() {
        only.push("priority <= $5");
    }
    let filters = std::iter::once("failed_at IS NULL").chain(only.iter().copied()).collect::<Vec<_>>().join(" AND ");
    let elsewhere = if only.is_empty() { "true".to_owned() } else { only.join(" AND ") };
    (filters, only, elsewhere)
}

/// One pass over the table (what the stock `(priority, run_at)` index leaves: every part of [`by_index`] would be
/// a scan of its own), every figure an aggregate of it, unpivoted into the rows [`by_index`] returns. Scheduled
/// rows are counted up to the cap per queue. Parameters as [`by_index`].
pub(crate) fn single_pass(table: &str, now: &str, c: &DelayedJobConfig) -> String {
    let (_, only, elsewhere) = filters(c);
    // `failed_at IS NULL` is the WHERE clause; inside the aggregates only the queue and priority conditions remain
    // (none at all without filters: every condition evaluated per row costs, there being no JIT).
    let filters = if only.is_empty() { "true".to_owned() } else { format!("({})", only.join(" AND ")) };
    // The clock and the lock ages once per statement, each an InitPlan (a subquery in the FROM list would be
    // pulled up, and `now() AT TIME ZONE 'UTC'` computed again for every row and expression).
    let floor = "'2001-09-09'";
    let n = format!("(SELECT {now})");
    let fresh = format!("(SELECT {now} - make_interval(secs => $1))");
    let live = format!("(SELECT {now} - make_interval(secs => least($7, $1)))");
    let waiting = format!("({filters} AND (locked_at IS NULL OR locked_at < {fresh}))");
    let ready = format!("{waiting} AND run_at <= {n}");
    format!(
        "SELECT k.kind, k.q, k.c, k.age FROM ( \
           SELECT COALESCE(queue, $2)::text AS q, \
             count(*) FILTER (WHERE {ready}) AS ready, \
             EXTRACT(EPOCH FROM ({n} - min(run_at) FILTER (WHERE {ready} AND run_at >= {floor})))::float8 AS age, \
             count(*) FILTER (WHERE {filters} AND locked_at >= {live}) AS running, \
             count(*) FILTER (WHERE locked_at >= {live} AND NOT ({elsewhere})) AS elsewhere, \
             least(count(*) FILTER (WHERE {waiting} AND run_at > {n}), $6) AS scheduled, \
             count(*) FILTER (WHERE {waiting} AND (run_at IS NULL OR run_at < {floor})) AS bad, \
             EXTRACT(EPOCH FROM (min(run_at) FILTER (WHERE {filters} AND locked_at IS NULL AND run_at > {n} \
               AND run_at < 'infinity') - {n}))::float8 AS due \
           FROM {table} WHERE failed_at IS NULL GROUP BY 1) g \
         CROSS JOIN LATERAL (VALUES ('ready'::text, g.q, g.ready::int8, g.age), ('running', g.q, g.running, NULL), \
           ('scheduled', g.q, g.scheduled, NULL), ('elsewhere', NULL, g.elsewhere, NULL), ('bad', NULL, g.bad, NULL), \
           ('due', NULL, 0, g.due)) k(kind, q, c, age) \
         WHERE (k.kind = 'due' AND k.age IS NOT NULL) OR (k.kind <> 'due' AND k.c > 0)"
    )
}

/// The snapshot query: index-friendly parts in one statement (the last one finds when the next job falls due).
/// Parameters: $1 max_run_time seconds, $2 default queue, $3 queues (text[] or NULL), $4/$5 priority bounds,
/// $6 the scheduled-rows cap, $7 the stale-lock age in seconds, $8 the queue of NULL-queue rows under a filter.
pub(crate) fn by_index(table: &str, now: &str, c: &DelayedJobConfig) -> String {
    let (filters, _, elsewhere) = filters(c);
    // `now()` is stable within a statement: every part sees the same instant, and the planner can use it in
    // index conditions (a CTE here would hide it from them). Unlocked rows and locked rows are read apart, so
    // each part is a range of one partial index: the ready part never walks the rows that workers hold.
    let fresh = format!("({now} - make_interval(secs => $1))");
    // A lock younger than the stale-lock age ($7, at most max_run_time) is a running job; an older one belongs to
    // a worker that was killed (Heroku kills 30 s after SIGTERM): not running, and not ready either until
    // DelayedJob's max_run_time lets another worker take it.
    let live = format!("({now} - make_interval(secs => least($7, $1)))");
    let q = "COALESCE(queue, $2)::text";
    // A run_at before this ('-infinity', 0001-01-01, the epoch) cannot be meant: the row is still ready (DelayedJob
    // will run it), but it says nothing of latency and is counted as skipped.
    let floor = "'2001-09-09'";
    // Jobs running outside the filter (`elsewhere`) are not demand, but their workers are busy.
    let unlocked = format!("{filters} AND locked_at IS NULL");
    let stale = format!("{filters} AND locked_at < {fresh}");
    format!(
        "SELECT 'ready'::text AS kind, r.q AS q, count(*)::int8 AS c, \
                EXTRACT(EPOCH FROM ({now} - min(r.run_at) FILTER (WHERE r.run_at >= {floor})))::float8 AS age FROM ( \
           SELECT {q} AS q, run_at FROM {table} WHERE {unlocked} AND run_at <= {now} \
           UNION ALL \
           SELECT {q}, run_at FROM {table} WHERE {stale} AND run_at <= {now}) r \
           GROUP BY r.q \
         UNION ALL \
         SELECT 'running', {q}, count(*)::int8, NULL FROM {table} WHERE {filters} AND locked_at >= {live} GROUP BY 2 \
         UNION ALL \
         SELECT 'elsewhere', NULL, count(*)::int8, NULL FROM {table} \
           WHERE failed_at IS NULL AND locked_at >= {live} AND NOT ({elsewhere}) \
         UNION ALL \
         SELECT 'scheduled', s.q, count(*)::int8, NULL FROM ( \
           (SELECT {q} AS q FROM {table} WHERE {unlocked} AND run_at > {now} ORDER BY run_at LIMIT $6) \
           UNION ALL \
           (SELECT {q} FROM {table} WHERE {stale} AND run_at > {now} ORDER BY locked_at LIMIT $6)) s \
           GROUP BY s.q \
         UNION ALL \
         SELECT 'bad', NULL, count(*)::int8, NULL FROM ( \
           SELECT 1 FROM {table} WHERE {unlocked} AND (run_at IS NULL OR run_at < {floor}) \
           UNION ALL \
           SELECT 1 FROM {table} WHERE {stale} AND (run_at IS NULL OR run_at < {floor})) b \
         UNION ALL \
         (SELECT 'due', NULL, 0::int8, EXTRACT(EPOCH FROM (run_at - {now}))::float8 FROM {table} \
           WHERE {unlocked} AND run_at > {now} AND run_at < 'infinity' ORDER BY run_at LIMIT 1)"
    )
}
