//! `wakufleet`: one binary, a subcommand per role. The work happens in the library crates
//! (`node`, `controller`, `agent`) and in `cmd/`; this file parses arguments and reports errors.

mod cmd;
mod files;
mod password;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAKUFLEET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,discv5=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            // One line, naming the culprit: the chain of contexts joined with ": ".
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
