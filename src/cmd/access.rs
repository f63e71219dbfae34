//! `wakufleet access create|list|revoke`: people's named access tokens, through the
//! controller's API (admins only). The caller's token comes from a file or the environment,
//! never from argv; a new token goes to a mode-0600 file or standard output, shown once.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::api::{ApiArgs, format_ms};

#[derive(Debug, Subcommand)]
pub(crate) enum AccessCommand {
    /// Create a named access token with a role (shown once).
    Create {
        #[command(flatten)]
        api: ApiArgs,
        /// The account's name (letters, digits, . _ @ -): the audit log and the dashboard
        /// login use it.
        #[arg(long)]
        name: String,
        /// viewer (dashboard, read API), operator (everything but keys and accounts),
        /// key-holder (sign requests, signatures, key rotation) or admin (accounts).
        #[arg(long)]
        role: String,
        /// Write the token to this file (mode 0600; refused if it exists) instead of standard
        /// output.
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// List access tokens (never the secrets).
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke an access token at once.
    Revoke {
        #[command(flatten)]
        api: ApiArgs,
        /// The account's name.
        #[arg(long)]
        name: String,
    },
}

pub(crate) async fn run(command: AccessCommand) -> anyhow::Result<()> {
    match command {
        AccessCommand::Create { api, name, role, out } => {
            if let Some(out) = &out
                && out.exists()
            {
                bail!("{}: already exists; refusing to overwrite a token file", out.display());
            }
            let body = json!({ "name": name, "role": role });
            let answer = api.call(Method::POST, "/api/v1/access-tokens", Some(body)).await?;
            let token = answer["token"].as_str().context("the controller's answer has no token")?;
            match &out {
                Some(out) => crate::files::write_secret_new(out, &format!("{token}\n"))?,
                None => println!("{token}"),
            }
            eprintln!("access token for {name} ({role}); it is not shown again");
        }
        AccessCommand::List { api } => {
            let answer = api.call(Method::GET, "/api/v1/access-tokens", None).await?;
            println!("{:<24} {:<11} {:<8} LAST USED", "NAME", "ROLE", "STATE");
            for entry in answer["accessTokens"].as_array().into_iter().flatten() {
                let state = if entry["revokedAt"].is_null() { "active" } else { "revoked" };
                let last_used =
                    entry["lastUsedAt"].as_i64().map_or_else(|| "never".to_owned(), format_ms);
                println!(
                    "{:<24} {:<11} {:<8} {last_used}",
                    entry["name"].as_str().unwrap_or("?"),
                    entry["role"].as_str().unwrap_or("?"),
                    state,
                );
            }
        }
        AccessCommand::Revoke { api, name } => {
            let path = format!("/api/v1/access-tokens/{name}");
            api.call(Method::DELETE, &path, None).await?;
            eprintln!("revoked the access token of {name}");
        }
    }
    Ok(())
}
