//! The same figures as l2met log lines (`sample#` gauges, `count#` counts since the last line), which Heroku's log
//! drains and add-ons graph: worker dynos get no HTTP routing there, so a `/metrics` endpoint cannot be scraped.

use super::Metrics;

impl Metrics {
    /// One line per process type seen, and resets the counts they carry:
    /// `source=worker sample#dyno_scaler.ready=3 ... count#dyno_scaler.scale_events=1`.
    pub fn l2met(&self) -> Vec<String> {
        let mut all = self.last.lock().expect("metrics lock");
        let mut lines = Vec::new();
        for (pt, last) in all.iter_mut() {
            let (events, worker_seconds, errors) = std::mem::take(&mut last.since);
            let mut line = format!("source={pt}");
            if let Some(rep) = &last.report {
                let t = rep.snapshot.totals();
                let d = &rep.decision;
                let current = rep.quantity_after();
                let latency = t.oldest_ready_age.map_or(0.0, |a| a.as_secs_f64());
                line.push_str(&format!(
                    " sample#dyno_scaler.ready={} sample#dyno_scaler.running={} sample#dyno_scaler.scheduled={} \
                     sample#dyno_scaler.latency={latency:.3}s sample#dyno_scaler.desired_workers={} \
                     sample#dyno_scaler.current_workers={current} sample#dyno_scaler.draining_workers={} \
                     sample#dyno_scaler.acting={} sample#dyno_scaler.paused={}",
                    t.ready,
                    t.running,
                    t.scheduled,
                    d.to,
                    rep.draining.len(),
                    u8::from(rep.acting),
                    u8::from(rep.paused.is_some()),
                ));
            }
            line.push_str(&format!(
                " count#dyno_scaler.scale_events={events} count#dyno_scaler.worker_seconds={worker_seconds:.1} \
                 count#dyno_scaler.source_errors={errors}"
            ));
            lines.push(line);
        }
        lines
    }
}
