//! Which started jobs still run, in GoodJob's advisory-lock mode: a job runs while some session holds its advisory
//! lock, whose key is the first 64 bits of `md5('<table>-' || id)`.
//!
//! The keys are computed here, not in Postgres (the database's `md5` costs about 1.5 µs a row through its
//! cryptohash layer: 7.5 ms for 5,000 running jobs), and the held locks are read from `pg_locks` at most once per
//! [`lock_check`](crate::GoodJobConfig::lock_check): reading `pg_locks` copies the whole lock table under every
//! lock-manager partition lock (4–5 ms with 5,000 advisory locks held, while no session of the database can take a
//! lock). Between two reads a job keeps the verdict of the last read for the same attempt (its id and
//! `performed_at`), and an attempt started since is running: a live worker just started it. So a job whose worker
//! was killed stops counting within one `lock_check`, and a job never stops counting while its lock is held.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use crate::wire::{Time, Uuid};

/// One run of a job: its id and `performed_at` (a job performed again is a new attempt).
pub(crate) type Attempt = (Uuid, Time);

/// The started rows of one queue that no fresh process record vouches for: each one's attempt, and its Active Job
/// id where that differs from the id.
#[derive(Debug, Default)]
pub(crate) struct Started {
    pub attempts: Vec<Attempt>,
    pub active_job_ids: Vec<Option<Uuid>>,
}

/// The verdicts of the last `pg_locks` read, by attempt.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    read_at: Option<Instant>,
    verdicts: HashMap<Attempt, bool>,
}

/// GoodJob's advisory-lock key of the row `id` in `table` (`GoodJob::AdvisoryLockable`): the first 64 bits of the
/// md5 of `<table>-<id as text>`, as a signed big-endian integer, which `pg_locks` shows as `classid` (high 32
/// bits) and `objid` (low 32 bits).
pub(crate) fn key(table: &str, id: &Uuid) -> i64 {
    // Postgres's text of a uuid: lowercase hex, hyphens after the 4th, 6th, 8th and 10th byte.
    let id = &id.0;
    let mut text = [b'-'; 36];
    for (bytes, at) in [(&id[..4], 0), (&id[4..6], 9), (&id[6..8], 14), (&id[8..10], 19), (&id[10..], 24)] {
        hex::encode_to_slice(bytes, &mut text[at..at + 2 * bytes.len()]).expect("two hex digits a byte");
    }
    let digest = Md5::new().chain_update(table).chain_update("-").chain_update(text).finalize();
    let mut high = [0; 8];
    high.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(high)
}

impl Liveness {
    /// Whether the snapshot starting `now` must read `pg_locks`: never read yet, or `every` has passed.
    pub fn due(this: &Mutex<Self>, now: Instant, every: Duration) -> bool {
        let l = this.lock().unwrap_or_else(|e| e.into_inner());
        l.read_at.is_none_or(|at| now.saturating_duration_since(at) >= every)
    }

    /// How many of `started` run. `held`: the keys `pg_locks` showed, when this snapshot read them (read at `now`);
    /// `None`: the verdicts of the last read stand, and attempts started since then run.
    pub fn running(
        this: &Mutex<Self>,
        table: &str,
        started: &[&Started],
        held: Option<&HashSet<i64>>,
        now: Instant,
    ) -> Vec<u64> {
        let mut l = this.lock().unwrap_or_else(|e| e.into_inner());
        let Some(held) = held else {
            return started
                .iter()
                .map(|s| s.attempts.iter().filter(|a| l.verdicts.get(*a).copied().unwrap_or(true)).count() as u64)
                .collect();
        };
        let locked = |id: &Uuid| held.contains(&key(table, id));
        let mut verdicts = HashMap::new();
        let counts = started
            .iter()
            .map(|s| {
                let mut n = 0;
                for (attempt, ajid) in s.attempts.iter().zip(&s.active_job_ids) {
                    let alive = locked(&attempt.0) || ajid.as_ref().is_some_and(locked);
                    n += u64::from(alive);
                    verdicts.insert(*attempt, alive);
                }
                n
            })
            .collect();
        *l = Liveness { read_at: Some(now), verdicts };
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Uuid {
        Uuid(std::array::from_fn(|i| i as u8 ^ n))
    }

    fn attempt(n: u8, at: i64) -> Attempt {
        (id(n), Time(at))
    }

    #[test]
    fn the_key_is_goodjobs_md5_of_the_table_and_the_hyphenated_id() {
        // Postgres: ('x' || substr(md5('good_jobs-00010203-0405-0607-0809-0a0b0c0d0e0f'), 1, 16))::bit(64)::bigint
        let k = key("good_jobs", &id(0));
        assert_eq!(k, -8_226_637_354_255_450_843);
        assert_ne!(key("other_jobs", &id(0)), k, "the table is part of the key");
    }

    #[test]
    fn between_reads_a_verdict_stands_for_its_attempt_and_new_attempts_run() {
        let l = Mutex::new(Liveness::default());
        let t0 = Instant::now();
        assert!(Liveness::due(&l, t0, Duration::from_secs(5)), "never read");
        let s = Started { attempts: vec![attempt(1, 1), attempt(2, 1)], active_job_ids: vec![None, None] };
        let held: HashSet<i64> = [key("good_jobs", &id(1))].into();
        assert_eq!(Liveness::running(&l, "good_jobs", &[&s], Some(&held), t0), [1], "only the locked one runs");
        assert!(!Liveness::due(&l, t0 + Duration::from_secs(4), Duration::from_secs(5)));
        assert!(Liveness::due(&l, t0 + Duration::from_secs(5), Duration::from_secs(5)));
        // Job 2 performed again (a new performed_at), job 3 new: both run until the next read; job 1 still does.
        let later = Started {
            attempts: vec![attempt(1, 1), attempt(2, 2), attempt(3, 1)],
            active_job_ids: vec![None, None, None],
        };
        assert_eq!(Liveness::running(&l, "good_jobs", &[&later], None, t0), [3]);
        let same = Started { attempts: vec![attempt(1, 1), attempt(2, 1)], active_job_ids: vec![None, None] };
        assert_eq!(Liveness::running(&l, "good_jobs", &[&same], None, t0), [1], "the dead attempt stays dead");
    }

    #[test]
    fn a_lock_keyed_by_the_active_job_id_counts() {
        let l = Mutex::new(Liveness::default());
        let s = Started { attempts: vec![attempt(1, 1)], active_job_ids: vec![Some(id(9))] };
        let held: HashSet<i64> = [key("good_jobs", &id(9))].into();
        assert_eq!(Liveness::running(&l, "good_jobs", &[&s], Some(&held), Instant::now()), [1]);
        let none = HashSet::new();
        assert_eq!(Liveness::running(&l, "good_jobs", &[&s], Some(&none), Instant::now()), [0]);
    }
}
