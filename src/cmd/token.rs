//! `wakufleet token create|list|revoke`: one-time enrolment tokens from the controller's API,
//! for scripts and provisioning (Ansible, compose) in place of hand-written curl. The token
//! comes from a file or `$WAKUFLEET_ADMIN_TOKEN`, never from argv; the new token goes to a
//! mode-0600 file (or standard output), where an agent's `token_file` can read it.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::api::{ApiArgs, format_ms};

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a one-time enrolment token for an agent.
    Create(CreateArgs),
    /// List enrolment tokens (never the secrets): id, label, roles, state.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke an enrolment token not yet redeemed.
    Revoke {
        #[command(flatten)]
        api: ApiArgs,
        /// The token's id as `token list` shows it (its SHA-256; a unique prefix of at least
        /// 8 characters will do).
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    api: ApiArgs,
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
        TokenCommand::List { api } => list(&api).await,
        TokenCommand::Revoke { api, id } => revoke(&api, &id).await,
    }
}

/// A token's state as `list` prints it.
fn token_state(token: &Value, now_ms: i64) -> String {
    if !token["revokedAt"].is_null() {
        "revoked".to_owned()
    } else if let Some(node) = token["nodeId"].as_str() {
        format!("used by {}", &node[..node.len().min(16)])
    } else if token["expiresAt"].as_i64().is_some_and(|at| at <= now_ms) {
        "expired".to_owned()
    } else {
        "unused".to_owned()
    }
}

async fn list(api: &ApiArgs) -> anyhow::Result<()> {
    let answer = api.call(Method::GET, "/api/v1/tokens", None).await?;
    let now_ms = node::clock::now_ns() / 1_000_000;
    println!("{:<16} {:<24} {:<24} {:<26} EXPIRES", "ID", "LABEL", "ROLES", "STATE");
    for token in answer["tokens"].as_array().into_iter().flatten() {
        let id = token["id"].as_str().unwrap_or("?");
        let roles: Vec<&str> =
            token["roles"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        println!(
            "{:<16} {:<24} {:<24} {:<26} {}",
            &id[..id.len().min(16)],
            token["label"].as_str().unwrap_or("?"),
            roles.join(","),
            token_state(token, now_ms),
            token["expiresAt"].as_i64().map_or_else(|| "?".to_owned(), format_ms),
        );
    }
    Ok(())
}

async fn revoke(api: &ApiArgs, id: &str) -> anyhow::Result<()> {
    // A prefix as `list` prints it: find the one full id it names.
    let full = if id.len() == 64 {
        id.to_owned()
    } else {
        if id.len() < 8 {
            bail!("--id: give at least 8 characters of the token's id");
        }
        let answer = api.call(Method::GET, "/api/v1/tokens", None).await?;
        let matching: Vec<String> = answer["tokens"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["id"].as_str())
            .filter(|t| t.starts_with(id))
            .map(str::to_owned)
            .collect();
        match matching.as_slice() {
            [one] => one.clone(),
            [] => bail!("no enrolment token id starts with {id}"),
            _ => bail!("{} enrolment tokens start with {id}; give more of the id", matching.len()),
        }
    };
    api.call(Method::DELETE, &format!("/api/v1/tokens/{full}"), None).await?;
    eprintln!("revoked enrolment token {full}");
    Ok(())
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
    let mut body =
        json!({ "label": args.label, "roles": args.roles, "ttlSecs": args.ttl.as_secs() });
    if !args.shards.is_empty() {
        body["shards"] = json!(args.shards);
    }
    if let Some(cluster) = args.cluster_id {
        body["clusterId"] = json!(cluster);
    }
    let answer =
        args.api.call_waiting(Method::POST, "/api/v1/tokens", Some(body), args.wait).await?;
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
        plain_duration(args.ttl)
    );
    Ok(())
}

/// A lifetime as a person writes it: "2 days", "2h", "90m", "45s" (humantime says "1day").
fn plain_duration(duration: Duration) -> String {
    match duration.as_secs() {
        86_400 => "1 day".to_owned(),
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
