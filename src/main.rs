//! `wakufleet`: one binary, a subcommand per role. The work happens in the library crates
//! (`node`, `controller`, `agent`) and in `cmd/`; this file parses arguments and reports errors.

mod cmd;
mod files;
mod password;

use std::process::ExitCode;

use clap::Parser;

/// Libraries whose `info` is per packet or per request: quiet unless asked for by name
/// (hickory-server logs two lines per DNS query).
const NOISY: &[&str] = &[
    "hickory_server=warn",
    "hickory_proto=warn",
    "discv5=error",
    "libp2p_swarm=warn",
    "sqlx=warn",
];

/// The log filter: `$WAKUFLEET_LOG` (tracing's syntax, e.g. `info,ctl::dns=debug`) or the
/// command's default level, with the noisy libraries held back unless the filter names them.
fn log_filter(default_level: &str) -> tracing_subscriber::EnvFilter {
    let asked = std::env::var("WAKUFLEET_LOG").ok().filter(|v| !v.trim().is_empty());
    let mut directives = asked.clone().unwrap_or_else(|| default_level.to_owned());
    for noisy in NOISY {
        let target = noisy.split('=').next().unwrap_or(noisy);
        if !directives.contains(target) {
            directives.push(',');
            directives.push_str(noisy);
        }
    }
    tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|error| {
        eprintln!("warning: WAKUFLEET_LOG={asked:?} is not a valid filter ({error}); using {default_level}");
        tracing_subscriber::EnvFilter::new(default_level)
    })
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    let cli = cmd::Cli::parse();
    let filter = log_filter(cli.default_log_level());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        cmd::LogFormat::Json => logs.json().with_current_span(false).init(),
        // Colour only for a person at a terminal: files and the journal get plain text.
        cmd::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    let mut runtime = if cli.single_threaded() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// One line naming the culprit: the chain of contexts joined with ": ". Library errors that
/// already quote their cause in their own message (so that logs show it too) do not repeat it.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on 127.0.0.1:1: {source}")]
    struct Listen {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_quoted_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let error = anyhow::Error::new(Listen { source: io }).context("starting the controller");
        assert_eq!(
            one_line(&error),
            "starting the controller: cannot listen on 127.0.0.1:1: Address already in use"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&plain), "outer: inner");
    }
}
