//! Where the simulated nodes run: the fleet's and, by default, the clients in this process;
//! with `--workers N` the clients spread over N child processes (`wakufleet sim-worker`).
//!
//! One process may open only `ulimit -n` files and both ends of every link between two of its
//! nodes are its sockets, which holds a process to about a thousand nodes (the hard limit here
//! is 20,000 and cannot be raised). Each worker has a limit of its own.
//!
//! Every node is reached the same way, as a [`SimNode`], through one request/reply
//! vocabulary ([`Request`], [`Reply`]): in this process a [`Host`] answers at once; a worker
//! runs a `Host` of its own and answers over its stdin and stdout, a JSON line per message,
//! replies matched to requests by id. Crashing a host is a flag in every process's link model
//! (its links carry nothing, no FIN: a crashed host, not a closed one), so it is sent to every
//! process. A worker that dies fails every request to it: the sim stops and says which.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, anyhow};
use libp2p::PeerId;
use node::{
    config::NodeConfig,
    discovery_v5::Discv5Config,
    message::{MessageHash, WakuMessage},
    running::{NodeEvent, NodeHandle, start},
    tcp_transport::LinkModel,
    topics::ShardTopic,
};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    sync::{broadcast::error::RecvError, mpsc, oneshot, watch},
};

use super::{
    sim_hostile::Role,
    sim_links::{RttModel, SimLinks, address},
};

/// The cluster every simulated node is in.
pub(crate) const CLUSTER: u16 = 0;
/// Requests and replies waiting to be written to or by a worker.
const QUEUE: usize = 4096;
/// Longest line either side reads (a reply with every arrival of a long run at one node).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// The next line of `reader` into `line` (cleared first), at most `max` bytes: `false` at the
/// end of the stream, an error for a longer line.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut String,
    max: usize,
) -> anyhow::Result<bool> {
    use tokio::io::AsyncReadExt;
    line.clear();
    let read = reader.take(max as u64 + 1).read_line(line).await?;
    anyhow::ensure!(line.len() <= max, "a line longer than {max} bytes");
    Ok(read > 0)
}

/// Which shards each node relays: with one shard, all of them shard 0; with more, the fleet
/// every shard (as a fleet serves its network) and every other node one, in turn (as an
/// application's users are on its shard).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct ShardPlan {
    pub fleet: usize,
    pub shards: u16,
}

impl ShardPlan {
    pub(crate) fn shards_of(&self, index: usize) -> Vec<u16> {
        if index < self.fleet || self.shards == 1 {
            (0..self.shards).collect()
        } else {
            // `shards` is at most 1024, so the remainder fits.
            vec![((index - self.fleet) % usize::from(self.shards)) as u16]
        }
    }

    pub(crate) fn topic(&self, shard: u16) -> String {
        ShardTopic::new(CLUSTER, shard).to_string()
    }
}

/// A node on `ip` with the default limits; relay on its shards, peer exchange (both ways) and
/// discv5.
pub(crate) fn node_config(
    ip: Ipv4Addr,
    plan: &ShardPlan,
    index: usize,
    link_model: Option<Arc<dyn LinkModel>>,
) -> NodeConfig {
    NodeConfig {
        listen_ip: IpAddr::V4(ip),
        tcp_port: 0,
        websocket_port: None,
        discv5: Some(Discv5Config { udp_port: 0, bootstrap: Vec::new() }),
        cluster_id: CLUSTER,
        shards: plan.shards_of(index),
        num_shards_in_network: plan.shards,
        peer_exchange: true,
        peer_exchange_client: true,
        link_model,
        ..NodeConfig::default()
    }
}

/// What every process needs to start clients: the links' model, the shards, and the way in
/// (the tree's URL and the DNS server that serves it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Setup {
    pub rtt: String,
    pub bytes_per_sec: Option<u64>,
    pub seed: u64,
    /// How many times slower than real time the network runs.
    pub slowdown: u32,
    /// Hosts in the model (churn's joiners have hosts of their own).
    pub hosts: usize,
    pub plan: ShardPlan,
    pub url: String,
    pub dns: SocketAddr,
    pub max_connections: usize,
}

