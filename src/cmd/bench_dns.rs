//! `wakufleet bench dns`: the built-in authoritative DNS server against Knot and NSD, under
//! `dnsperf`.
//!
//! A signed tree of N generated records is served as one zone by the controller's built-in
//! server ([`DnsServer`]), by a `knotd` and by an `nsd` of our own (each in a temporary
//! directory on a loopback port, the same zone as a zone file). All three are checked to
//! answer the same records first; then `dnsperf` sends TXT queries for every name of the tree
//! (the root and every entry) to each, over UDP, one run each. Prints queries/s and lost
//! queries per server, and last the built-in server's ratio to the faster of Knot and NSD;
//! asserts no time. With `--any-address` every server listens on `0.0.0.0`, as a default
//! configuration does (the built-in server then reads each query's destination address to
//! answer from it), and is asked at 127.0.0.1.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use controller::publish::{dns_server::DnsServer, zone::TxtZone};
use node::{
    crypto::generate_key,
    dnsdisc::{ClientConfig, HickoryTxtResolver, TreeClient, TxtResolver},
    enrtree::{
        NodeRecord, Tree,
        zone::{ZoneOptions, zone_file},
    },
};

/// The zone both servers serve.
const DOMAIN: &str = "nodes.bench.test";
const ROOT_TTL: u32 = 60;
const TTL: u32 = 86_400;
/// Names besides the root whose answers are compared one by one before the runs.
const SAMPLES: usize = 8;

/// A program on PATH or in the sbin directories (knotd lives in /usr/sbin).
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn required(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    program(name).with_context(|| {
        format!(
            "`{name}` not found: install the Debian package `{package}` (apt-get install {package})"
        )
    })
}

pub(crate) async fn dns(
    records: usize,
    seconds: u64,
    check_only: bool,
    any_address: bool,
) -> anyhow::Result<()> {
    let listen = if any_address { Ipv4Addr::UNSPECIFIED } else { Ipv4Addr::LOCALHOST };
    let knotd = required("knotd", "knot")?;
    let nsd = required("nsd", "nsd")?;
    let dnsperf = if check_only { None } else { Some(required("dnsperf", "dnsperf")?) };

    let started = Instant::now();
    let nodes = (0..records)
        .map(|i| {
            let ip = Ipv4Addr::from(0x0a00_0000_u32.wrapping_add(u32::try_from(i).unwrap_or(0)));
            NodeRecord::sign(&generate_key(), 1, ip, 60_000, 9_000)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut tree = Tree::build(1, nodes, vec![])?;
    let url = tree.sign(&generate_key(), DOMAIN);
    let txt = tree.to_txt(DOMAIN);
    println!(
        "dns: tree of {records} records at {DOMAIN}: {} TXT names, built and signed in {:.2?}",
        txt.len(),
        started.elapsed()
    );

    let builtin = DnsServer::start(
        (listen, 0).into(),
        vec![TxtZone::from_tree(&tree, DOMAIN, ROOT_TTL, TTL)],
    )
    .await
    .context("starting the built-in DNS server")?;
    let dir = tempfile::tempdir()?;
    let options =
        ZoneOptions { root_ttl: ROOT_TTL, ttl: TTL, name_server: Some(format!("ns1.{DOMAIN}")) };
    let zone = zone_file(&tree, DOMAIN, &options);
    let mut references = Vec::new();
    let result = async {
        references.push(Reference::knot(&knotd, &dir.path().join("knot"), &zone, listen)?);
        references.push(Reference::nsd(&nsd, &dir.path().join("nsd"), &zone, listen)?);
        for reference in &mut references {
            reference.wait_ready(&txt).await?;
        }
        let builtin_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, builtin.local_addr().port()));
        let mut servers = vec![("built-in", builtin_addr)];
        servers.extend(references.iter().map(|r| (r.name, r.addr)));
        check(&txt, &url, records, &servers).await?;
        let Some(dnsperf) = dnsperf else { return Ok(()) };
        let queries = dir.path().join("queries.txt");
        let lines: String = txt.keys().map(|name| format!("{name}. TXT\n")).collect();
        std::fs::write(&queries, lines)?;
        println!(
            "dnsperf: {} TXT queries (root + every entry), UDP, {seconds} s per server, loopback",
            txt.len()
        );
        let ours = perf(&dnsperf, &queries, builtin_addr, seconds).await?;
        ours.print("built-in");
        let mut fastest: Option<(&str, Perf)> = None;
        for reference in &references {
            let theirs = perf(&dnsperf, &queries, reference.addr, seconds).await?;
            theirs.print(reference.name);
            if fastest.as_ref().is_none_or(|(_, best)| theirs.qps > best.qps) {
                fastest = Some((reference.name, theirs));
            }
        }
        if let Some((name, best)) = fastest {
            println!(
                "built-in / faster of Knot and NSD ({name}): {:.2}",
                ours.qps / best.qps.max(f64::MIN_POSITIVE)
            );
        }
        Ok(())
    }
    .await;
    for reference in &mut references {
        reference.stop();
    }
    builtin.shutdown().await;
    result
}

