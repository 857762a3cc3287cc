//! `dyno-scaler install-trigger` and `uninstall-trigger`.

use super::super::TriggerArgs;
use super::super::config::Settings;

/// Installs (or removes) the insert trigger of every process type whose source needs one, or prints its SQL.
/// Exit 0 when no configured process type needs a trigger (nothing to do), 2 when the one named is unknown, 1 when
/// the database refuses.
pub async fn trigger(s: &Settings, args: &TriggerArgs, install: bool) -> u8 {
    let verb = if install { "install" } else { "uninstall" };
    if let Some(pt) = &args.process_type
        && let Err(code) = super::named(s, pt, &format!("{verb}-trigger"))
    {
        return code;
    }
    let chosen = s.processes.iter().filter(|p| args.process_type.as_ref().is_none_or(|pt| &p.process_type == pt));
    let (mut done, mut code) = (0, 0);
    for p in chosen {
        let trigger = match p.spec.trigger() {
            None => {
                if !args.print {
                    println!("{}: the {} source needs no trigger", p.process_type, p.source);
                }
                continue;
            }
            Some(Err(e)) => {
                crate::cli::logging::error(format_args!("process type {}: {e}", p.process_type));
                return 2;
            }
            Some(Ok(t)) => t,
        };
        done += 1;
        if args.print {
            println!("-- {} ({})", p.process_type, p.source);
            print!("{}", if install { trigger.install_sql() } else { trigger.uninstall_sql() });
            continue;
        }
        let result = if install { trigger.install().await } else { trigger.uninstall().await };
        match result {
            Ok(()) if install => {
                println!("{}: installed the insert trigger; `dyno-scaler run` now listens", p.process_type)
            }
            Ok(()) => println!("{}: removed the insert trigger; the table is as it was", p.process_type),
            Err(e) => {
                crate::cli::logging::error(format_args!("{}: {verb}-trigger failed: {e}", p.process_type));
                if e.to_string().contains("permission denied") || e.to_string().contains("must be owner") {
                    eprintln!("hint: a trigger is a schema change: run this with the table owner's DATABASE_URL");
                }
                code = 1;
            }
        }
    }
    if done == 0 && !args.print {
        // Nothing to do is success, so a release-phase script runs it whatever the source.
        println!(
            "nothing to {verb}: no configured process type uses a source that needs a trigger (delayed_job, solid_queue)"
        );
    }
    code
}
