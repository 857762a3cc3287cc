//! The queue of each claimed job, remembered between snapshots.
//!
//! A claimed execution carries no queue name: it is the job's, one primary-key lookup in `solid_queue_jobs` per
//! claim (5,000 running jobs: 5,000 lookups, most of a snapshot's time). A job's queue never changes, so the source
//! looks up only the claims it has not seen: those whose id (a sequence, given as each claim is inserted) is above
//! the highest claim id of its last snapshot, and the jobs of claims it saw without a queue. Every snapshot still
//! reads every live claim (its job id and process), so the running figures and each worker's busy count stay
//! exact.
//!
//! One case is late by a snapshot: a claim whose transaction took its id before another's and committed after the
//! snapshot that saw the other (ids are given at insert, rows seen at commit). Its queue is then unknown for that
//! snapshot: it counts as running elsewhere (busy, so its worker is never stopped, but not demand of a watched
//! queue), and is looked up by its job id at the next.

use std::collections::HashMap;
use std::sync::Arc;

/// What the source remembers: claims up to `top` were looked up, and the queue of each live claim's job.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    top: i64,
    queues: HashMap<i64, Arc<str>>,
    unknown: Vec<i64>,
}

/// The running figures of one snapshot.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Tally {
    /// Live claims per watched queue.
    pub running: HashMap<Arc<str>, u64>,
    /// Live claims of other queues, or of a queue not known yet.
    pub elsewhere: u64,
    /// Live claims per process id.
    pub busy: HashMap<i64, i64>,
}

impl Claims {
    /// The statement's parameters: claims above this id are looked up, and the claims of these jobs.
    pub fn params(&self) -> (i64, Vec<i64>) {
        (self.top, self.unknown.clone())
    }

    /// Learns from one snapshot: the queues looked up (`queue`, job ids), the live claims (process id, job ids) and
    /// the highest claim id the snapshot saw; counts them, watching `filter` (`None`: every queue).
    pub fn learn(
        &mut self,
        looked_up: Vec<(String, Vec<i64>)>,
        live: &[(i64, Vec<i64>)],
        top: i64,
        filter: Option<&[String]>,
    ) -> Tally {
        for (queue, jobs) in looked_up {
            let queue: Arc<str> = queue.into();
            for job in jobs {
                self.queues.insert(job, queue.clone());
            }
        }
        let mut tally = Tally::default();
        // Only live claims are kept (moved to the next map, no copy); a claim id sequence that went back (a restored
        // database) is followed.
        let mut kept = HashMap::with_capacity(self.queues.len());
        self.unknown.clear();
        for (process, jobs) in live {
            *tally.busy.entry(*process).or_default() += jobs.len() as i64;
            for job in jobs {
                let Some(q) = self.queues.remove(job) else {
                    tally.elsewhere += 1;
                    self.unknown.push(*job);
                    continue;
                };
                if filter.is_none_or(|f| f.iter().any(|w| **w == *q)) {
                    match tally.running.get_mut(&q) {
                        Some(n) => *n += 1,
                        None => {
                            tally.running.insert(q.clone(), 1);
                        }
                    }
                } else {
                    tally.elsewhere += 1;
                }
                kept.insert(*job, q);
            }
        }
        self.queues = kept;
        self.top = top;
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str, jobs: &[i64]) -> (String, Vec<i64>) {
        (name.into(), jobs.to_vec())
    }

    #[test]
    fn queues_are_looked_up_once_and_forgotten_with_their_claim() {
        let mut c = Claims::default();
        assert_eq!(c.params(), (0, vec![]));
        let t = c.learn(vec![q("a", &[1, 2]), q("b", &[3])], &[(7, vec![1, 2, 3])], 30, None);
        assert_eq!(t.running, HashMap::from([("a".into(), 2), ("b".into(), 1)]));
        assert_eq!((t.elsewhere, t.busy[&7]), (0, 3));
        assert_eq!(c.params(), (30, vec![]));
        // Nothing looked up this time: the queues are remembered; job 3 finished, job 4 was claimed and looked up.
        let t = c.learn(vec![q("b", &[4])], &[(7, vec![1, 2]), (8, vec![4])], 31, None);
        assert_eq!(t.running, HashMap::from([("a".into(), 2), ("b".into(), 1)]));
        assert_eq!((t.busy[&7], t.busy[&8]), (2, 1));
        assert!(!c.queues.contains_key(&3), "a finished claim is forgotten");
    }

    #[test]
    fn a_claim_seen_before_its_queue_runs_elsewhere_once_then_is_looked_up() {
        let mut c = Claims::default();
        c.learn(vec![q("a", &[1])], &[(7, vec![1])], 10, Some(&["a".into()]));
        // Job 5's claim committed late, below the highest id already seen: not looked up this time.
        let t = c.learn(vec![], &[(7, vec![1, 5])], 10, Some(&["a".into()]));
        assert_eq!((t.running["a"], t.elsewhere, t.busy[&7]), (1, 1, 2));
        assert_eq!(c.params(), (10, vec![5]));
        let t = c.learn(vec![q("a", &[5])], &[(7, vec![1, 5])], 10, Some(&["a".into()]));
        assert_eq!((t.running["a"], t.elsewhere), (2, 0));
        assert_eq!(c.params(), (10, vec![]));
    }

    #[test]
    fn a_filtered_out_queue_runs_elsewhere() {
        let mut c = Claims::default();
        let t = c.learn(vec![q("a", &[1]), q("b", &[2])], &[(7, vec![1, 2])], 2, Some(&["a".into()]));
        assert_eq!((t.running.len(), t.running["a"], t.elsewhere), (1, 1, 1));
    }
}