impl Setup {
    fn links(&self) -> anyhow::Result<SimLinks> {
        let rtt: RttModel = self.rtt.parse().map_err(|e: String| anyhow!(e))?;
        Ok(SimLinks::new(rtt, self.bytes_per_sec, self.seed, self.hosts).slowed(self.slowdown))
    }
}

/// A worker's first line: the setup and how many nodes it will run (for its files).
#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    setup: Setup,
    nodes: usize,
}

/// What a process is asked about one of its nodes (`index`) or about the links (`host`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Start { index: usize, role: Role },
    Stats { index: usize },
    Describe { index: usize },
    Peers { index: usize },
    Publish { index: usize, topic: String, content_topic: String, payload: Vec<u8>, timestamp: i64 },
    Record { index: usize },
    Arrivals { index: usize },
    StopRecording { index: usize },
    Crash { host: usize },
    Refuse { host: usize },
    Stretch,
    Shutdown { index: usize },
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Started {
        peer_id: String,
    },
    Stats(SimStats),
    Text(String),
    /// Connected peers.
    Peers(Vec<SimPeer>),
    /// The message's hash, and when the node was handed it (nanoseconds since the Unix
    /// epoch), taken in the process that runs it: the request's way through the pipe and the
    /// worker's queue is the sim's, not the network's.
    Published {
        hash: String,
        at: u64,
    },
    /// Message hashes and when they arrived (nanoseconds since the Unix epoch: every process
    /// on this machine reads the same clock), and how many events the recorder missed.
    Arrivals {
        arrivals: Vec<(String, u64)>,
        lagged: u64,
    },
    Done,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    id: u64,
    body: T,
}

/// A connected peer as the sim sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SimPeer {
    pub id: String,
    /// Whether it relays on one of the node's topics.
    pub relay: bool,
    /// Whether it dialled the node.
    pub inbound: bool,
    /// Whether it is in the node's mesh on one of its topics.
    pub in_mesh: bool,
    /// Its gossipsub score as the node keeps it.
    pub score: Option<f64>,
}

/// What the sim reads of a node's stats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SimStats {
    pub relay_peers: usize,
    /// Its smallest gossipsub mesh over its topics.
    pub mesh: usize,
    pub time_to_target: Option<Duration>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub dials_failed: u64,
    /// Inbound connections it refused (its limits, its inbound relay cap).
    pub refused_inbound: u64,
    /// discv5 lookups it ran.
    pub discv5_lookups: u64,
}

/// What one node's recorder saw: arrivals (hash, when) and events it missed.
#[derive(Default)]
struct Recorded {
    arrivals: Vec<(MessageHash, SystemTime)>,
    lagged: u64,
}

/// Arrivals being recorded at one node, readable while the recording goes on (the sim looks
/// again for stragglers before it stops). Dropping it stops the recorder.
struct Recording {
    _stop: watch::Sender<bool>,
    recorded: Arc<Mutex<Recorded>>,
}

/// The nodes of one process and what it knows of the links.
pub(crate) struct Host {
    setup: Setup,
    links: SimLinks,
    nodes: Mutex<HashMap<usize, NodeHandle>>,
    recording: Mutex<HashMap<usize, Recording>>,
}

