//! `wakufleet token create`: a one-time enrolment token from the controller's API, for scripts
//! and provisioning (Ansible, compose) in place of hand-written curl. The admin token
//! comes from a file or `$WAKUFLEET_ADMIN_TOKEN`, never from argv; the new token goes to a
//! mode-0600 file (or standard output), where an agent's `token_file` can read it.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use controller::config::ADMIN_TOKEN_ENV;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a one-time enrolment token for an agent.
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The controller's base URL, e.g. `http://controller:8080`.
    #[arg(long, env = "WAKUFLEET_CONTROLLER", value_name = "URL")]
    controller: String,
    /// File holding the admin token (else `$WAKUFLEET_ADMIN_TOKEN`).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// With an `https://` controller: PEM certificates trusted besides the web PKI roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// The node's label (operators' only: an agent cannot change it).
    #[arg(long)]
    label: String,
    /// The node's roles, comma-separated (boot, store, relay, filter, lightpush,
    /// peer-exchange); reports never change them.
    #[arg(long, value_delimiter = ',')]
    roles: Vec<String>,
    /// Shards the node may serve at most (comma-separated; default: any). A report claiming
    /// more is refused.
    #[arg(long, value_delimiter = ',')]
    shards: Vec<u16>,
    /// The cluster the node must be on (default: any).
    #[arg(long)]
    cluster_id: Option<u16>,
    /// How long it may wait to be redeemed (at most 30 days).
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// Write the token to this file (mode 0600; refused if it exists) instead of standard
    /// output.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// With `--out`: when the file exists already, leave it and succeed (for provisioning that
    /// runs more than once).
    #[arg(long, requires = "out")]
    keep_existing: bool,
    /// Keep trying this long while the controller cannot be reached (it may be starting).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    wait: Duration,
}

pub(crate) async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => create(args).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.out
        && out.exists()
    {
        if args.keep_existing {
            eprintln!("{} exists: left as it is", out.display());
            return Ok(());
        }
        bail!("{}: already exists; refusing to overwrite a token file", out.display());
    }
    let admin = match &args.admin_token_file {
        Some(path) => crate::files::read(path)?.trim().to_owned(),
        None => std::env::var(ADMIN_TOKEN_ENV).unwrap_or_default(),
    };
    if admin.is_empty() {
        bail!("no admin token: give --admin-token-file or set ${ADMIN_TOKEN_ENV}");
    }
    let url = format!("{}/api/v1/tokens", args.controller.trim_end_matches('/'));
    let mut body =
        json!({ "label": args.label, "roles": args.roles, "ttlSecs": args.ttl.as_secs() });
    if !args.shards.is_empty() {
        body["shards"] = json!(args.shards);
    }
    if let Some(cluster) = args.cluster_id {
        body["clusterId"] = json!(cluster);
    }
    let mut http = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        http = http.use_preconfigured_tls(
            node::tls::client_config(&pem).with_context(|| format!("{}", path.display()))?,
        );
    }
    let http = http.build()?;
    let deadline = Instant::now() + args.wait;
    let response = loop {
        match http.post(&url).bearer_auth(&admin).json(&body).send().await {
            Ok(response) => break response,
            Err(error)
                if Instant::now() < deadline && (error.is_connect() || error.is_timeout()) =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error).with_context(|| format!("controller at {url}")),
        }
    };
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let why = answer["error"].as_str().unwrap_or("no reason given");
        bail!("controller at {url} refused: {status}: {why}");
    }
    let token = answer["token"].as_str().context("the controller's answer has no token")?;
    match &args.out {
        Some(out) => crate::files::write_secret_new(out, &format!("{token}\n"))?,
        None => println!("{token}"),
    }
    eprintln!(
        "token {} for {}, roles [{}], to be redeemed within {}",
        answer["id"].as_str().unwrap_or("?"),
        args.label,
        args.roles.join(", "),
        humantime::format_duration(args.ttl)
    );
    Ok(())
}
