//! `dyno-scaler pause` and `resume`: kept in the store of each process type's queue, beside its lease, so every
//! instance sees it at its next lease renewal (a third of the lease TTL at most).

use std::time::SystemTime;

use dyno_scaler::core::lease::{self, Pause};

use super::super::build;
use super::super::config::Settings;

/// Pauses the chosen process types (all by default) for `duration` or until resumed. Exit 2 on an unknown process
/// type or a bad duration, 1 when a store refuses.
pub async fn pause(s: &Settings, only: Option<&str>, duration: Option<&str>) -> u8 {
    let duration = match duration.map(|d| super::duration_flag(d, "--for")).transpose() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let by = format!("dyno-scaler pause on {}", lease::identity());
    let pause = Pause::new(by, SystemTime::now(), duration);
    each(s, only, "pause", Some(&pause)).await
}

/// Clears the pause of the chosen process types (all by default).
pub async fn resume(s: &Settings, only: Option<&str>) -> u8 {
    each(s, only, "resume", None).await
}

async fn each(s: &Settings, only: Option<&str>, verb: &str, pause: Option<&Pause>) -> u8 {
    if let Some(pt) = only
        && let Err(code) = super::named(s, pt, verb)
    {
        return code;
    }
    let mut code = 0;
    for p in s.processes.iter().filter(|p| only.is_none_or(|pt| p.process_type == pt)) {
        let source = match build::source(s, p) {
            Ok(s) => s,
            Err(e) => {
                crate::cli::logging::error(e);
                return 2;
            }
        };
        let Some(lease) = source.store.as_ref().map(|store| store.lease(&p.process_type)) else {
            crate::cli::logging::error(format_args!(
                "{verb} {}: the {} source has no store to keep a pause in",
                p.process_type, p.source
            ));
            code = 1;
            continue;
        };
        match lease.set_pause(pause).await {
            Ok(()) => match pause {
                Some(ps) => println!(
                    "{}: paused {} (every instance within a third of the lease TTL)",
                    p.process_type,
                    ps.describe()
                ),
                None => println!("{}: resumed", p.process_type),
            },
            Err(e) => {
                crate::cli::logging::error(format_args!("{verb} {}: {e}", p.process_type));
                code = 1;
            }
        }
    }
    code
}
