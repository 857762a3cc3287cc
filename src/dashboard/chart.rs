//! Step charts as inline SVG: every series on one shared y scale from zero, time on x, labelled axes; a gap in the
//! samples is a gap in the line. No script, no outside asset.
//!
//! ```
//! use dyno_scaler::dashboard::chart::{Series, steps};
//! let s = Series { name: "current", color: "#2563eb", points: vec![(0.0, 1.0), (60.0, 3.0)] };
//! let svg = steps("workers", &[s], (0.0, 120.0), 640.0, 200.0);
//! assert!(svg.starts_with("<svg") && svg.contains("current") && svg.contains(">3<"));
//! ```

use std::fmt::Write as _;

/// One line: its name, its colour and its (time, value) points, each holding until the next.
#[derive(Debug, Clone)]
pub struct Series {
    /// Shown in the legend.
    pub name: &'static str,
    /// A CSS colour.
    pub color: &'static str,
    /// (Unix seconds, value), oldest first; a point holds for a minute, or until the next one.
    pub points: Vec<(f64, f64)>,
}

const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 30.0;

/// The y axis' top: the peak rounded up to a 1-2-5 step times 4 (at least 1).
fn top(peak: f64) -> (f64, f64) {
    let raw = (peak.max(1.0) / 4.0).max(0.25);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let step = if peak <= 4.0 { 1.0 } else { step.max(1.0).round() };
    ((peak / step).ceil().max(1.0) * step, step)
}

/// `HH:MM` (UTC) of Unix seconds.
pub fn clock(t: f64) -> String {
    let m = (t.max(0.0) as u64 / 60) % 1440;
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// A step chart of `series` over `(x0, x1)` (Unix seconds), `width` × `height` pixels, the y axis named `y_label`.
pub fn steps(y_label: &str, series: &[Series], (x0, x1): (f64, f64), width: f64, height: f64) -> String {
    let peak = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let (ymax, ystep) = top(peak);
    let span = (x1 - x0).max(60.0);
    let (pw, ph) = (width - LEFT - RIGHT, height - TOP - BOTTOM);
    let x = |t: f64| LEFT + (t - x0).clamp(0.0, span) / span * pw;
    let y = |v: f64| TOP + ph - v.min(ymax) / ymax * ph;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-label="{}">"#,
        crate::dashboard::page::escape(y_label)
    );
    // Grid and y ticks.
    let mut v = 0.0;
    while v <= ymax + 1e-9 {
        let _ = write!(
            o,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#e5e7eb"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
            LEFT + pw,
            y(v),
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            v
        );
        v += ystep;
    }
    // x ticks: every 3 hours on a day, every 15 minutes on an hour or less, else hourly.
    let every = if span > 6.0 * 3600.0 {
        10_800.0
    } else if span > 3600.0 {
        3600.0
    } else {
        900.0
    };
    let mut t = (x0 / every).ceil() * every;
    while t <= x1 {
        let _ = write!(
            o,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1:.1}" stroke="#f3f4f6"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle" class="tick">{3}</text>"##,
            x(t),
            TOP + ph,
            TOP + ph + 16.0,
            clock(t)
        );
        t += every;
    }
    let _ = write!(
        o,
        r#"<text x="4" y="14" class="axis">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" class="axis">time (UTC)</text>"#,
        crate::dashboard::page::escape(y_label),
        LEFT + pw,
        height - 2.0
    );
    // Lines, then the legend.
    for s in series {
        // Whole pixels, and a step only where the value changes (a day of a steady value is one segment).
        let mut d = String::new();
        let mut last: Option<(f64, f64)> = None;
        for &(t, v) in &s.points {
            let _ = match last {
                Some((lt, lv)) if t - lt <= 61.0 && v == lv => Ok(()),
                Some((lt, _)) if t - lt <= 61.0 => write!(d, "H{:.0}V{:.0}", x(t), y(v)),
                Some((lt, _)) => write!(d, "H{:.0}M{:.0},{:.0}", x(lt + 60.0), x(t), y(v)),
                None => write!(d, "M{:.0},{:.0}", x(t), y(v)),
            };
            last = Some((t, v));
        }
        if let Some((lt, _)) = last {
            let _ = write!(d, "H{:.0}", x((lt + 60.0).min(x1)));
        }
        let _ = write!(
            o,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.6" class="series" data-series="{}"/>"#,
            s.color, s.name
        );
    }
    for (i, s) in series.iter().enumerate() {
        let lx = LEFT + 90.0 + i as f64 * 100.0;
        let _ = write!(
            o,
            r#"<rect x="{lx:.1}" y="6" width="10" height="10" fill="{}"/><text x="{:.1}" y="15" class="legend">{}</text>"#,
            s.color,
            lx + 14.0,
            s.name
        );
    }
    o.push_str("</svg>");
    o
}
