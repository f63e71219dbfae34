//! `wakufleet up`: the quick start. At this stage: a local fleet's tree workflow end to end —
//! a development key, loopback node records, a signed tree in go-ethereum's format, served by
//! the built-in DNS server and resolved back through real DNS queries.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
};

use anyhow::Context;
use clap::Args;
use controller::publish::{
    dns_server::DnsServer,
    zone::{DEFAULT_ROOT_TTL, DEFAULT_TTL, TxtZone},
};
use node::{
    crypto::generate_key,
    dnsdisc::{ClientConfig, HickoryTxtResolver, TreeClient},
    enrtree::{NodeRecord, definition::TreeDefinition},
    keystore::{KdfStrength, Keystore},
};

use super::tree::TreeDir;
use crate::files;

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Working directory for the fleet's files.
    #[arg(long, default_value = "wakufleet-local")]
    dir: PathBuf,
    /// Number of local nodes.
    #[arg(long, default_value_t = 5)]
    nodes: u16,
    /// Domain of the local tree.
    #[arg(long, default_value = "nodes.wakufleet.local")]
    domain: String,
    /// Address of the DNS server (UDP and TCP).
    #[arg(long, default_value = "127.0.0.1:8053")]
    dns: SocketAddr,
    /// Stop after the tree has been resolved back, instead of serving until Ctrl-C.
    #[arg(long)]
    once: bool,
}

pub(crate) async fn run(args: UpArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("{}", args.dir.display()))?;

    // A development signing key, encrypted at rest like any other. Its random password sits
    // beside it (mode 0600): fine for a throwaway local fleet, never for a real one.
    let keyfile = args.dir.join("dev-signing-key.json");
    let password_file = args.dir.join("dev-signing-key.password");
    let key = if keyfile.exists() {
        let password = files::read(&password_file)?;
        let keystore: Keystore = files::read(&keyfile)?.parse()?;
        keystore.decrypt(password.trim_end().as_bytes()).context("dev signing key")?
    } else {
        let mut secret = [0u8; 24];
        node::crypto::random_bytes(&mut secret);
        let password = data_encoding::BASE64URL_NOPAD.encode(&secret);
        let key = generate_key();
        let keystore = Keystore::encrypt(&key, password.as_bytes(), KdfStrength::Light)?;
        files::write_secret_new(&password_file, &password)?;
        files::write_secret_new(&keyfile, &keystore.to_string())?;
        key
    };

    // Loopback node records: 127.0.0.1, one TCP and UDP port pair each.
    let records = (0..args.nodes)
        .map(|i| NodeRecord::sign(&generate_key(), 1, Ipv4Addr::LOCALHOST, 60_000 + i, 9_000 + i))
        .collect::<Result<Vec<_>, _>>()?;

    // The tree directory, in go-ethereum's format, signed.
    let tree_path = args.dir.join(&args.domain);
    std::fs::create_dir_all(&tree_path).with_context(|| format!("{}", tree_path.display()))?;
    let previous_seq = TreeDir::load(&tree_path).map(|d| d.def.info.seq).unwrap_or(0);
    let mut def = TreeDefinition::from_records(&records, &[]);
    def.info.seq = previous_seq;
    let tree_dir_files = [
        (node::enrtree::definition::NODES_FILE, def.nodes_json()),
        (node::enrtree::definition::INFO_FILE, def.info_json()),
    ];
    for (name, text) in tree_dir_files {
        files::write_atomic(&tree_path.join(name), &text)?;
    }
    let tree_dir = TreeDir::load(&tree_path)?;
    let mut tree = tree_dir.next_tree(None, &args.domain)?;
    let url = tree.sign(&key, &args.domain);
    tree_dir.save_signed(&tree, &url)?;

    // Serve it, then resolve it back over real DNS.
    let zone = TxtZone::from_tree(&tree, &args.domain, DEFAULT_ROOT_TTL, DEFAULT_TTL);
    let server = DnsServer::start(args.dns, vec![zone]).await?;
    let dns = server.local_addr();
    let client = TreeClient::new(HickoryTxtResolver::with_server(dns)?, ClientConfig::default());
    let resolution = client.resolve(&url).await;
    let found = resolution.records().len();
    let bad = resolution.errors().count();

    println!("wakufleet local fleet");
    println!("  files:      {}", args.dir.display());
    println!("  tree:       {}", tree_path.display());
    println!("  tree url:   {url}");
    println!("  seq:        {}", tree.seq());
    println!("  DNS server: {dns} (UDP and TCP)");
    println!(
        "  resolved:   {found} of {} records over DNS, {bad} bad entries",
        tree.records().len()
    );
    println!("  try:        dig @{} -p {} TXT {}", dns.ip(), dns.port(), args.domain);
    println!("              wakufleet tree resolve {url} --server {dns}");
    if found != tree.records().len() || bad != 0 {
        server.shutdown().await;
        anyhow::bail!("the served tree did not resolve back completely");
    }
    if !args.once {
        println!("serving; Ctrl-C to stop");
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    }
    server.shutdown().await;
    Ok(())
}