/// Every server answers the root and sampled names with the tree's own text, and the tree
/// client resolves every record from each.
async fn check(
    txt: &BTreeMap<String, String>,
    url: &node::enrtree::LinkEntry,
    records: usize,
    servers: &[(&str, SocketAddr)],
) -> anyhow::Result<()> {
    let step = (txt.len() / SAMPLES).max(1);
    let mut names: Vec<&String> = txt.keys().step_by(step).take(SAMPLES).collect();
    if !names.contains(&&DOMAIN.to_owned()) {
        names.push(txt.keys().find(|name| *name == DOMAIN).context("the tree has no root")?);
    }
    let mut resolved = Vec::new();
    for &(server, addr) in servers {
        let resolver = HickoryTxtResolver::with_server(addr)?;
        for name in &names {
            let answer =
                resolver.lookup_txt(name).await.with_context(|| format!("{server}: {name}"))?;
            if answer != [txt[*name].clone()] {
                bail!("{server} answers {name} with {answer:?}, not the tree's record");
            }
        }
        let config = ClientConfig { follow_links: false, ..ClientConfig::default() };
        let resolution = TreeClient::new(resolver, config).resolve(url).await;
        let errors = resolution.errors().count();
        let mut enrs: Vec<String> = resolution.records().iter().map(ToString::to_string).collect();
        enrs.sort();
        if errors != 0 || enrs.len() != records {
            bail!(
                "{server}: the tree client resolved {} of {records} records, {errors} errors",
                enrs.len()
            );
        }
        resolved.push(enrs);
    }
    if resolved.windows(2).any(|pair| pair[0] != pair[1]) {
        bail!("the servers serve different records");
    }
    println!(
        "check: root + {} sampled names answer identically on all {} servers; the tree client resolved {records}/{records} records from each, 0 errors",
        names.len() - 1,
        servers.len()
    );
    Ok(())
}

