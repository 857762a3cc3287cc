//! Tables, JSON and SVG plots of simulation results.

use std::fmt::Write as _;

use super::engine::{SimConfig, SimResult};
use super::trace::Trace;

/// A text table of results, one row per strategy.
pub fn table(trace: &Trace, cfg: &SimConfig, results: &[SimResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {}: {} jobs over {:.1} h, {:.1} h of work; dynos of {} threads, boot {:?}, ${:.4}/dyno-hour",
        trace.name,
        trace.jobs.len(),
        trace.span / 3600.0,
        trace.work().as_secs_f64() / 3600.0,
        cfg.concurrency,
        cfg.boot_time,
        cfg.price_per_dyno_hour
    );
    let _ = writeln!(
        out,
        "{:<22} {:>10} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>11} {:>9} {:>7} {:>10}",
        "strategy",
        "dyno-h",
        "cost $",
        "x oracle",
        "p50 s",
        "p95 s",
        "p99 s",
        "max s",
        "interrupted",
        "API calls",
        "scales",
        "unfinished"
    );
    for r in results {
        let _ = writeln!(
            out,
            "{:<22} {:>10.2} {:>9.2} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>11} {:>9} {:>7} {:>10}",
            r.strategy,
            r.dyno_hours,
            r.cost,
            r.cost_vs_oracle.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}")),
            r.wait_p50,
            r.wait_p95,
            r.wait_p99,
            r.wait_max,
            r.interrupted,
            r.api_calls,
            r.scale_events,
            r.unfinished
        );
    }
    out
}

/// The plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the plot: {message}")]
pub struct PlotError {
    message: String,
}

impl PlotError {
    fn from<E: std::fmt::Display>(e: E) -> Self {
        Self { message: e.to_string() }
    }
}

/// The y range of a figure's panels: the same for all, so panels compare at a glance.
fn shared_scale(results: &[SimResult], trace: &Trace) -> (f64, f64, u32) {
    let hours = results.iter().filter_map(|r| r.samples.last()).map(|s| s.0).fold(trace.span, f64::max) / 3600.0;
    let depth = results.iter().flat_map(|r| &r.samples).map(|s| s.1).max().unwrap_or(0).max(1) as f64;
    let dynos = results.iter().flat_map(|r| &r.samples).map(|s| s.2).max().unwrap_or(0).max(1);
    (hours.max(1.0 / 60.0), depth, dynos)
}

/// A dyno count as a step line: it holds until the next sample.
fn steps(samples: &[(f64, u64, u32)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    for (i, s) in samples.iter().enumerate() {
        if i > 0 {
            out.push((s.0 / 3600.0, f64::from(samples[i - 1].2)));
        }
        out.push((s.0 / 3600.0, f64::from(s.2)));
    }
    out
}

/// Draws, one panel per strategy on one shared scale, the most jobs waiting (blue, left axis) and the most dynos
/// up (red steps, right axis, whole dynos) in each minute, as SVG.
pub fn plot_svg(path: &std::path::Path, trace: &Trace, results: &[SimResult]) -> Result<(), PlotError> {
    use plotters::prelude::*;

    let height = 200 * results.len().max(1) as u32 + 40;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(PlotError::from)?;
    let (title, body) = root.split_vertically(40);
    title
        .titled(
            &format!("{}: jobs waiting and dynos per minute, every strategy on the same scale", trace.name),
            ("sans-serif", 18),
        )
        .map_err(PlotError::from)?;
    let (hours, depth, dynos) = shared_scale(results, trace);
    let red = RGBColor(200, 30, 30);
    for (panel, r) in body.split_evenly((results.len().max(1), 1)).iter().zip(results) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{}: {:.2} dyno-h, p95 wait {:.1} s{}",
                    r.strategy,
                    r.dyno_hours,
                    r.wait_p95,
                    if r.interrupted > 0 { format!(", {} jobs interrupted", r.interrupted) } else { String::new() }
                ),
                ("sans-serif", 14),
            )
            .margin(6)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .right_y_label_area_size(48)
            .build_cartesian_2d(0f64..hours, 0f64..depth * 1.05)
            .map_err(PlotError::from)?
            .set_secondary_coord(0f64..hours, 0f64..f64::from(dynos) + 0.5);
        chart
            .configure_mesh()
            .x_desc("hours")
            .y_desc("jobs waiting")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .disable_mesh()
            .draw()
            .map_err(PlotError::from)?;
        chart
            .configure_secondary_axes()
            .y_desc("dynos")
            .y_labels(dynos.min(10) as usize + 1)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(PlotError::from)?;
        chart
            .draw_series(LineSeries::new(r.samples.iter().map(|s| (s.0 / 3600.0, s.1 as f64)), &BLUE))
            .map_err(PlotError::from)?;
        chart.draw_secondary_series(LineSeries::new(steps(&r.samples), &red)).map_err(PlotError::from)?;
    }
    root.present().map_err(PlotError::from)
}

