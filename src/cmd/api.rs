//! The people's API from the command line: where the controller is, who is asking (a token
//! from a file or the environment, never argv), and one request with the controller's reason
//! as the error.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use controller::config::ADMIN_TOKEN_ENV;
use reqwest::Method;
use serde_json::Value;

/// The environment variable holding the caller's own access token.
const TOKEN_ENV: &str = "WAKUFLEET_TOKEN";

/// An HTTP client with `timeout` that trusts the PEM certificates in `ca_file` besides the web
/// PKI roots (a fleet's own CA).
pub(crate) fn http_client(
    timeout: Duration,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<reqwest::Client> {
    let mut http = reqwest::Client::builder().timeout(timeout);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        http = http.use_preconfigured_tls(
            node::tls::client_config(&pem).with_context(|| format!("{}", path.display()))?,
        );
    }
    Ok(http.build()?)
}

/// How to reach the controller and who is asking.
#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// The controller's base URL, e.g. `http://controller:8080`.
    #[arg(long, env = "WAKUFLEET_CONTROLLER", value_name = "URL")]
    controller: String,
    /// File holding your access token or the admin token (else `$WAKUFLEET_TOKEN`, then
    /// `$WAKUFLEET_ADMIN_TOKEN`).
    #[arg(long, visible_alias = "admin-token-file", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// With an `https://` controller: PEM certificates trusted besides the web PKI roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

impl ApiArgs {
    fn token(&self) -> anyhow::Result<String> {
        let token = match &self.token_file {
            Some(path) => crate::files::read(path)?.trim().to_owned(),
            None => [TOKEN_ENV, ADMIN_TOKEN_ENV]
                .into_iter()
                .find_map(|name| std::env::var(name).ok().filter(|t| !t.trim().is_empty()))
                .unwrap_or_default(),
        };
        if token.is_empty() {
            bail!("no token: give --token-file or set ${TOKEN_ENV} (or ${ADMIN_TOKEN_ENV})");
        }
        Ok(token)
    }

    /// Sends one request; the answer's JSON on success, the controller's reason otherwise.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.call_waiting(method, path, body, Duration::ZERO).await
    }

    /// [`ApiArgs::call`], retrying for up to `wait` while the controller cannot be reached (it
    /// may be starting).
    pub(crate) async fn call_waiting(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        wait: Duration,
    ) -> anyhow::Result<Value> {
        let token = self.token()?;
        let http = http_client(Duration::from_secs(10), self.ca_file.as_deref())?;
        let url = format!("{}{path}", self.controller.trim_end_matches('/'));
        let deadline = Instant::now() + wait;
        let response = loop {
            let mut request = http.request(method.clone(), &url).bearer_auth(&token);
            if let Some(body) = &body {
                request = request.json(body);
            }
            match request.send().await {
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
        Ok(answer)
    }
}

/// Unix milliseconds as an RFC 3339 time (UTC, seconds).
pub(crate) fn format_ms(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}
