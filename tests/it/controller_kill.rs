//! Killing the controller at any point of a publication never leaves a root whose subtree is
//! incomplete. The `wakufleet controller` binary publishes by RFC 2136 to a real `knotd`
//! through a gate we hold: it lets a chosen number of UPDATE messages through and a chosen
//! number of answers back, so the controller can be killed (SIGKILL) before its first message,
//! after the server applied a message but before the controller heard so, and between the
//! additions and the deletions. After every kill the tree is resolved from knotd with the tree
//! client: it must verify completely, as the old or the new version; after a restart the
//! controller finishes the job, and at the end the zone holds exactly the new tree's records.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

#[path = "../../controller/tests/common/knot.rs"]
mod knot;

use crate::sim_agent::SimAgent as Agent;
use knot::{KEY_NAME, Knot, SECRET, ZONE};
use node::{
    dnsdisc::{ClientConfig, HickoryTxtResolver, TreeClient},
    enrtree::LinkEntry,
    keystore::{KdfStrength, Keystore},
};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
};

const ADMIN: &str = "kill-test-operator-token";
const KEY_PASSWORD: &str = "kill-test-keystore-password";
const DOMAIN: &str = "boot.fleet.test";

/// How many DNS messages the gate let through, and how many it may.
#[derive(Debug, Default)]
struct GateCounts {
    received: usize,
    forwarded: usize,
    answered: usize,
    forward_limit: usize,
    answer_limit: usize,
}

/// A TCP relay between the controller and knotd that holds DNS messages (two-byte length
/// prefix) and answers until the test allows them.
struct Gate {
    addr: SocketAddr,
    counts: Arc<Mutex<GateCounts>>,
}

impl Gate {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Mutex::new(GateCounts::default()));
        let shared = counts.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, shared.clone()));
            }
        });
        Self { addr, counts }
    }

    /// From now on, let `forward` more messages reach knotd and `answer` more answers back.
    fn allow(&self, forward: usize, answer: usize) {
        let mut c = self.counts.lock().unwrap();
        c.forward_limit = c.forwarded + forward;
        c.answer_limit = c.answered + answer;
    }

    fn open(&self) {
        self.allow(usize::MAX / 2, usize::MAX / 2);
    }

    fn counts(&self) -> (usize, usize, usize) {
        let c = self.counts.lock().unwrap();
        (c.received, c.forwarded, c.answered)
    }

    /// Until nothing has passed the gate for `quiet`, with every message answered: no
    /// publication (a retirement of superseded leaves, say) is in flight when a test closes it.
    async fn settle(&self, quiet: Duration) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = self.counts();
        let mut since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.counts();
            if now != last {
                (last, since) = (now, Instant::now());
            } else if now.0 == now.1 && now.1 == now.2 && since.elapsed() >= quiet {
                return;
            }
            assert!(Instant::now() < deadline, "gate: never quiet: {now:?}");
        }
    }

    /// Until `done` holds for the counts (received, forwarded, answered).
    async fn wait(&self, what: &str, done: impl Fn((usize, usize, usize)) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self.counts()) {
            assert!(Instant::now() < deadline, "gate: {what} never happened: {:?}", self.counts());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits until `allowed` says go, or the client hangs up (then the held message dies with it,
/// like a packet from a killed process).
async fn hold(
    client: &mut TcpStream,
    counts: &Mutex<GateCounts>,
    allowed: impl Fn(&mut GateCounts) -> bool,
) -> bool {
    loop {
        if allowed(&mut counts.lock().unwrap()) {
            return true;
        }
        let mut probe = [0u8; 1];
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            read = client.peek(&mut probe) => if matches!(read, Ok(0) | Err(_)) { return false },
        }
    }
}

async fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let len = stream.read_u16().await.ok()?;
    let mut message = vec![0u8; usize::from(len)];
    stream.read_exact(&mut message).await.ok()?;
    Some(message)
}

async fn write_message(stream: &mut TcpStream, message: &[u8]) -> Option<()> {
    stream.write_u16(u16::try_from(message.len()).ok()?).await.ok()?;
    stream.write_all(message).await.ok()
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, counts: Arc<Mutex<GateCounts>>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    while let Some(message) = read_message(&mut client).await {
        counts.lock().unwrap().received += 1;
        let go = hold(&mut client, &counts, |c| {
            let go = c.forwarded < c.forward_limit;
            c.forwarded += usize::from(go);
            go
        });
        if !go.await {
            return;
        }
        write_message(&mut server, &message).await.unwrap();
        let answer = read_message(&mut server).await.unwrap();
        let go = hold(&mut client, &counts, |c| {
            let go = c.answered < c.answer_limit;
            c.answered += usize::from(go);
            go
        });
        if !go.await || write_message(&mut client, &answer).await.is_none() {
            return;
        }
    }
}

