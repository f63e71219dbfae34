//! Shared set-up: controllers, agent configurations, captured logs.

use std::{
    io::Write,
    net::SocketAddr,
    path::Path,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use agent::{Agent, AgentConfig};
use controller::{app::Controller, config::ControllerConfig, keyring::Keyring};
pub(crate) use poll::poll_until;
use serde_json::Value;

#[path = "../../controller/tests/common/poll.rs"]
mod poll;

pub const ADMIN: &str = "agent-test-operator-token";

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once for the whole binary).
pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_env_filter("warn,agent=info")
            .try_init();
    });
}

/// Captured log lines containing every one of `needles`.
pub fn log_lines(needles: &[&str]) -> Vec<String> {
    let logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}

pub use node::free_port::free_port;

/// A controller that can be stopped and started again on the same address and database.
pub struct ControllerFixture {
    pub controller: Option<Controller>,
    pub addr: SocketAddr,
    pub database_url: String,
    pub http: reqwest::Client,
    dir: tempfile::TempDir,
    /// Dropped last, after the controller.
    _database: Option<node::sql::TestDatabase>,
}

impl ControllerFixture {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("controller.db").display());
        Self::with_database(dir, url, None).await
    }

    pub async fn postgres() -> Self {
        let database = node::sql::TestDatabase::create().await.unwrap();
        let url = database.url().to_owned();
        Self::with_database(tempfile::tempdir().unwrap(), url, Some(database)).await
    }

    async fn with_database(
        dir: tempfile::TempDir,
        database_url: String,
        database: Option<node::sql::TestDatabase>,
    ) -> Self {
        std::fs::write(dir.path().join("admin-token"), ADMIN).unwrap();
        let mut fixture = Self {
            controller: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            http: reqwest::Client::new(),
            dir,
            _database: database,
        };
        fixture.start(300).await;
        fixture
    }

    /// Starts the controller (again), allowing `max_skew_secs` of clock skew (negative: every
    /// request is stale).
    pub async fn start(&mut self, max_skew_secs: i64) {
        let config = ControllerConfig {
            listen: self.addr,
            database_url: self.database_url.clone(),
            admin_token_file: Some(self.dir.path().join("admin-token")),
            reconcile_interval_ms: 3_600_000,
            max_skew_secs,
            reports_kept: 1_000_000,
            ..ControllerConfig::default()
        };
        let controller = Controller::start(config, Keyring::default(), Vec::new()).await.unwrap();
        self.addr = controller.http_addr();
        self.controller = Some(controller);
    }

    pub async fn stop(&mut self) {
        if let Some(controller) = self.controller.take() {
            controller.shutdown().await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn token(&self) -> String {
        let response = self
            .http
            .post(format!("{}/api/v1/tokens", self.url()))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({ "label": "agent-test", "roles": ["boot"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
    }

    /// The registry's view of a node (`None`: unknown).
    pub async fn node(&self, node_id: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}/api/v1/nodes/{node_id}", self.url()))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 404 {
            return None;
        }
        Some(response.json::<Value>().await.unwrap()["node"].clone())
    }

    /// Every stored report of `node_id`: (counter, measuredAt, sentAt), by counter.
    pub async fn reports(&self, node_id: &str) -> Vec<(i64, i64, i64)> {
        use sqlx::Row;
        let (pool, _) = node::sql::connect(&self.database_url, 1).await.unwrap();
        let rows = sqlx::query(
            "SELECT counter, measured_at, sent_at FROM reports WHERE node_id = $1 ORDER BY counter",
        )
        .bind(node_id)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
    }

    /// Waits until `check` holds for the node's registry entry.
    pub async fn wait_node(
        &self,
        node_id: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let node = self.node(node_id).await;
            if let Some(node) = &node
                && check(node)
            {
                return node.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out; node is {node:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An `agent.toml` for tests: short intervals, loopback node on a fixed free port, both
/// compatibility ports on free ports. `node_extra` goes into `[node]`.
pub fn agent_config(dir: &Path, controller_url: &str, node_extra: &str) -> AgentConfig {
    let text = format!(
        r#"
data-dir = "{dir}"

[controller]
url = "{controller_url}"
token-file = "{dir}/token"
report-interval = "100ms"
request-timeout = "2s"

[supervisor]
backoff-min = "50ms"
backoff-max = "1s"
start-timeout = "5s"

[compat]
rest-address = "127.0.0.1:0"
metrics-address = "127.0.0.1:0"

[node]
listen-address = "127.0.0.1"
tcp-port = {port}
cluster-id = 1
shard = [0]
ip-colocation-limit = 0
{node_extra}
"#,
        dir = dir.display(),
        port = free_port(),
    );
    AgentConfig::parse(&text).unwrap()
}

/// Starts an agent with a fresh key, the token written to its token file.
pub async fn start_agent(config: AgentConfig, token: &str) -> (Agent, k256::ecdsa::SigningKey) {
    std::fs::create_dir_all(&config.data_dir).unwrap();
    std::fs::write(config.data_dir.join("token"), token).unwrap();
    let key = node::crypto::generate_key();
    let agent = Agent::start(config, key.clone()).await.unwrap();
    (agent, key)
}

/// The node id (hex) of the agent's node.
pub fn node_id(agent: &Agent) -> String {
    let instance = agent.supervisor().current().unwrap();
    data_encoding::HEXLOWER.encode(&instance.handle.enr().node_id().raw())
}

/// GET on a compatibility port: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}