fn nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl Host {
    pub(crate) fn new(setup: Setup, links: SimLinks) -> Arc<Self> {
        Arc::new(Self {
            setup,
            links,
            nodes: Mutex::new(HashMap::new()),
            recording: Mutex::new(HashMap::new()),
        })
    }

    fn node(&self, index: usize) -> Result<NodeHandle, String> {
        let nodes = self.nodes.lock().map_err(|_| "the node table is poisoned".to_owned())?;
        nodes.get(&index).cloned().ok_or_else(|| format!("no node {index} here"))
    }

    fn keep(&self, index: usize, handle: NodeHandle) {
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.insert(index, handle);
        }
    }

    /// Starts the client on host `index` behaving as `role` (an unreachable host's links are
    /// made to refuse connections before, in every process).
    async fn start_client(&self, index: usize, role: Role) -> anyhow::Result<NodeHandle> {
        let links: Arc<dyn LinkModel> = Arc::new(self.links.clone());
        let defaults = node_config(address(index)?, &self.setup.plan, index, Some(links));
        let config = NodeConfig {
            peer_manager: node::peers::PeerManagerConfig {
                max_connections: self.setup.max_connections,
                ..defaults.peer_manager.clone()
            },
            dns_discovery_urls: vec![self.setup.url.clone()],
            dns_name_server: Some(self.setup.dns),
            forward_messages: role != Role::NonRelaying,
            ..defaults
        };
        let (handle, _) = start(config).await.with_context(|| format!("node {index}"))?;
        Ok(handle)
    }

    async fn handle(&self, request: Request) -> Result<Reply, String> {
        match request {
            Request::Start { index, role } => {
                let handle = self.start_client(index, role).await.map_err(|e| format!("{e:#}"))?;
                let peer_id = handle.peer_id().to_string();
                self.keep(index, handle);
                Ok(Reply::Started { peer_id })
            }
            Request::Stats { index } => {
                let stats = self.node(index)?.stats().await.map_err(|e| e.to_string())?;
                Ok(Reply::Stats(SimStats {
                    relay_peers: stats.relay_peers,
                    mesh: stats.mesh_per_topic.values().copied().min().unwrap_or(0),
                    time_to_target: stats.time_to_target_relay_peers,
                    bytes_received: stats.bytes_received,
                    bytes_sent: stats.bytes_sent,
                    dials_failed: stats.dials_failed,
                    refused_inbound: stats.refused_inbound,
                    discv5_lookups: stats.discv5_lookups,
                }))
            }
            Request::Describe { index } => {
                let stats = self.node(index)?.stats().await.map_err(|e| e.to_string())?;
                Ok(Reply::Text(super::bench_node::short_node(&stats)))
            }
            Request::Peers { index } => {
                let peers = self.node(index)?.peers().await.map_err(|e| e.to_string())?;
                Ok(Reply::Peers(
                    peers
                        .into_iter()
                        .map(|p| SimPeer {
                            id: p.peer_id.to_string(),
                            relay: p.relay,
                            inbound: p.inbound,
                            in_mesh: !p.mesh_topics.is_empty(),
                            score: p.score,
                        })
                        .collect(),
                ))
            }
            Request::Publish { index, topic, content_topic, payload, timestamp } => {
                let message = WakuMessage::new(content_topic, payload, timestamp);
                let node = self.node(index)?;
                let at = nanos(SystemTime::now());
                let hash = node.publish(&topic, message).await.map_err(|e| e.to_string())?;
                Ok(Reply::Published { hash: hash.to_string(), at })
            }
            Request::Record { index } => {
                let mut events = self.node(index)?.events();
                // The recorder ends when its `Recording` (the sender) is dropped.
                let (stop, mut stopped) = watch::channel(false);
                let recorded = Arc::new(Mutex::new(Recorded::default()));
                let sink = recorded.clone();
                tokio::spawn(async move {
                    loop {
                        let event = tokio::select! {
                            event = events.recv() => event,
                            _ = stopped.changed() => break,
                        };
                        let Ok(mut sink) = sink.lock() else { break };
                        match event {
                            Ok(NodeEvent::Message { hash, .. }) => {
                                sink.arrivals.push((hash, SystemTime::now()));
                            }
                            Ok(_) => {}
                            Err(RecvError::Lagged(n)) => sink.lagged += n,
                            Err(RecvError::Closed) => break,
                        }
                    }
                });
                let mut recording = self.recording.lock().map_err(|_| "poisoned".to_owned())?;
                recording.insert(index, Recording { _stop: stop, recorded });
                Ok(Reply::Done)
            }
            Request::Arrivals { index } => {
                let recordings = self.recording.lock().map_err(|_| "poisoned".to_owned())?;
                let recording = recordings
                    .get(&index)
                    .ok_or_else(|| format!("node {index} is not recording"))?;
                let recorded = recording.recorded.lock().map_err(|_| "poisoned".to_owned())?;
                let arrivals =
                    recorded.arrivals.iter().map(|(h, at)| (h.to_string(), nanos(*at))).collect();
                Ok(Reply::Arrivals { arrivals, lagged: recorded.lagged })
            }
            Request::StopRecording { index } => {
                let mut recordings = self.recording.lock().map_err(|_| "poisoned".to_owned())?;
                recordings
                    .remove(&index)
                    .ok_or_else(|| format!("node {index} is not recording"))?;
                Ok(Reply::Done)
            }
            Request::Crash { host } => {
                self.links.crash(host);
                Ok(Reply::Done)
            }
            Request::Refuse { host } => {
                self.links.refuse_connections(host);
                Ok(Reply::Done)
            }
            Request::Stretch => {
                self.links.stretch();
                Ok(Reply::Done)
            }
            Request::Shutdown { index } => {
                let handle = self.node(index)?;
                handle.shutdown().await;
                if let Ok(mut nodes) = self.nodes.lock() {
                    nodes.remove(&index);
                }
                Ok(Reply::Done)
            }
        }
    }

    async fn shutdown_all(&self) {
        let handles: Vec<NodeHandle> =
            self.nodes.lock().map(|mut n| n.drain().map(|(_, h)| h).collect()).unwrap_or_default();
        futures::future::join_all(handles.iter().map(NodeHandle::shutdown)).await;
    }
}