/// One `wakufleet controller` process.
struct Ctl {
    child: Child,
    api: String,
}

impl Ctl {
    async fn start(dir: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("controller.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wakufleet"))
            .args(["controller", "--config"])
            .arg(dir.join("controller.toml"))
            .env("WAKUFLEET_ADMIN_TOKEN", ADMIN)
            .env("WAKUFLEET_KEY_DEV_PASSWORD", KEY_PASSWORD)
            .env("WAKUFLEET_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("run wakufleet controller");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let api = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("controller start")
                .unwrap()
                .unwrap_or_else(|| panic!("controller exited:\n{}", log_of(dir)));
            if let Some(rest) = line.trim().strip_prefix("API:") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches("/api/v1")
                    .to_owned();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, api }
    }

    /// SIGKILL: no shutdown path runs, the lease is not released.
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("controller.log")).unwrap_or_default()
}

fn write_config(dir: &Path, gate: SocketAddr) -> PathBuf {
    let key = node::crypto::generate_key();
    let keystore = Keystore::encrypt(&key, KEY_PASSWORD.as_bytes(), KdfStrength::Light).unwrap();
    std::fs::write(dir.join("dev.json"), keystore.to_string()).unwrap();
    std::fs::write(dir.join("tsig.key"), format!("hmac-sha256:{KEY_NAME}:{SECRET}\n")).unwrap();
    let config = format!(
        r#"listen = "127.0.0.1:0"
database-url = "sqlite://{dir}/controller.db"
reconcile-interval-ms = 100
root-ttl = 1
ttl = 60
# The agents are keys and records only: nothing listens at their addresses.
reachability = {{ enabled = false }}

[[keys]]
name = "dev"
keystore = "{dir}/dev.json"

[[trees]]
name = "boot"
domain = "{DOMAIN}"
signer = "key:dev"
policy = {{ roles = ["boot"] }}

[[publishers]]
kind = "rfc2136"
server = "{gate}"
zone = "{ZONE}"
tsig-key-file = "{dir}/tsig.key"
timeout-ms = 120000
"#,
        dir = dir.display()
    );
    let path = dir.join("controller.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// The tree as knotd serves it, resolved and verified; panics on any bad or missing entry.
async fn resolve(knot: &Knot, url: &LinkEntry) -> Vec<String> {
    let resolver = HickoryTxtResolver::with_server(knot.addr()).unwrap();
    let resolution = TreeClient::new(resolver, ClientConfig::default()).resolve(url).await;
    let errors: Vec<String> = resolution.errors().map(|e| format!("{e:?}")).collect();
    assert!(errors.is_empty(), "the served tree is broken: {errors:?}");
    let mut enrs: Vec<String> = resolution.records().iter().map(ToString::to_string).collect();
    enrs.sort();
    enrs
}

fn enrs_of(agents: &[Agent]) -> Vec<String> {
    let mut enrs: Vec<String> = agents.iter().map(|a| a.record.to_string()).collect();
    enrs.sort();
    enrs
}

async fn tree_state(http: &reqwest::Client, ctl: &Ctl) -> Value {
    crate::sim_agent::operator_get(http, &ctl.api, "/api/v1/trees/boot", ADMIN).await
}

/// Until the newest version is `state` (published / retired leaves…), via the API.
async fn wait_tree(http: &reqwest::Client, ctl: &Ctl, what: &str, done: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tree = tree_state(http, ctl).await;
        if done(&tree) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} never happened: {tree}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_controller_mid_publication_never_breaks_the_served_tree() {
    let knot = Knot::start();
    let gate = Gate::start(knot.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), gate.addr);
    let http = reqwest::Client::new();

    // A first tree of five nodes, published with the gate open.
    gate.open();
    let ctl = Ctl::start(dir.path()).await;
    let mut agents: Vec<Agent> = (0..5).map(|i| Agent::new(31_000 + i)).collect();
    for agent in &mut agents {
        agent.join(&http, &ctl.api, ADMIN, 6).await;
    }
    wait_tree(&http, &ctl, "the first publication", |t| {
        t["versions"][0]["state"] == "published"
            && t["versions"][0]["enrs"].as_array().map(Vec::len) == Some(5)
    })
    .await;
    let url: LinkEntry = tree_state(&http, &ctl).await["url"].as_str().unwrap().parse().unwrap();
    let five = enrs_of(&agents);
    assert_eq!(resolve(&knot, &url).await, five);
    // Let the first version's predecessors (if any) retire, so the gate sees only our steps:
    // quiet for longer than the root TTL (1 s), after which their leaves go.
    gate.settle(Duration::from_millis(1_500)).await;

    // Kill point 1: the new version is built and signed, its UPDATE is held before knotd.
    gate.allow(0, 0);
    let (received, _, _) = gate.counts();
    agents[4].send_report(&http, &ctl.api, 0).await; // critical: the next version lists four
    gate.wait("the additions reach the gate", |(r, _, _)| r > received).await;
    ctl.kill().await;
    assert_eq!(resolve(&knot, &url).await, five, "knotd still serves the old tree, whole");

    // Kill point 2: knotd applied the additions (new leaves and root, one atomic UPDATE), the
    // controller never heard so and has not recorded the publication.
    let four = enrs_of(&agents[..4]);
    let (_, forwarded, _) = gate.counts();
    gate.allow(1, 0);
    let ctl = Ctl::start(dir.path()).await;
    gate.wait("knotd gets the additions", |(_, f, _)| f > forwarded).await;
    // knotd answered (it is synchronous); give the answer time to reach the gate.
    let deadline = Instant::now() + Duration::from_secs(10);
    while resolve(&knot, &url).await != four {
        assert!(Instant::now() < deadline, "knotd never served the new tree");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctl.kill().await;
    assert_eq!(resolve(&knot, &url).await, four, "the new tree, whole");

    // Kill point 3: after a restart the controller applies the additions again (idempotent),
    // records the publication, and after the root TTL sends the deletions — held.
    let (received, _, _) = gate.counts();
    gate.allow(1, 1);
    let ctl = Ctl::start(dir.path()).await;
    wait_tree(&http, &ctl, "the second publication", |t| {
        t["versions"][0]["state"] == "published"
            && t["versions"][0]["enrs"].as_array().map(Vec::len) == Some(4)
    })
    .await;
    gate.wait("the deletions reach the gate", |(r, _, _)| r >= received + 2).await;
    let stale_before = knot.txt_records().len();
    ctl.kill().await;
    assert_eq!(resolve(&knot, &url).await, four);

    // Kill point 4: knotd applied the deletions, the controller did not hear so.
    let (_, forwarded, _) = gate.counts();
    gate.allow(1, 0);
    let ctl = Ctl::start(dir.path()).await;
    gate.wait("knotd gets the deletions", |(_, f, _)| f > forwarded).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while knot.txt_records().len() >= stale_before {
        assert!(
            Instant::now() < deadline,
            "knotd never applied the deletions: {:?} {:?}\n{}",
            gate.counts(),
            knot.txt_records(),
            log_of(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctl.kill().await;
    assert_eq!(resolve(&knot, &url).await, four);

    // Finally a clean run: the controller repeats the deletions (idempotent) and retires the
    // old version; the zone then holds exactly the new tree's records, nothing stale.
    gate.open();
    let ctl = Ctl::start(dir.path()).await;
    wait_tree(&http, &ctl, "the old version's retirement", |t| {
        t["versions"][1]["state"] == "retired"
    })
    .await;
    assert_eq!(resolve(&knot, &url).await, four);
    let served: Vec<String> = knot.txt_records().into_iter().map(|(name, _)| name).collect();
    // Every name but the root is a content hash: the same for any seq and signature. Names
    // compare without case, as in DNS (knotd keeps them lower case).
    let records = agents[..4].iter().map(|a| a.record.clone()).collect();
    let tree = node::enrtree::Tree::build(1, records, Vec::new()).unwrap();
    let mut expected: Vec<String> =
        tree.to_txt(DOMAIN).into_keys().map(|name| name.to_ascii_lowercase()).collect();
    expected.sort();
    assert_eq!(served, expected, "log:\n{}", log_of(dir.path()));
    ctl.kill().await;
}
