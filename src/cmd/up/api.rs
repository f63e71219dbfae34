//! The controller's operator API over HTTP, as an operator would use it: enrolment tokens, the
//! tree definition, the registry.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use serde_json::Value;

/// The controller's operator API over HTTP, as an operator would use it.
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub(crate) fn new(addr: SocketAddr, token: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        Ok(Self { http, base: format!("http://{addr}"), token })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let response = request.bearer_auth(&self.token).send().await.context(what.to_owned())?;
        let status = response.status();
        let body: Value = response.json().await.with_context(|| format!("{what}: {status}"))?;
        if !status.is_success() {
            anyhow::bail!("{what}: {status}: {}", body["error"].as_str().unwrap_or("no detail"));
        }
        Ok(body)
    }

    /// `POST /api/v1/tokens`: a one-time token for a relay node of `up`'s cluster and shard.
    pub(super) async fn token(&self, label: &str) -> anyhow::Result<String> {
        self.relay_token(label, super::fleet::CLUSTER, &[0]).await
    }

    /// `POST /api/v1/tokens`: a one-time token for a relay node of `cluster` on `shards`.
    pub(crate) async fn relay_token(
        &self,
        label: &str,
        cluster: u16,
        shards: &[u16],
    ) -> anyhow::Result<String> {
        let url = format!("{}/api/v1/tokens", self.base);
        let body = serde_json::json!({
            "label": label,
            "roles": ["relay"],
            "shards": shards,
            "clusterId": cluster,
            "ttlSecs": 3600,
        });
        let answer = self.send(self.http.post(url).json(&body), "POST /api/v1/tokens").await?;
        answer["token"].as_str().map(str::to_owned).context("POST /api/v1/tokens: no token")
    }

    /// `PUT /api/v1/trees/{name}`.
    pub(crate) async fn define_tree(&self, name: &str, definition: &Value) -> anyhow::Result<()> {
        let url = format!("{}/api/v1/trees/{name}", self.base);
        self.send(self.http.put(url).json(definition), "PUT /api/v1/trees").await.map(drop)
    }

    /// `GET /api/v1/trees/{name}`.
    pub(crate) async fn tree(&self, name: &str) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1/trees/{name}", self.base);
        self.send(self.http.get(url), "GET /api/v1/trees").await
    }

    /// `GET /api/v1/nodes`: the registry.
    pub(crate) async fn nodes(&self) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/api/v1/nodes", self.base);
        let mut answer = self.send(self.http.get(url), "GET /api/v1/nodes").await?;
        Ok(answer["nodes"].as_array_mut().map(std::mem::take).unwrap_or_default())
    }
}
