//! `wakufleet health`: one GET of a `/health` URL, for container and orchestrator health checks
//! (the image carries no curl). Exit 0 on a 2xx answer; otherwise one error line and exit 1.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// The URL to ask: the controller's `/health`, or an agent's `[compat] rest-address` plus
    /// `/health` (its node's health).
    #[arg(
        long,
        env = "WAKUFLEET_HEALTH_URL",
        default_value = "http://127.0.0.1:8080/health",
        value_name = "URL"
    )]
    url: String,
    /// Give up after this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// With an `https://` URL: PEM certificates trusted besides the web PKI roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

pub(crate) async fn run(args: HealthArgs) -> anyhow::Result<()> {
    let http = super::api::http_client(args.timeout, args.ca_file.as_deref())?;
    let response = http.get(&args.url).send().await.with_context(|| args.url.clone())?;
    let status = response.status();
    // The body says why (the controller's database, the node's protocols); keep it short.
    let body = response.text().await.unwrap_or_default();
    let reason: String = body.chars().take(300).collect();
    if !status.is_success() {
        bail!("{}: {status}: {}", args.url, reason.trim());
    }
    println!("{}: {status}", args.url);
    Ok(())
}
