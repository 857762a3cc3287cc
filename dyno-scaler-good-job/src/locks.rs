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
//!
//! Only a read needs every started job's id. Between reads the statement counts the started rows, and sends only
//! the jobs the last read found dead that are still started (looked up by primary key; nearly always none, as a
//! live worker soon performs an interrupted job again), each with its `performed_at`: running is the started rows
//! less those still on the attempt found dead.

use std::collections::HashSet;
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

/// What the last `pg_locks` read found: when, and which attempts were dead (no lock held, no fresh process).
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    read_at: Option<Instant>,
    dead: HashSet<Attempt>,
}

/// GoodJob's advisory-lock key of the row `id` in `table` (`GoodJob::AdvisoryLockable`): the first 64 bits of the
/// md5 of `<table>-<id as text>`, as a signed big-endian integer, which `pg_locks` shows as `classid` (high 32
/// bits) and `objid` (low 32 bits).
pub(crate) fn key(table: &str, id: &Uuid) -> i64 {
    let digest = Md5::new().chain_update(table).chain_update("-").chain_update(id.hyphenated()).finalize();
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

    /// The ids of the attempts the last read found dead, as uuid text: between reads the statement returns those
    /// jobs while they are still started, and only those ([`Liveness::still_dead`]).
    pub fn dead_ids(this: &Mutex<Self>) -> Vec<String> {
        let l = this.lock().unwrap_or_else(|e| e.into_inner());
        l.dead.iter().map(|(id, _)| String::from_utf8_lossy(&id.hyphenated()).into_owned()).collect()
    }

    /// At a read of the held locks (`held`, at `now`): how many of `started` run (the lock of its id or Active Job
    /// id held). The others are remembered dead until the next read.
    pub fn read(this: &Mutex<Self>, table: &str, started: &[&Started], held: &HashSet<i64>, now: Instant) -> Vec<u64> {
        let locked = |id: &Uuid| held.contains(&key(table, id));
        let mut dead = HashSet::new();
        let counts = started
            .iter()
            .map(|s| {
                let mut n = 0;
                for (attempt, ajid) in s.attempts.iter().zip(&s.active_job_ids) {
                    if locked(&attempt.0) || ajid.as_ref().is_some_and(locked) {
                        n += 1;
                    } else {
                        dead.insert(*attempt);
                    }
                }
                n
            })
            .collect();
        *this.lock().unwrap_or_else(|e| e.into_inner()) = Liveness { read_at: Some(now), dead };
        counts
    }

    /// Between reads: how many of `attempts` (started jobs the last read found dead) are the very attempts found
    /// dead. A job performed again since (a new `performed_at`) runs: a live worker just started it.
    pub fn still_dead(this: &Mutex<Self>, attempts: &[Attempt]) -> u64 {
        let l = this.lock().unwrap_or_else(|e| e.into_inner());
        attempts.iter().filter(|a| l.dead.contains(a)).count() as u64
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
    fn between_reads_only_the_attempts_found_dead_stay_dead() {
        let l = Mutex::new(Liveness::default());
        let t0 = Instant::now();
        assert!(Liveness::due(&l, t0, Duration::from_secs(5)), "never read");
        let s = Started { attempts: vec![attempt(1, 1), attempt(2, 1)], active_job_ids: vec![None, None] };
        let held: HashSet<i64> = [key("good_jobs", &id(1))].into();
        assert_eq!(Liveness::read(&l, "good_jobs", &[&s], &held, t0), [1], "only the locked one runs");
        assert!(!Liveness::due(&l, t0 + Duration::from_secs(4), Duration::from_secs(5)));
        assert!(Liveness::due(&l, t0 + Duration::from_secs(5), Duration::from_secs(5)));
        let dead = Liveness::dead_ids(&l);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].len(), 36, "uuid text: {dead:?}");
        assert_eq!(Liveness::still_dead(&l, &[attempt(2, 1)]), 1, "the same attempt stays dead");
        assert_eq!(Liveness::still_dead(&l, &[attempt(2, 2)]), 0, "performed again since: it runs");
        assert_eq!(Liveness::still_dead(&l, &[attempt(1, 1), attempt(3, 1)]), 0, "alive or new");
    }

    #[test]
    fn a_lock_keyed_by_the_active_job_id_counts() {
        let l = Mutex::new(Liveness::default());
        let s = Started { attempts: vec![attempt(1, 1)], active_job_ids: vec![Some(id(9))] };
        let held: HashSet<i64> = [key("good_jobs", &id(9))].into();
        assert_eq!(Liveness::read(&l, "good_jobs", &[&s], &held, Instant::now()), [1]);
        let none = HashSet::new();
        assert_eq!(Liveness::read(&l, "good_jobs", &[&s], &none, Instant::now()), [0]);
    }
}