/// A reference server of our own (knotd or nsd) in a temporary directory, serving one zone
/// file on a loopback port.
struct Reference {
    name: &'static str,
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl Reference {
    /// Knot with its defaults (worker threads: one per core). No `server.user`: knotd keeps
    /// the invoking user and needs no privileges for a high port.
    fn knot(knotd: &Path, dir: &Path, zone: &str, listen: Ipv4Addr) -> anyhow::Result<Self> {
        for sub in ["", "run", "db"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(dir.join("bench.zone"), zone)?;
        let port = node::free_port::free_port();
        let conf = format!(
            "server:\n    rundir: \"{root}/run\"\n    listen: {listen}@{port}\n\
             log:\n  - target: stderr\n    any: warning\n\
             database:\n    storage: \"{root}/db\"\n\
             zone:\n  - domain: {DOMAIN}\n    storage: \"{root}\"\n    file: bench.zone\n",
            root = dir.display()
        );
        std::fs::write(dir.join("knot.conf"), conf)?;
        Self::spawn("Knot", Command::new(knotd).arg("-c").arg(dir.join("knot.conf")), dir, port)
    }

    /// NSD with its defaults (one server process per core), in the foreground (`-d`), keeping
    /// the invoking user, every file in `dir`, no control socket.
    fn nsd(nsd: &Path, dir: &Path, zone: &str, listen: Ipv4Addr) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("bench.zone"), zone)?;
        let port = node::free_port::free_port();
        let conf = format!(
            "server:\n    ip-address: {listen}@{port}\n    username: \"\"\n    chroot: \"\"\n\
             \x20   zonesdir: \"{root}\"\n    pidfile: \"{root}/nsd.pid\"\n    database: \"\"\n\
             \x20   zonelistfile: \"{root}/zone.list\"\n    xfrdfile: \"{root}/xfrd.state\"\n\
             \x20   xfrdir: \"{root}\"\n    verbosity: 0\n\
             remote-control:\n    control-enable: no\n\
             zone:\n    name: {DOMAIN}\n    zonefile: bench.zone\n",
            root = dir.display()
        );
        std::fs::write(dir.join("nsd.conf"), conf)?;
        Self::spawn(
            "NSD",
            Command::new(nsd).arg("-d").arg("-c").arg(dir.join("nsd.conf")),
            dir,
            port,
        )
    }

    fn spawn(
        name: &'static str,
        command: &mut Command,
        dir: &Path,
        port: u16,
    ) -> anyhow::Result<Self> {
        let log = dir.join("server.log");
        let out = std::fs::File::create(&log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self { name, child: Some(child), addr: (Ipv4Addr::LOCALHOST, port).into(), log })
    }

    /// Until the server answers the root.
    async fn wait_ready(&mut self, txt: &BTreeMap<String, String>) -> anyhow::Result<()> {
        let resolver = HickoryTxtResolver::with_server(self.addr)?;
        let root = txt.get(DOMAIN).context("the tree has no root")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("{} exited ({status}): {}", self.name, self.log_text());
            }
            if resolver.lookup_txt(DOMAIN).await.is_ok_and(|answer| answer.contains(root)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not serve {DOMAIN} within 20 s: {}", self.name, self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What one dnsperf run printed.
struct Perf {
    qps: f64,
    completed: String,
    lost: String,
    latency: String,
    rcodes: String,
}

impl Perf {
    fn print(&self, server: &str) {
        println!(
            "{server}: {:.0} queries/s; completed {}; lost {}; rcodes {}; average latency {}",
            self.qps, self.completed, self.lost, self.rcodes, self.latency
        );
    }
}

async fn perf(
    dnsperf: &Path,
    queries: &Path,
    server: SocketAddr,
    seconds: u64,
) -> anyhow::Result<Perf> {
    let output = tokio::process::Command::new(dnsperf)
        .arg("-s")
        .arg(server.ip().to_string())
        .arg("-p")
        .arg(server.port().to_string())
        .arg("-d")
        .arg(queries)
        .args(["-m", "udp", "-c", "1", "-T", "1", "-q", "100", "-l"])
        .arg(seconds.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .context("running dnsperf")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "dnsperf failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // "  Queries per second:   12345.678901" and the like.
    let field = |label: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .map(|rest| rest.trim().to_owned())
    };
    let qps = field("Queries per second:")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no queries/s in dnsperf's output: {text}"))?;
    Ok(Perf {
        qps,
        completed: field("Queries completed:").unwrap_or_default(),
        lost: field("Queries lost:").unwrap_or_default(),
        latency: field("Average Latency (s):").map(|v| format!("{v} s")).unwrap_or_default(),
        rcodes: field("Response codes:").unwrap_or_default(),
    })
}
