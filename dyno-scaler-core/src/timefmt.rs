//! Small, dependency-free RFC 3339 / ISO 8601 reading and writing, for the timestamps job libraries and
//! the Heroku API use.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM|±HHMM]` (a space instead of `T`, and ` UTC` or ` +0000` suffixes
/// as Ruby's `Time#to_s` writes, are accepted) into seconds since the Unix epoch.
///
/// ```
/// use dyno_scaler_core::timefmt::parse_rfc3339;
/// assert_eq!(parse_rfc3339("1970-01-02T00:00:00Z"), Some(86_400.0));
/// assert_eq!(parse_rfc3339("2024-06-12T09:03:01.5+01:00"), Some(1_718_179_381.5));
/// assert_eq!(parse_rfc3339("2024-06-12 09:03:01 +0000"), Some(1_718_182_981.0));
/// assert_eq!(parse_rfc3339("yesterday"), None);
/// ```
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ' || b[10] == b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        frac = format!("0.{}", &r[..digits]).parse().ok()?;
        rest = &r[digits..];
    }
    let rest = rest.trim_start();
    let offset = match rest {
        "" | "Z" | "z" | "UTC" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let oh: i64 = digits[..2].parse().ok()?;
            let om: i64 = digits[2..].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(secs as f64 + frac)
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC), as the Heroku API writes it.
///
/// ```
/// use dyno_scaler_core::timefmt::format_rfc3339;
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(format_rfc3339(UNIX_EPOCH + Duration::from_secs(1_718_182_981)), "2024-06-12T09:03:01Z");
/// ```
pub fn format_rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Formats a time like [`format_rfc3339`] with nine fractional digits, as Rails' Active Job writes `enqueued_at`.
pub fn format_rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let base = format_rfc3339(UNIX_EPOCH + Duration::from_secs(d.as_secs()));
    format!("{}.{:09}Z", &base[..base.len() - 1], d.subsec_nanos())
}

/// The age at `now` of a job timestamp (both in seconds since the epoch), or `None` when the timestamp cannot be
/// meant: not finite, before 2001-09-09 (`1e9`; a 0 or negative timestamp is garbage, not a 56-year-old job), or
/// more than a day ahead of `now`. A timestamp up to a day ahead is clock skew: age zero.
///
/// ```
/// use dyno_scaler_core::timefmt::plausible_age;
/// let now = 1_800_000_000.0;
/// assert_eq!(plausible_age(now - 12.5, now).unwrap().as_secs_f64(), 12.5);
/// assert_eq!(plausible_age(now + 60.0, now).unwrap().as_secs(), 0);
/// for garbage in [0.0, -1.0, 12.0, now + 90_000.0, f64::NAN, f64::INFINITY] {
///     assert_eq!(plausible_age(garbage, now), None);
/// }
/// ```
pub fn plausible_age(ts: f64, now: f64) -> Option<std::time::Duration> {
    if !ts.is_finite() || ts < 1e9 || ts > now + 86_400.0 {
        return None;
    }
    std::time::Duration::try_from_secs_f64((now - ts).max(0.0)).ok()
}