/// Draws cost (dyno-hours) against p95 wait, both on log scales: one point per strategy labelled with its cost, the
/// classic policy's curve over its down delays, the default in red, the oracle (the least cost of no wait) in
/// green, and a strategy that interrupted jobs as a cross with their count. A wait of 0 is drawn at 0.1 s.
pub fn frontier_svg(path: &std::path::Path, f: &crate::frontier::Frontier) -> Result<(), PlotError> {
    use plotters::prelude::*;

    let all = f.peers.iter().chain(&f.classic).chain([&f.default, &f.oracle]);
    let y = |w: f64| w.max(0.1);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, 0f64, f64::INFINITY, 0f64);
    for p in all {
        (x0, x1) = (x0.min(p.dyno_hours.max(1e-3)), x1.max(p.dyno_hours));
        (y0, y1) = (y0.min(y(p.wait_p95)), y1.max(y(p.wait_p95)));
    }
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(PlotError::from)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{}: cost against p95 wait (lower left is better)", f.trace), ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 * 0.8..x1 * 2.5).log_scale(), (y0 * 0.5..y1 * 2.0).log_scale())
        .map_err(PlotError::from)?;
    chart
        .configure_mesh()
        .x_desc("dyno-hours billed")
        .y_desc("p95 wait, s (a wait of 0 at 0.1)")
        .x_labels(0)
        .y_labels(20)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|_| String::new())
        .draw()
        .map_err(PlotError::from)?;
    // Ticks at 1, 2 and 5 of each decade in view, on both axes: plotters' own log ticks skip the decade the
    // points are in.
    let (left, bottom) = (x0 * 0.8, y0 * 0.5);
    let ticks = |lo: f64, hi: f64| -> Vec<f64> {
        (-3..=6).flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k))).filter(|v| (lo..=hi).contains(v)).collect()
    };
    let name = |v: f64| if v >= 1.0 { format!("{v:.0}") } else { format!("{v}") };
    let font = ("sans-serif", 12).into_font();
    chart
        .draw_series(ticks(left, x1 * 2.5).into_iter().map(|v| {
            EmptyElement::at((v, bottom))
                + PathElement::new(vec![(0, 0), (0, 6)], BLACK)
                + Text::new(name(v), (-8, 9), font.clone())
        }))
        .map_err(PlotError::from)?;
    chart
        .draw_series(ticks(bottom, y1 * 2.0).into_iter().map(|v| {
            EmptyElement::at((left, v))
                + PathElement::new(vec![(0, 0), (-6, 0)], BLACK)
                + Text::new(name(v), (-40, -6), font.clone())
        }))
        .map_err(PlotError::from)?;
    let grey = RGBColor(120, 120, 120);
    chart
        .draw_series(LineSeries::new(f.classic.iter().map(|p| (p.dyno_hours, y(p.wait_p95))), &grey))
        .map_err(PlotError::from)?
        .label("classic policy over down delays 0-600 s")
        .legend(move |(x, yy)| PathElement::new(vec![(x, yy), (x + 20, yy)], grey));
    chart
        .draw_series(f.classic.iter().map(|p| Circle::new((p.dyno_hours, y(p.wait_p95)), 3, grey.filled())))
        .map_err(PlotError::from)?;
    let label = |p: &crate::frontier::Point, color: RGBColor, below: bool| {
        let text = match p.interrupted {
            0 => format!("{} ({:.1} dyno-h)", p.strategy, p.dyno_hours),
            n => format!("{} ({:.1} dyno-h, {n} jobs interrupted)", p.strategy, p.dyno_hours),
        };
        let font = ("sans-serif", 13).into_font().color(&color);
        let marker: DynElement<_, _> = if p.interrupted > 0 {
            Cross::new((0, 0), 7, color.stroke_width(3)).into_dyn()
        } else {
            Circle::new((0, 0), 5, color.filled()).into_dyn()
        };
        EmptyElement::at((p.dyno_hours, y(p.wait_p95)))
            + marker
            + Text::new(text, (9, if below { 4 } else { -14 }), font)
    };
    let orange = RGBColor(220, 110, 0);
    chart
        .draw_series(
            f.peers
                .iter()
                .enumerate()
                .map(|(i, p)| label(p, if p.interrupted > 0 { orange } else { RGBColor(30, 60, 200) }, i % 2 == 1)),
        )
        .map_err(PlotError::from)?;
    chart.draw_series(std::iter::once(label(&f.default, RGBColor(200, 30, 30), false))).map_err(PlotError::from)?;
    chart.draw_series(std::iter::once(label(&f.oracle, RGBColor(20, 140, 40), false))).map_err(PlotError::from)?;
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(PlotError::from)?;
    root.present().map_err(PlotError::from)
}