/// `wakufleet sim-worker`: runs the clients a `wakufleet sim` asks for, answering on stdout,
/// until its stdin closes.
pub(crate) async fn worker_main() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    anyhow::ensure!(
        read_line(&mut stdin, &mut line, MAX_LINE).await?,
        "no setup on stdin: this is run by `wakufleet sim --workers`"
    );
    let hello: Hello = serde_json::from_str(&line).context("the setup line")?;
    super::sim_files::ensure_open_files(hello.nodes, hello.setup.max_connections)?;
    let links = hello.setup.links()?;
    let host = Host::new(hello.setup, links);
    let (replies, mut outgoing) = mpsc::channel::<String>(QUEUE);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(mut line) = outgoing.recv().await {
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    while read_line(&mut stdin, &mut line, MAX_LINE).await? {
        let request: Envelope<Request> =
            serde_json::from_str(&line).with_context(|| format!("a request: {line:.200}"))?;
        let (host, replies) = (host.clone(), replies.clone());
        tokio::spawn(async move {
            let body = host.handle(request.body).await;
            if let Ok(line) = serde_json::to_string(&Envelope { id: request.id, body }) {
                let _ = replies.send(line).await;
            }
        });
    }
    host.shutdown_all().await;
    drop(replies);
    let _ = writer.await;
    Ok(())
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Reply, String>>>>>;

/// A worker process and the requests waiting for its replies.
pub(crate) struct Worker {
    number: usize,
    pid: u32,
    requests: mpsc::Sender<String>,
    pending: Pending,
    /// Cleared when the worker's stdout closes: nothing more will be answered.
    alive: Arc<std::sync::atomic::AtomicBool>,
    next_id: AtomicU64,
    _child: tokio::process::Child,
}

impl Worker {
    async fn spawn(number: usize, setup: &Setup, nodes: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this program to start a worker")?;
        let mut command = tokio::process::Command::new(exe);
        // The clients' logs apart from the fleet's: `WAKUFLEET_WORKER_LOG`, when set, is the
        // workers' filter (e.g. the fleet's gossipsub at debug and the clients' at error).
        if let Some(filter) = std::env::var_os("WAKUFLEET_WORKER_LOG") {
            command.env("WAKUFLEET_LOG", filter);
        }
        let mut child = command
            .arg("sim-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting worker {number}"))?;
        let pid = child.id().context("the worker has no pid")?;
        let mut stdin = child.stdin.take().context("the worker's stdin")?;
        let stdout = child.stdout.take().context("the worker's stdout")?;
        let hello = serde_json::to_string(&Hello { setup: setup.clone(), nodes })?;
        stdin.write_all(format!("{hello}\n").as_bytes()).await?;
        let (requests, mut to_send) = mpsc::channel::<String>(QUEUE);
        tokio::spawn(async move {
            while let Some(mut line) = to_send.recv().await {
                line.push('\n');
                if stdin.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let waiting = pending.clone();
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let living = alive.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                match read_line(&mut reader, &mut line, MAX_LINE).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => {
                        eprintln!("sim: worker {number}: {error:#}");
                        break;
                    }
                }
                let Ok(reply) = serde_json::from_str::<Envelope<Result<Reply, String>>>(&line)
                else {
                    eprintln!("sim: worker {number} sent a line that is no reply: {line:.200}");
                    continue;
                };
                if let Some(caller) = waiting.lock().ok().and_then(|mut p| p.remove(&reply.id)) {
                    let _ = caller.send(reply.body);
                }
            }
            // Gone: every caller still waiting hears so.
            living.store(false, Ordering::SeqCst);
            if let Ok(mut pending) = waiting.lock() {
                pending.clear();
            }
        });
        Ok(Self {
            number,
            pid,
            requests,
            pending,
            alive,
            next_id: AtomicU64::new(0),
            _child: child,
        })
    }

    async fn call(&self, request: Request) -> anyhow::Result<Reply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let gone = || anyhow!("worker {} (pid {}) exited", self.number, self.pid);
        self.pending.lock().map_err(|_| anyhow!("poisoned"))?.insert(id, reply);
        // Checked after the insertion: a worker that died before it was cleared the table.
        if !self.alive.load(Ordering::SeqCst) {
            return Err(gone());
        }
        let line = serde_json::to_string(&Envelope { id, body: request })?;
        self.requests.send(line).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?.map_err(|e| anyhow!(e))
    }
}

