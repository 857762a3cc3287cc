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

/// Draws queue depth and dyno count over time, one panel per strategy, as SVG.
pub fn plot_svg(path: &std::path::Path, trace: &Trace, results: &[SimResult]) -> Result<(), PlotError> {
    use plotters::prelude::*;

    let height = 220 * results.len().max(1) as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(PlotError::from)?;
    let panels = root.split_evenly((results.len().max(1), 1));
    for (panel, r) in panels.iter().zip(results) {
        let hours = r.samples.last().map_or(trace.span, |s| s.0.max(trace.span)) / 3600.0;
        let max_depth = r.samples.iter().map(|s| s.1).max().unwrap_or(1).max(1) as f64;
        let max_dynos = r.samples.iter().map(|s| s.2).max().unwrap_or(1).max(1) as f64;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{}: queue depth (blue, left) and dynos (red, right)", r.strategy), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(48)
            .right_y_label_area_size(40)
            .build_cartesian_2d(0f64..hours, 0f64..max_depth * 1.05)
            .map_err(PlotError::from)?
            .set_secondary_coord(0f64..hours, 0f64..max_dynos * 1.2 + 1.0);
        chart.configure_mesh().x_desc("hours").disable_mesh().draw().map_err(PlotError::from)?;
        chart.configure_secondary_axes().draw().map_err(PlotError::from)?;
        chart
            .draw_series(LineSeries::new(r.samples.iter().map(|s| (s.0 / 3600.0, s.1 as f64)), &BLUE))
            .map_err(PlotError::from)?;
        chart
            .draw_secondary_series(LineSeries::new(r.samples.iter().map(|s| (s.0 / 3600.0, f64::from(s.2))), &RED))
            .map_err(PlotError::from)?;
    }
    root.present().map_err(PlotError::from)
}

/// Draws cost (dyno-hours) against p95 wait, both on log scales: one labelled point per strategy, the classic
/// policy's curve over its down delays, and the default in red. A wait of 0 is drawn at 0.1 s.
pub fn frontier_svg(path: &std::path::Path, f: &crate::frontier::Frontier) -> Result<(), PlotError> {
    use plotters::prelude::*;

    let all = f.peers.iter().chain(&f.classic).chain(std::iter::once(&f.default));
    let y = |w: f64| w.max(0.1);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, 0f64, f64::INFINITY, 0f64);
    for p in all {
        (x0, x1) = (x0.min(p.dyno_hours), x1.max(p.dyno_hours));
        (y0, y1) = (y0.min(y(p.wait_p95)), y1.max(y(p.wait_p95)));
    }
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(PlotError::from)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{}: cost against p95 wait (lower left is better)", f.trace), ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 * 0.8..x1 * 1.25).log_scale(), (y0 * 0.5..y1 * 2.0).log_scale())
        .map_err(PlotError::from)?;
    chart.configure_mesh().x_desc("dyno-hours billed").y_desc("p95 wait, s").draw().map_err(PlotError::from)?;
    let grey = RGBColor(120, 120, 120);
    chart
        .draw_series(LineSeries::new(f.classic.iter().map(|p| (p.dyno_hours, y(p.wait_p95))), &grey))
        .map_err(PlotError::from)?
        .label("classic policy over down delays 0-600 s")
        .legend(move |(x, yy)| PathElement::new(vec![(x, yy), (x + 20, yy)], grey));
    chart
        .draw_series(f.classic.iter().map(|p| Circle::new((p.dyno_hours, y(p.wait_p95)), 3, grey.filled())))
        .map_err(PlotError::from)?;
    let label = |p: &crate::frontier::Point, color: RGBColor| {
        EmptyElement::at((p.dyno_hours, y(p.wait_p95)))
            + Circle::new((0, 0), 5, color.filled())
            + Text::new(p.strategy.clone(), (7, -12), ("sans-serif", 13).into_font().color(&color))
    };
    chart.draw_series(f.peers.iter().map(|p| label(p, RGBColor(30, 60, 200)))).map_err(PlotError::from)?;
    chart.draw_series(std::iter::once(label(&f.default, RGBColor(200, 30, 30)))).map_err(PlotError::from)?;
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(PlotError::from)?;
    root.present().map_err(PlotError::from)
}
