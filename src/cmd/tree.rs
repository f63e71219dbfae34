//! `wakufleet tree …`: EIP-1459 trees kept in go-ethereum's directory format.
//!
//! A directory holds `enrtree-info.json` and `nodes.json` exactly as `devp2p dns` reads and
//! writes them, plus `enrtree-signed.json`, our record of the last signed node set (geth ignores
//! it), which lets a signing request show the key holder what changed.

use std::{
    io::{IsTerminal, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};
use clap::Subcommand;
use controller::publish::{
    dns_server::DnsServer,
    zone::{DEFAULT_ROOT_TTL, DEFAULT_TTL, TxtZone},
};
use node::{
    dnsdisc::{ClientConfig, HickoryTxtResolver, Resolution, TreeClient},
    enrtree::{
        LinkEntry, NodeRecord, Tree,
        definition::{INFO_FILE, NODES_FILE, TreeDefinition, now_rfc3339, to_json_indent4},
        request::{DetachedSignature, PreviousTree, SignRequest},
        signature::encode_public_key,
        wire::udp_answer_size,
        zone::{ZoneOptions, zone_file},
    },
};

use super::key::unlock;
use crate::{files, password::PasswordArgs};

/// Our record of the last signed node set, beside geth's two files.
pub(crate) const SIGNED_FILE: &str = "enrtree-signed.json";

#[derive(Debug, Subcommand)]
pub(crate) enum TreeCommand {
    /// Create or update a tree directory from a list of ENRs, and show the tree it gives.
    Build {
        /// The tree directory (created if missing).
        dir: PathBuf,
        /// A file of ENRs, one per line (blank lines and # comments ignored); replaces nodes.json.
        #[arg(long, value_name = "FILE")]
        enrs: Option<PathBuf>,
        /// Links to other trees (`enrtree://…`); replaces the links of enrtree-info.json.
        #[arg(long = "link", value_name = "URL")]
        links: Vec<String>,
        /// The domain the tree is published at (default: from the url, else the directory name).
        #[arg(long)]
        domain: Option<String>,
    },
    /// Build the tree and sign it with a keystore; bumps seq like `devp2p dns sign`.
    Sign {
        /// The tree directory.
        dir: PathBuf,
        /// The keystore holding the signing key.
        keyfile: PathBuf,
        /// The domain the tree is published at.
        #[arg(long)]
        domain: Option<String>,
        /// The sequence number (default: the last one plus one).
        #[arg(long)]
        seq: Option<u64>,
        /// Allow signing a tree that was signed with another key (a key rotation).
        #[arg(long)]
        rotate_key: bool,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Check a tree directory: records, signature, and record sizes.
    Verify {
        /// The tree directory.
        dir: PathBuf,
        /// The domain the tree is published at.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Print the signed tree's TXT records as JSON (go-ethereum's `to-txt` format).
    ToTxt {
        /// The tree directory.
        dir: PathBuf,
        /// Output file (default: standard output).
        output: Option<PathBuf>,
        /// The domain the tree is published at.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Print the signed tree as a zone file, long records as quoted multi-string TXT.
    ToZone {
        /// The tree directory.
        dir: PathBuf,
        /// Output file (default: standard output).
        output: Option<PathBuf>,
        /// The domain the tree is published at.
        #[arg(long)]
        domain: Option<String>,
        /// TTL of the root record.
        #[arg(long, default_value_t = DEFAULT_ROOT_TTL)]
        root_ttl: u32,
        /// TTL of the other records.
        #[arg(long, default_value_t = DEFAULT_TTL)]
        ttl: u32,
        /// Write a whole zone (SOA and NS) with this name server.
        #[arg(long, value_name = "NAME")]
        name_server: Option<String>,
    },
    /// Write what a key holder must sign: domain, seq, root, its hash and every record.
    SignRequest {
        /// The tree directory.
        dir: PathBuf,
        /// Where to write the request (default: <dir>/enrtree-sign-request.json).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// The domain the tree is published at.
        #[arg(long)]
        domain: Option<String>,
        /// The sequence number (default: the last one plus one).
        #[arg(long)]
        seq: Option<u64>,
    },
    /// For key holders: check a signing request, show what changes, and sign it.
    SignOffline {
        /// The signing request file.
        request: PathBuf,
        /// The keystore holding the signing key.
        keyfile: PathBuf,
        /// Where to write the signature (default: the request's name with .sig.json).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Sign without asking for confirmation.
        #[arg(long)]
        yes: bool,
        /// Allow signing with a key other than the one the tree was signed with before.
        #[arg(long)]
        rotate_key: bool,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Verify a key holder's detached signature and store it in the tree directory.
    Attach {
        /// The tree directory.
        dir: PathBuf,
        /// The signature file from `sign-offline`.
        signature: PathBuf,
        /// Allow a signature by a key other than the tree's current one (a key rotation).
        #[arg(long)]
        rotate_key: bool,
    },
    /// Resolve a tree over DNS: follow links, check every hash, report bad entries.
    ///
    /// Records go to standard output, one per line; the summary and bad entries to standard
    /// error. Exit status: 0 all good, 2 some entries bad, 1 nothing could be resolved.
    Resolve {
        /// The tree URL, `enrtree://<key>@<domain>`.
        url: String,
        /// Ask this DNS server (ip:port) instead of the system resolver.
        #[arg(long, value_name = "IP:PORT")]
        server: Option<SocketAddr>,
        /// Do not follow links to other trees.
        #[arg(long)]
        no_links: bool,
        /// Print a JSON report instead.
        #[arg(long)]
        json: bool,
    },
    /// Serve signed tree directories from the built-in authoritative DNS server.
    Serve {
        /// Tree directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Address for UDP and TCP.
        #[arg(long, default_value = "127.0.0.1:8053")]
        listen: SocketAddr,
    },
}

pub(crate) async fn run(command: TreeCommand) -> anyhow::Result<ExitCode> {
    match command {
        TreeCommand::Build { dir, enrs, links, domain } => build(&dir, enrs, links, domain)?,
        TreeCommand::Sign { dir, keyfile, domain, seq, rotate_key, password } => {
            let tree_dir = TreeDir::load(&dir)?;
            let domain = tree_dir.domain(domain.as_deref())?;
            let tree = tree_dir.next_tree(seq, &domain)?;
            let key = unlock(&keyfile, &password)?;
            tree_dir.check_key(key.verifying_key(), rotate_key)?;
            let mut tree = tree;
            let url = tree.sign(&key, &domain);
            tree_dir.save_signed(&tree, &url)?;
            println!("signed {url} seq {} ({} nodes)", tree.seq(), tree.records().len());
        }
        TreeCommand::Verify { dir, domain } => {
            let tree_dir = TreeDir::load(&dir)?;
            let (tree, url) = tree_dir.signed_tree(domain.as_deref())?;
            tree.check_sizes(&url.domain)?;
            println!(
                "ok: {url} seq {} signed, {} nodes, {} links, largest answer {} bytes",
                tree.seq(),
                tree.records().len(),
                tree.links().len(),
                largest_answer(&tree, &url.domain)
            );
        }
        TreeCommand::ToTxt { dir, output, domain } => {
            let (tree, url) = TreeDir::load(&dir)?.signed_tree(domain.as_deref())?;
            emit(output.as_deref(), &to_json_indent4(&tree.to_txt(&url.domain)))?;
        }
        TreeCommand::ToZone { dir, output, domain, root_ttl, ttl, name_server } => {
            let (tree, url) = TreeDir::load(&dir)?.signed_tree(domain.as_deref())?;
            let options = ZoneOptions { root_ttl, ttl, name_server };
            emit(output.as_deref(), &zone_file(&tree, &url.domain, &options))?;
        }
        TreeCommand::SignRequest { dir, out, domain, seq } => {
            let tree_dir = TreeDir::load(&dir)?;
            let domain = tree_dir.domain(domain.as_deref())?;
            let tree = tree_dir.next_tree(seq, &domain)?;
            let key = tree_dir.def.url()?.map(|url| url.public_key);
            let request = SignRequest::new(&tree, &domain, key.as_ref(), tree_dir.previous()?);
            let out = out.unwrap_or_else(|| dir.join("enrtree-sign-request.json"));
            files::write_atomic(&out, &request.to_json())?;
            println!("wrote signing request for {domain} seq {} to {}", tree.seq(), out.display());
        }
        TreeCommand::SignOffline { request, keyfile, out, yes, rotate_key, password } => {
            sign_offline(&request, &keyfile, out, yes, rotate_key, &password)?;
        }
        TreeCommand::Attach { dir, signature, rotate_key } => attach(&dir, &signature, rotate_key)?,
        TreeCommand::Resolve { url, server, no_links, json } => {
            return resolve(&url, server, no_links, json).await;
        }
        TreeCommand::Serve { dirs, listen } => serve(&dirs, listen).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A tree directory, loaded.
pub(crate) struct TreeDir {
    path: PathBuf,
    pub(crate) def: TreeDefinition,
}

impl TreeDir {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        if !path.is_dir() {
            bail!("{}: not a tree directory", path.display());
        }
        let info = files::read_optional(&path.join(INFO_FILE))?;
        let nodes = files::read(&path.join(NODES_FILE))?;
        let def = TreeDefinition::from_json(info.as_deref(), &nodes)
            .with_context(|| format!("{}", path.display()))?;
        Ok(Self { path: path.to_owned(), def })
    }

    pub(crate) fn domain(&self, explicit: Option<&str>) -> anyhow::Result<String> {
        let dir_name = self
            .path
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let domain = self.def.domain(explicit, &dir_name)?;
        if domain.is_empty() {
            bail!("no domain: pass --domain");
        }
        Ok(domain)
    }

    /// The tree the next signature will cover, checked against the UDP size limit.
    pub(crate) fn next_tree(&self, seq: Option<u64>, domain: &str) -> anyhow::Result<Tree> {
        let seq = seq.unwrap_or(self.def.info.seq.saturating_add(1));
        let tree = self.def.build(seq).with_context(|| format!("{}", self.path.display()))?;
        tree.check_sizes(domain)?;
        Ok(tree)
    }

    /// Refuses to replace the tree's key unless asked: the key is in every client's URL.
    pub(crate) fn check_key(
        &self,
        key: &k256::ecdsa::VerifyingKey,
        rotate: bool,
    ) -> anyhow::Result<()> {
        if let Some(url) = self.def.url()?
            && url.public_key != *key
            && !rotate
        {
            bail!(
                "{} is signed by {}, not by {}: clients configured with the old URL would reject it (pass --rotate-key to change keys)",
                self.path.display(),
                encode_public_key(&url.public_key),
                encode_public_key(key)
            );
        }
        Ok(())
    }

    pub(crate) fn signed_tree(&self, domain: Option<&str>) -> anyhow::Result<(Tree, LinkEntry)> {
        let (tree, mut url) =
            self.def.signed_tree().with_context(|| format!("{}", self.path.display()))?;
        if let Some(domain) = domain {
            url.domain = domain.to_owned();
        }
        Ok((tree, url))
    }

    pub(crate) fn previous(&self) -> anyhow::Result<Option<PreviousTree>> {
        let path = self.path.join(SIGNED_FILE);
        files::read_optional(&path)?
            .map(|text| serde_json::from_str(&text).with_context(|| format!("{}", path.display())))
            .transpose()
    }

    /// Stores a signed tree: enrtree-info.json (as geth writes it) and our snapshot.
    pub(crate) fn save_signed(&self, tree: &Tree, url: &LinkEntry) -> anyhow::Result<()> {
        let mut def = self.def.clone();
        def.set_signed(tree, url, now_rfc3339());
        let snapshot = PreviousTree {
            seq: tree.seq(),
            enrs: tree.records().iter().map(ToString::to_string).collect(),
            links: tree.links().iter().map(ToString::to_string).collect(),
        };
        files::write_atomic(&self.path.join(SIGNED_FILE), &to_json_indent4(&snapshot))?;
        files::write_atomic(&self.path.join(INFO_FILE), &def.info_json())
    }
}

fn build(
    dir: &Path,
    enrs: Option<PathBuf>,
    links: Vec<String>,
    domain: Option<String>,
) -> anyhow::Result<()> {
    let mut def = if dir.join(NODES_FILE).exists() {
        TreeDir::load(dir)?.def
    } else {
        TreeDefinition::default()
    };
    let changed = enrs.is_some() || !links.is_empty();
    if let Some(path) = &enrs {
        let records = read_enr_list(path)?;
        let mut fresh = TreeDefinition::from_records(&records, &[]);
        // Keep what a crawler stored about nodes that stay.
        for (id, node) in &mut fresh.nodes {
            if let Some(old) = def.nodes.get(id) {
                node.extra = old.extra.clone();
            }
        }
        def.nodes = fresh.nodes;
    }
    if !links.is_empty() {
        for link in &links {
            link.parse::<LinkEntry>().with_context(|| format!("--link {link}"))?;
        }
        def.info.links = links;
    }
    let mut tree_dir = TreeDir { path: dir.to_owned(), def };
    let domain = if dir.exists() {
        tree_dir.domain(domain.as_deref())?
    } else {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        tree_dir.def.domain(domain.as_deref(), &name)?
    };
    // Validate everything before writing anything.
    let tree = tree_dir.next_tree(None, &domain)?;
    if changed {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        tree_dir.def.info.last_modified.clone_from(&now_rfc3339());
        files::write_atomic(&dir.join(NODES_FILE), &tree_dir.def.nodes_json())?;
        files::write_atomic(&dir.join(INFO_FILE), &tree_dir.def.info_json())?;
    }
    println!("domain:  {domain}");
    println!("nodes:   {}", tree.records().len());
    println!("links:   {}", tree.links().len());
    println!("root:    {} (unsigned; next seq)", tree.root().content());
    println!(
        "records: {} TXT, largest DNS answer {} of 512 bytes",
        tree.entries().len() + 1,
        largest_answer(&tree, &domain)
    );
    Ok(())
}

/// Reads a list of ENRs. A node listed twice keeps its highest-seq record.
fn read_enr_list(path: &Path) -> anyhow::Result<Vec<NodeRecord>> {
    let text = files::read(path)?;
    let mut by_id: std::collections::BTreeMap<[u8; 32], NodeRecord> = Default::default();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let record: NodeRecord =
            line.parse().with_context(|| format!("{} line {}", path.display(), number + 1))?;
        if let Some(old) = by_id.get(&record.node_id()) {
            eprintln!(
                "warning: {} line {}: node {} listed twice, keeping seq {}",
                path.display(),
                number + 1,
                record.node_id_hex(),
                old.seq().max(record.seq())
            );
            if old.seq() >= record.seq() {
                continue;
            }
        }
        by_id.insert(record.node_id(), record);
    }
    Ok(by_id.into_values().collect())
}

fn largest_answer(tree: &Tree, domain: &str) -> usize {
    let mut largest = 0;
    for (name, text) in tree.to_txt(domain) {
        largest = largest.max(udp_answer_size(&name, &text));
    }
    // An unsigned root is printed without its 87-character signature.
    if tree.root().signature.is_none() {
        let root = format!("{} sig={}", tree.root().content(), "A".repeat(87));
        largest = largest.max(udp_answer_size(domain, &root));
    }
    largest
}

fn emit(output: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => files::write_atomic(path, text),
        None => {
            std::io::stdout().write_all(text.as_bytes()).context("standard output")?;
            Ok(())
        }
    }
}

fn sign_offline(
    request_path: &Path,
    keyfile: &Path,
    out: Option<PathBuf>,
    yes: bool,
    rotate_key: bool,
    password: &PasswordArgs,
) -> anyhow::Result<()> {
    let request = SignRequest::from_json(&files::read(request_path)?)
        .with_context(|| format!("{}", request_path.display()))?;
    let tree = request.verify().with_context(|| format!("{}", request_path.display()))?;
    let changes = request.changes();

    println!("Signing request {}", request_path.display());
    println!("  domain:    {}", request.domain);
    match &request.previous {
        Some(previous) => println!("  seq:       {} (previous {})", request.seq, previous.seq),
        None => println!("  seq:       {} (no previous tree known)", request.seq),
    }
    println!("  nodes:     {}", tree.records().len());
    println!("  links:     {}", tree.links().len());
    println!("  root:      {}", request.root_content);
    println!("  root hash: {}", request.root_hash);
    if request.previous.is_some() {
        println!("  added nodes: {}", changes.added_enrs.len());
        for enr in &changes.added_enrs {
            println!("    + {}", describe_record(enr));
        }
        println!("  removed nodes: {}", changes.removed_enrs.len());
        for enr in &changes.removed_enrs {
            println!("    - {}", describe_record(enr));
        }
        for link in &changes.added_links {
            println!("  + link {link}");
        }
        for link in &changes.removed_links {
            println!("  - link {link}");
        }
    } else {
        // The first tree a key holder signs: every node and link is new, so show them all.
        println!("  every node (first tree):");
        for record in tree.records() {
            println!("    + {}", describe_record(&record.to_string()));
        }
        for link in tree.links() {
            println!("  + link {link}");
        }
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("not a terminal: read the summary and pass --yes to sign");
        }
        print!("Sign this tree? [y/N] ");
        std::io::stdout().flush().context("standard output")?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).context("reading the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not signed");
        }
    }
    let key = unlock(keyfile, password)?;
    if let Some(expected) = request.expected_key()?
        && expected != *key.verifying_key()
        && !rotate_key
    {
        bail!(
            "the tree is signed by {}, this keystore holds {} (pass --rotate-key to change keys)",
            encode_public_key(&expected),
            encode_public_key(key.verifying_key())
        );
    }
    let signature = DetachedSignature::sign(&tree, &request.domain, &key);
    let out = out.unwrap_or_else(|| {
        let stem = request_path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        request_path.with_file_name(format!("{stem}.sig.json"))
    });
    files::write_atomic(&out, &signature.to_json())?;
    println!("wrote signature by {} to {}", signature.public_key, out.display());
    Ok(())
}

/// One line about a record for a human: node id, address, ports.
fn describe_record(text: &str) -> String {
    match text.parse::<NodeRecord>() {
        Ok(record) => {
            let enr = record.enr();
            let mut out = format!("node {}… seq {}", &record.node_id_hex()[..16], record.seq());
            if let Some(ip) = enr.ip4() {
                out.push_str(&format!(" ip {ip}"));
            }
            if let Some(tcp) = enr.tcp4() {
                out.push_str(&format!(" tcp {tcp}"));
            }
            if let Some(udp) = enr.udp4() {
                out.push_str(&format!(" udp {udp}"));
            }
            out
        }
        Err(error) => format!("invalid record: {error}"),
    }
}

fn attach(dir: &Path, signature_path: &Path, rotate_key: bool) -> anyhow::Result<()> {
    let signature = DetachedSignature::from_json(&files::read(signature_path)?)
        .with_context(|| format!("{}", signature_path.display()))?;
    let (key, root_signature) =
        signature.verify().with_context(|| format!("{}", signature_path.display()))?;
    let tree_dir = TreeDir::load(dir)?;
    let domain = tree_dir.domain(None)?;
    if !signature.domain.eq_ignore_ascii_case(&domain) {
        bail!("signature is for {}, the directory's tree is {domain}", signature.domain);
    }
    let mut tree = tree_dir.next_tree(Some(signature.seq), &domain)?;
    if tree.root().content() != signature.root_content {
        bail!(
            "signature covers {:?} but {} now gives {:?}: the tree changed since the request; make a new request",
            signature.root_content,
            dir.display(),
            tree.root().content()
        );
    }
    tree_dir.check_key(&key, rotate_key)?;
    tree.set_signature(&key, root_signature)?;
    let url = LinkEntry::new(key, domain);
    tree_dir.save_signed(&tree, &url)?;
    println!("attached signature: {url} seq {}", tree.seq());
    Ok(())
}

async fn resolve(
    url: &str,
    server: Option<SocketAddr>,
    no_links: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let url: LinkEntry = url.parse().with_context(|| format!("tree url {url:?}"))?;
    let resolver = match server {
        Some(server) => HickoryTxtResolver::with_server(server)?,
        None => HickoryTxtResolver::system()?,
    };
    let config = ClientConfig { follow_links: !no_links, ..ClientConfig::default() };
    let resolution = TreeClient::new(resolver, config).resolve(&url).await;
    if json {
        println!("{}", to_json_indent4(&resolution_json(&resolution)));
    } else {
        for tree in &resolution.trees {
            let seq = tree.root.as_ref().map_or_else(|| "?".to_owned(), |r| r.seq.to_string());
            eprintln!(
                "{}: seq {seq}, {} records, {} links, {} bad entries, {} lookups",
                tree.url,
                tree.records.len(),
                tree.links.len(),
                tree.errors.len(),
                tree.lookups
            );
            for error in &tree.errors {
                eprintln!("bad entry {error}");
            }
        }
        for record in resolution.records() {
            println!("{record}");
        }
    }
    let first_root_ok = resolution.trees.first().is_some_and(|t| t.root.is_some());
    Ok(if !first_root_ok {
        ExitCode::FAILURE
    } else if resolution.errors().next().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn resolution_json(resolution: &Resolution) -> serde_json::Value {
    let trees: Vec<_> = resolution
        .trees
        .iter()
        .map(|tree| {
            serde_json::json!({
                "url": tree.url.to_string(),
                "seq": tree.root.as_ref().map(|r| r.seq),
                "records": tree.records.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "links": tree.links.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "errors": tree.errors.iter().map(|e| serde_json::json!({
                    "name": e.name, "error": e.kind.to_string()
                })).collect::<Vec<_>>(),
                "lookups": tree.lookups,
            })
        })
        .collect();
    serde_json::json!({ "trees": trees })
}

async fn serve(dirs: &[PathBuf], listen: SocketAddr) -> anyhow::Result<()> {
    let mut zones = Vec::new();
    for dir in dirs {
        let (tree, url) = TreeDir::load(dir)?.signed_tree(None)?;
        println!("serving {url} seq {}", tree.seq());
        zones.push(TxtZone::from_tree(&tree, &url.domain, DEFAULT_ROOT_TTL, DEFAULT_TTL));
    }
    let server = DnsServer::start(listen, zones).await?;
    println!("DNS on {} (UDP and TCP); Ctrl-C to stop", server.local_addr());
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    server.shutdown().await;
    Ok(())
}