#[derive(Clone)]
enum Place {
    Here(Arc<Host>),
    Worker(Arc<Worker>),
}

impl Place {
    async fn call(&self, request: Request) -> anyhow::Result<Reply> {
        match self {
            Self::Here(host) => host.handle(request).await.map_err(|e| anyhow!(e)),
            Self::Worker(worker) => worker.call(request).await,
        }
    }
}

/// One simulated node, wherever it runs.
#[derive(Clone)]
pub(crate) struct SimNode {
    index: usize,
    peer_id: PeerId,
    place: Place,
}

fn unexpected(reply: Reply) -> anyhow::Error {
    anyhow!("unexpected reply {reply:?}")
}

impl SimNode {
    async fn call(&self, request: Request) -> anyhow::Result<Reply> {
        self.place.call(request).await
    }

    pub(crate) fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Its number in the whole network (the results' node numbers).
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) async fn stats(&self) -> anyhow::Result<SimStats> {
        match self.call(Request::Stats { index: self.index }).await? {
            Reply::Stats(stats) => Ok(stats),
            other => Err(unexpected(other)),
        }
    }

    /// A line on the node's connections, for nodes short of their target.
    pub(crate) async fn describe(&self) -> anyhow::Result<String> {
        match self.call(Request::Describe { index: self.index }).await? {
            Reply::Text(text) => Ok(text),
            other => Err(unexpected(other)),
        }
    }

    /// Connected peers: whether each relays on one of the node's topics, is in its mesh, …
    pub(crate) async fn peers(&self) -> anyhow::Result<Vec<(PeerId, SimPeer)>> {
        match self.call(Request::Peers { index: self.index }).await? {
            Reply::Peers(peers) => peers
                .into_iter()
                .map(|peer| Ok((peer.id.parse().context("a peer id")?, peer)))
                .collect(),
            other => Err(unexpected(other)),
        }
    }

