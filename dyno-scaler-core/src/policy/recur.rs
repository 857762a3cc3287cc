//! Load that recurs: the most workers wanted in each slot of a period (each minute of the hour, each five minutes
//! of the day), kept for the last few periods, so the policy can start workers one boot time before load that
//! came back at the same slot in most of them.

use serde::{Deserialize, Serialize};

/// Periods remembered (the current one and the four before it).
const RING: u64 = 5;
/// Past periods looked at, and how many of them must show the load for it to count as recurring.
const LOOK: u64 = 4;
const NEED: usize = 3;

/// The most workers wanted per slot of a period, for the last [`RING`] periods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    /// Length of the period in seconds (3,600 or 86,400).
    pub period: u64,
    /// Length of one slot in seconds.
    pub slot: u64,
    /// The period (time ÷ period) of the last reading.
    pub last: u64,
    /// `levels[slot × RING + period % RING]`: the most workers wanted in that slot of that period.
    pub levels: Vec<u16>,
    /// The start (seconds since the epoch) of the last slot whose recurring load came: no pre-warm for it again.
    #[serde(default)]
    pub served: u64,
}

/// What recurs in a slot: the level wanted there in most recent periods, and the level just before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recurring {
    /// Workers wanted at that slot in at least three of the last four periods (the third highest of the four).
    pub level: u32,
    /// The same figure three slots earlier: load that recurs *rises* at the slot when `level` is above it.
    pub before: u32,
    /// Periods of the last four that wanted `level` or more there.
    pub seen: usize,
}

impl Recurrence {
    /// An empty memory of `period` seconds in slots of `slot` seconds.
    pub fn new(period: u64, slot: u64) -> Self {
        let slots = period / slot;
        Self { period, slot, last: 0, levels: vec![0; (slots * RING) as usize], served: 0 }
    }

    fn slots(&self) -> u64 {
        self.period / self.slot
    }

    fn index(&self, slot: u64, period: u64) -> usize {
        (slot % self.slots() * RING + period % RING) as usize
    }

    /// Moves to the period of `t` (seconds since the epoch), forgetting the slots of periods that rolled over.
    fn advance(&mut self, t: u64) {
        let p = t / self.period;
        if self.levels.len() != (self.slots() * RING) as usize {
            // A summary of another shape (a changed build): start again.
            self.levels = vec![0; (self.slots() * RING) as usize];
        }
        if p > self.last {
            for q in (self.last + 1).max(p.saturating_sub(RING - 1))..=p {
                for s in 0..self.slots() {
                    let i = self.index(s, q);
                    self.levels[i] = 0;
                }
            }
            self.last = p;
        }
    }

    /// Notes that `wanted` workers were wanted at `t`.
    pub fn record(&mut self, t: u64, wanted: u32) {
        self.advance(t);
        if t / self.period < self.last {
            return; // a clock that went back: ignore.
        }
        let i = self.index(t % self.period / self.slot, t / self.period);
        self.levels[i] = self.levels[i].max(u16::try_from(wanted).unwrap_or(u16::MAX));
    }

    /// The start of the slot holding `t`.
    pub fn slot_start(&self, t: u64) -> u64 {
        t - t % self.slot
    }

    /// Notes that `wanted` workers are wanted at `t`: when that reaches what recurs there, the slot is served.
    pub fn serve(&mut self, t: u64, wanted: u32) {
        let (level, _) = self.recurring(t % self.period / self.slot, t / self.period);
        if level > 0 && wanted >= level {
            self.served = self.served.max(self.slot_start(t));
        }
    }

    /// What recurred at the slot of `t` in the last four periods.
    pub fn at(&self, t: u64) -> Recurring {
        let slot = t % self.period / self.slot;
        let period = t / self.period;
        let (level, seen) = self.recurring(slot, period);
        let (before, _) = self.recurring(slot + self.slots() - 3, period);
        Recurring { level, before, seen }
    }

    /// The level wanted at `slot` in at least three of the four periods before `period`, and how many of them
    /// wanted that much.
    fn recurring(&self, slot: u64, period: u64) -> (u32, usize) {
        // At most four levels: kept on the stack, sorted highest first.
        let mut seen = [0u16; LOOK as usize];
        let mut n = 0;
        for q in self.past(period) {
            seen[n] = self.levels[self.index(slot, q)];
            n += 1;
        }
        let seen = &mut seen[..n];
        seen.sort_unstable_by(|a, b| b.cmp(a));
        let level = seen.get(NEED - 1).copied().map_or(0, u32::from);
        (level, seen.iter().filter(|v| u32::from(**v) >= level && level > 0).count())
    }

    /// The periods of the last four before `period` still held.
    fn past(&self, period: u64) -> impl Iterator<Item = u64> + '_ {
        (1..=LOOK).filter_map(move |k| period.checked_sub(k)).filter(|q| *q + RING > self.last && *q <= self.last)
    }

    /// How many slots of a period would show `level` in three of the four periods before the one of `t` by
    /// chance alone, given how often any slot of those periods wanted that much (a trickle reaches one worker in
    /// many slots: noise): `slots × 4q³`, `q` the share of (slot, period) cells that wanted that much.
    pub fn by_chance(&self, t: u64, level: u32) -> f64 {
        let periods: Vec<u64> = self.past(t / self.period).collect();
        if periods.is_empty() || level == 0 {
            return 0.0;
        }
        let hits = periods
            .iter()
            .map(|q| (0..self.slots()).filter(|s| u32::from(self.levels[self.index(*s, *q)]) >= level).count())
            .sum::<usize>();
        let q = hits as f64 / (periods.len() as u64 * self.slots()) as f64;
        self.slots() as f64 * 4.0 * q.powi(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_at_the_same_minute_in_three_of_four_hours_recurs() {
        let mut r = Recurrence::new(3600, 60);
        let base = 1_000 * 3600;
        for h in 0..4u64 {
            // A trickle all hour, a burst wanting 8 at minute 20 (except in hour 1).
            for m in 0..60 {
                r.record(base + h * 3600 + m * 60 + 5, 1);
            }
            if h != 1 {
                r.record(base + h * 3600 + 20 * 60 + 30, 8);
            }
        }
        let next = base + 4 * 3600;
        let at = r.at(next + 20 * 60);
        assert_eq!((at.level, at.before, at.seen), (8, 1, 3));
        assert!(r.by_chance(next + 20 * 60, at.level) < 0.01, "{at:?}");
        // Minute 40 only has the trickle: level 1, not rising.
        let flat = r.at(next + 40 * 60);
        assert_eq!((flat.level, flat.before), (1, 1));
        assert!(r.by_chance(next + 40 * 60, flat.level) > 10.0, "a level every slot reaches is noise: {flat:?}");
    }

    #[test]
    fn two_of_four_is_not_recurring_and_old_periods_are_forgotten() {
        let mut r = Recurrence::new(3600, 60);
        let base = 500 * 3600;
        r.record(base + 600, 5);
        r.record(base + 3600 + 600, 5);
        assert_eq!(r.at(base + 4 * 3600 + 600).level, 0);
        r.record(base + 2 * 3600 + 600, 5);
        assert_eq!(r.at(base + 3 * 3600 + 600).level, 5);
        // Ten hours later nothing is remembered.
        r.record(base + 13 * 3600, 0);
        assert_eq!(r.at(base + 13 * 3600 + 600).level, 0);
        assert!(r.levels.iter().all(|v| *v == 0));
    }
}
