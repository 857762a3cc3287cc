//! Schedules: time windows (days and hours in a named IANA time zone) with their own `min_workers` and
//! `max_workers`. The first window that holds at the decision's time sets the bounds, and the decision names it.
//!
//! Hours are wall-clock times in the window's zone (jiff, with the IANA database built in), so a window keeps its
//! local hours across daylight-saving changes: `mon-fri 08:00-18:00 Europe/Berlin` starts at 06:00 UTC in summer
//! and at 07:00 UTC in winter. A window whose end is not after its start (`22:00-06:00`) runs overnight into the
//! next day.

use std::time::SystemTime;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// One window of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Its name in decisions (default: its text, e.g. `mon-fri 08:00-18:00 Europe/Berlin`).
    pub name: String,
    /// Days it starts on, Monday = bit 0.
    days: u8,
    /// Start and end, in minutes after local midnight (end up to 1440).
    from: u16,
    to: u16,
    /// The IANA zone's name.
    pub time_zone: String,
    #[serde(skip)]
    tz: TimeZone,
    /// The bounds while it holds (unset: the process type's own).
    pub min_workers: Option<u32>,
    /// See `min_workers`.
    pub max_workers: Option<u32>,
}

/// A window as written in a file's `[[process.schedule]]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSettings {
    /// Its name in decisions.
    pub name: Option<String>,
    /// `mon-fri`, `sat,sun`, `daily`.
    pub days: String,
    /// `08:00-18:00` (`22:00-06:00` runs overnight; `00:00-24:00` is the whole day).
    pub hours: String,
    /// An IANA zone such as `Europe/Berlin` or `UTC`.
    pub time_zone: String,
    /// The bounds while it holds.
    pub min_workers: Option<u32>,
    /// See `min_workers`.
    pub max_workers: Option<u32>,
}

/// A schedule setting: windows as tables, or as text (`;`-separated, the environment's form:
/// `mon-fri 08:00-18:00 Europe/Berlin min=2 max=10; sat-sun 00:00-24:00 UTC max=1`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ScheduleSetting {
    /// `;`-separated windows.
    Text(String),
    /// `[[process.schedule]]` tables.
    Tables(Vec<WindowSettings>),
}

impl ScheduleSetting {
    /// The windows, checked; an error names the window and what is wrong with it.
    pub fn windows(&self) -> Result<Vec<Window>, String> {
        match self {
            ScheduleSetting::Text(t) => t.split(';').filter(|w| !w.trim().is_empty()).map(Window::parse).collect(),
            ScheduleSetting::Tables(ts) => ts.iter().map(Window::from_settings).collect(),
        }
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(name: &str) -> Result<u8, String> {
    let n = name.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|d| n.starts_with(d) && d.len() <= n.len())
        .map(|i| i as u8)
        .ok_or_else(|| format!("unknown day {name:?}; use mon, tue, wed, thu, fri, sat or sun"))
}

fn days(text: &str) -> Result<u8, String> {
    let t = text.trim().to_ascii_lowercase();
    if t == "daily" || t == "*" {
        return Ok(0x7f);
    }
    let mut set = 0u8;
    for part in t.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    set |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => set |= 1 << day(part)?,
        }
    }
    Ok(set)
}

fn minutes(text: &str) -> Result<u16, String> {
    let bad = || format!("invalid time {text:?}; write HH:MM such as 08:00 (24:00 for the end of the day)");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Window {
    /// A window from its parts.
    pub fn new(
        name: Option<&str>,
        days_text: &str,
        hours: &str,
        time_zone: &str,
        (min_workers, max_workers): (Option<u32>, Option<u32>),
    ) -> Result<Self, String> {
        let label = format!("{days_text} {hours} {time_zone}");
        let at = |e: String| format!("schedule window {:?}: {e}", name.unwrap_or(&label));
        let (from, to) =
            hours.split_once('-').ok_or_else(|| at(format!("hours {hours:?}: write FROM-TO such as 08:00-18:00")))?;
        let (from, to) = (minutes(from).map_err(at)?, minutes(to).map_err(at)?);
        if from == to || from == 1440 {
            return Err(at(format!("hours {hours:?} are empty")));
        }
        let tz = jiff::tz::db().get(time_zone.trim()).map_err(|_| {
            at(format!("unknown time zone {time_zone:?}; use an IANA name such as Europe/Berlin or UTC"))
        })?;
        if min_workers.is_none() && max_workers.is_none() {
            return Err(at("sets neither min_workers nor max_workers".into()));
        }
        let days = days(days_text).map_err(at)?;
        Ok(Self {
            name: name.map_or(label, str::to_owned),
            days,
            from,
            to,
            time_zone: time_zone.trim().to_owned(),
            tz,
            min_workers,
            max_workers,
        })
    }

    fn from_settings(s: &WindowSettings) -> Result<Self, String> {
        Self::new(s.name.as_deref(), &s.days, &s.hours, &s.time_zone, (s.min_workers, s.max_workers))
    }

    /// `mon-fri 08:00-18:00 Europe/Berlin min=2 max=10`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let [d, h, z, rest @ ..] = words.as_slice() else {
            return Err(format!(
                "schedule window {text:?}: write DAYS HOURS ZONE min=N max=N, e.g. mon-fri 08:00-18:00 Europe/Berlin min=2"
            ));
        };
        let (mut min, mut max) = (None, None);
        for r in rest {
            let bad = || format!("schedule window {text:?}: {r:?} is not min=N or max=N");
            let (k, v) = r.split_once('=').ok_or_else(bad)?;
            let v: u32 = v.parse().map_err(|_| bad())?;
            match k {
                "min" | "min_workers" => min = Some(v),
                "max" | "max_workers" => max = Some(v),
                _ => return Err(bad()),
            }
        }
        Self::new(None, d, h, z, (min, max))
    }

    /// The bounds while it holds, given the process type's own `(min_workers, max_workers)`.
    pub fn bounds(&self, (min, max): (u32, u32)) -> (u32, u32) {
        (self.min_workers.unwrap_or(min), self.max_workers.unwrap_or(max))
    }

    /// Whether it holds at `now`.
    pub fn holds_at(&self, now: SystemTime) -> bool {
        let Ok(ts) = jiff::Timestamp::try_from(now) else { return false };
        let local = ts.to_zoned(self.tz.clone());
        let minute = u16::from(local.hour() as u8) * 60 + u16::from(local.minute() as u8);
        let wd = local.weekday().to_monday_zero_offset() as u8;
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.from < self.to {
            on(wd) && self.from <= minute && minute < self.to
        } else {
            (on(wd) && minute >= self.from) || (on((wd + 6) % 7) && minute < self.to)
        }
    }
}

/// The first of `windows` that holds at `now`.
pub fn current(windows: &[Window], now: SystemTime) -> Option<&Window> {
    windows.iter().find(|w| w.holds_at(now))
}