    /// Publishes `message` on `topic`: its hash, and when the node was handed it.
    pub(crate) async fn publish(
        &self,
        topic: &str,
        message: WakuMessage,
    ) -> anyhow::Result<(MessageHash, SystemTime)> {
        let request = Request::Publish {
            index: self.index,
            topic: topic.to_owned(),
            content_topic: message.content_topic,
            payload: message.payload,
            timestamp: message.timestamp.unwrap_or_default(),
        };
        match self.call(request).await? {
            Reply::Published { hash, at } => Ok((
                hash.parse().map_err(|e| anyhow!("a message hash: {e}"))?,
                UNIX_EPOCH + Duration::from_nanos(at),
            )),
            other => Err(unexpected(other)),
        }
    }

    /// Starts recording the messages that arrive.
    pub(crate) async fn record(&self) -> anyhow::Result<()> {
        self.call(Request::Record { index: self.index }).await.map(drop)
    }

    /// What arrived when so far, and how many events were missed.
    pub(crate) async fn arrivals(&self) -> anyhow::Result<(Vec<(MessageHash, SystemTime)>, u64)> {
        match self.call(Request::Arrivals { index: self.index }).await? {
            Reply::Arrivals { arrivals, lagged } => {
                let arrivals = arrivals
                    .into_iter()
                    .map(|(hash, at)| {
                        let hash = hash.parse().map_err(|e| anyhow!("a message hash: {e}"))?;
                        Ok((hash, UNIX_EPOCH + Duration::from_nanos(at)))
                    })
                    .collect::<anyhow::Result<_>>()?;
                Ok((arrivals, lagged))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Ends the recording started by [`SimNode::record`].
    pub(crate) async fn stop_recording(&self) -> anyhow::Result<()> {
        self.call(Request::StopRecording { index: self.index }).await.map(drop)
    }

    pub(crate) async fn shutdown(&self) {
        let _ = self.call(Request::Shutdown { index: self.index }).await;
    }
}

/// This process's host and the workers: where each client starts, and the link flags every
/// process must share.
pub(crate) struct Hosts {
    here: Arc<Host>,
    workers: Vec<Arc<Worker>>,
    fleet: usize,
}

impl Hosts {
    /// This process's host over `links` (the model the fleet's nodes use) and `workers`
    /// processes sharing `clients` clients.
    pub(crate) async fn new(
        setup: Setup,
        links: SimLinks,
        workers: usize,
        clients: usize,
    ) -> anyhow::Result<Self> {
        let mut started = Vec::with_capacity(workers);
        let share = clients.div_ceil(workers.max(1));
        for number in 0..workers {
            started.push(Arc::new(Worker::spawn(number, &setup, share).await?));
        }
        Ok(Self {
            here: Host::new(setup.clone(), links),
            workers: started,
            fleet: setup.plan.fleet,
        })
    }

    /// A node started elsewhere in this process (the fleet's, by their agents).
    pub(crate) fn adopt(&self, index: usize, handle: NodeHandle) -> SimNode {
        let peer_id = handle.peer_id();
        self.here.keep(index, handle);
        SimNode { index, peer_id, place: Place::Here(self.here.clone()) }
    }

    /// Starts the client on host `index`: in worker `index` modulo the workers, or here.
    pub(crate) async fn start(&self, index: usize, role: Role) -> anyhow::Result<SimNode> {
        let place = match self.workers.len() {
            0 => Place::Here(self.here.clone()),
            n => Place::Worker(self.workers[index.saturating_sub(self.fleet) % n].clone()),
        };
        match place.call(Request::Start { index, role }).await? {
            Reply::Started { peer_id } => {
                Ok(SimNode { index, peer_id: peer_id.parse().context("a peer id")?, place })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Every process's copy of the links, for a crash or a refusal.
    async fn everywhere(&self, request: impl Fn() -> Request) -> anyhow::Result<()> {
        self.here.handle(request()).await.map_err(|e| anyhow!(e))?;
        for worker in &self.workers {
            worker.call(request()).await?;
        }
        Ok(())
    }

    /// Host `host` crashes, as every process sees it.
    pub(crate) async fn crash(&self, host: usize) -> anyhow::Result<()> {
        self.everywhere(|| Request::Crash { host }).await
    }

    /// Host `host` refuses every connection from now on, in every process.
    pub(crate) async fn refuse_connections(&self, host: usize) -> anyhow::Result<()> {
        self.everywhere(|| Request::Refuse { host }).await
    }

    /// Every link, in every process, runs `--slowdown` times slower from now on.
    pub(crate) async fn stretch_links(&self) -> anyhow::Result<()> {
        self.everywhere(|| Request::Stretch).await
    }

    /// This process and the workers: where the sim's CPU time and memory are.
    pub(crate) fn pids(&self) -> Vec<u32> {
        std::iter::once(std::process::id()).chain(self.workers.iter().map(|w| w.pid)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_read_one_at_a_time_and_a_long_one_is_refused() {
        let mut input: &[u8] = b"{\"id\":1}\nsecond\n";
        let mut line = String::new();
        assert!(read_line(&mut input, &mut line, 16).await.unwrap());
        assert_eq!(line, "{\"id\":1}\n");
        assert!(read_line(&mut input, &mut line, 16).await.unwrap());
        assert_eq!(line, "second\n");
        assert!(!read_line(&mut input, &mut line, 16).await.unwrap(), "the end");
        let mut long: &[u8] = b"0123456789abcdefXYZ\n";
        let error = read_line(&mut long, &mut line, 16).await.unwrap_err();
        assert!(error.to_string().contains("longer than 16"), "{error}");
    }

    /// What crosses a worker's pipes reads back as it was sent: requests by their `op`,
    /// replies with their errors.
    #[test]
    fn requests_and_replies_cross_the_pipe_as_json_lines() {
        let request =
            Envelope { id: 7, body: Request::Start { index: 51, role: Role::Unreachable } };
        let line = serde_json::to_string(&request).unwrap();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("\"op\":\"start\""), "{line}");
        let back: Envelope<Request> = serde_json::from_str(&line).unwrap();
        assert_eq!(back.id, 7);
        assert!(matches!(back.body, Request::Start { index: 51, role: Role::Unreachable }));
        let failed: Envelope<Result<Reply, String>> =
            Envelope { id: 8, body: Err("no node 3 here".to_owned()) };
        let back: Envelope<Result<Reply, String>> =
            serde_json::from_str(&serde_json::to_string(&failed).unwrap()).unwrap();
        assert_eq!(back.body.unwrap_err(), "no node 3 here");
        assert!(
            serde_json::from_str::<Envelope<Request>>(r#"{"id":1,"body":{"op":"explode"}}"#)
                .is_err()
        );
    }

    /// A request for a node the host does not run is answered with an error, not a panic;
    /// crashes and refusals change the host's links.
    #[tokio::test]
    async fn a_host_answers_for_its_nodes_and_its_links() {
        let setup = Setup {
            rtt: "none".to_owned(),
            bytes_per_sec: None,
            slowdown: 1,
            seed: 1,
            hosts: 4,
            plan: ShardPlan { fleet: 1, shards: 1 },
            url: "enrtree://x@example.org".to_owned(),
            dns: "127.0.0.1:53".parse().unwrap(),
            max_connections: 150,
        };
        let links = setup.links().unwrap();
        let host = Host::new(setup, links.clone());
        let error = host.handle(Request::Stats { index: 3 }).await.unwrap_err();
        assert_eq!(error, "no node 3 here");
        let error = host.handle(Request::Arrivals { index: 3 }).await.unwrap_err();
        assert!(error.contains("no node 3") || error.contains("not recording"), "{error}");
        let error = host.handle(Request::StopRecording { index: 3 }).await.unwrap_err();
        assert!(error.contains("not recording"), "{error}");
        let ip = |i| IpAddr::V4(address(i).unwrap());
        assert!(!links.severed(ip(1), ip(2)) && !links.refuses(ip(2)));
        assert!(matches!(host.handle(Request::Crash { host: 1 }).await, Ok(Reply::Done)));
        assert!(matches!(host.handle(Request::Refuse { host: 2 }).await, Ok(Reply::Done)));
        assert!(links.severed(ip(1), ip(2)) && links.refuses(ip(2)));
    }
}
