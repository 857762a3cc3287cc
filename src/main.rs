//! The `dyno-scaler` program: `run`, `status`, `check`, `simulate`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
