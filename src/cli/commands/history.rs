//! `dyno-scaler record` and `export-trace`: the user's own history as a trace for `simulate --trace-file`.

use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use dyno_scaler::core::{FinishedJob, Source};
use dyno_scaler_simulator::record::{self, Recorder};
use dyno_scaler_simulator::trace::HEADER;

use super::super::build;
use super::super::config::{ProcessSettings, Settings};
use crate::cli::logging;

/// How often a recording is written out while it runs.
const WRITE_EVERY: Duration = Duration::from_secs(60);

/// The process type named (or the first configured) and its source; exit 2 naming the configured process types
/// or the bad setting otherwise.
fn chosen<'s>(s: &'s Settings, only: Option<&str>, verb: &str) -> Result<(&'s ProcessSettings, Source), u8> {
    let p = match only {
        None => s.processes.first().ok_or(2)?,
        Some(pt) => super::named(s, pt, verb)?,
    };
    let source = build::source(s, p).map_err(|e| {
        logging::error(e);
        2
    })?;
    Ok((p, source))
}

/// Writes `text` to `path` whole: into a file beside it, then renamed over it, so a reader never sees half.
fn write_whole(path: &str, text: &str) -> std::io::Result<()> {
    let tmp = format!("{path}.part");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Records the chosen process type's queues until `duration` is over or a signal comes. Exit 0 with the file
/// written, 2 on bad usage, 1 when the file cannot be written.
pub async fn record(s: &Settings, out: &str, duration: Option<&str>, only: Option<&str>) -> u8 {
    let duration = match duration.map(|d| super::duration_flag(d, "--for")).transpose() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let (p, source) = match chosen(s, only, "record") {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Written once at the start, so a path that cannot be written fails now, not after a day.
    if let Err(e) = write_whole(out, &format!("{HEADER}\n")) {
        logging::error(format_args!("--out {out}: {e}"));
        return 1;
    }
    tracing::info!(process_type = %p.process_type, source = p.source, out, "recording");
    let started = Instant::now();
    let mut recorder = Recorder::default();
    let mut written = Instant::now();
    let mut tick = tokio::time::interval(s.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = super::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut stop => break,
        }
        match source.queue.snapshot().await {
            Ok(snap) => recorder.observe(SystemTime::now(), &snap),
            Err(e) => {
                tracing::warn!(process_type = %p.process_type, error = %e, "cannot read the queues; recording on")
            }
        }
        if recorder.full() {
            tracing::warn!(max_jobs = record::MAX_JOBS, "the recording is full: stopping");
            break;
        }
        if duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if written.elapsed() >= WRITE_EVERY {
            if let Err(e) = write_whole(out, &recorder.csv()) {
                tracing::warn!(out, error = %e, "cannot write the recording; trying again in a minute");
            }
            written = Instant::now();
        }
    }
    if let Err(e) = write_whole(out, &recorder.csv()) {
        logging::error(format_args!("--out {out}: {e}"));
        return 1;
    }
    println!(
        "recorded {} jobs and {:.1} s of run time over {:.0} s of {} to {out}",
        recorder.jobs(),
        recorder.busy_secs(),
        started.elapsed().as_secs_f64(),
        p.process_type
    );
    0
}

/// Writes the finished jobs the chosen process type's store keeps, arrived within `since`, as a trace. Exit 2
/// when its source keeps none (naming the source), 1 when the database or the file fails.
pub async fn export_trace(s: &Settings, since: &str, out: Option<&str>, only: Option<&str>) -> u8 {
    let since = match super::duration_flag(since, "--since") {
        Ok(d) => d,
        Err(code) => return code,
    };
    let (p, source) = match chosen(s, only, "export-trace") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(history) = source.history.clone() else {
        logging::error(format_args!(
            "export-trace {}: the {} source keeps no finished jobs with their times (GoodJob and Solid Queue do); \
             record a trace with `dyno-scaler record` instead",
            p.process_type, p.source
        ));
        return 2;
    };
    let mut sink: Box<dyn std::io::Write + Send> = match out {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                logging::error(format_args!("--out {path}: {e}"));
                return 1;
            }
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut failed: Option<std::io::Error> = writeln!(sink, "{HEADER}").err();
    let mut each = |jobs: Vec<FinishedJob>| {
        for j in jobs {
            if failed.is_some() {
                return;
            }
            let at = j.arrived_at.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            let line = format!("{},{},{}", record::time(at), record::csv_field(&j.queue), j.run.as_millis());
            failed = writeln!(sink, "{line}").err();
        }
    };
    let result = history.finished(since, &mut each).await;
    let failed = failed.or_else(|| sink.flush().err());
    match (result, failed) {
        (Ok(n), None) => {
            eprintln!("exported {n} finished jobs of {} ({} source)", p.process_type, p.source);
            0
        }
        (Err(e), _) => {
            logging::error(format_args!("export-trace {}: {e}", p.process_type));
            1
        }
        (_, Some(e)) => {
            logging::error(format_args!("export-trace: cannot write the trace: {e}"));
            1
        }
    }
}
