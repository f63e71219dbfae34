//! Signed trees to publish, and walking published records with the tree client.

use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use controller::publish::zone::TxtZone;
use k256::ecdsa::SigningKey;
use node::{
    crypto::generate_key,
    dnsdisc::{ClientConfig, MapResolver, TreeClient},
    enrtree::{LinkEntry, NodeRecord, Tree},
};

pub(crate) const DOMAIN: &str = "nodes.fleet.test";

/// `n` freshly signed node records.
pub(crate) fn node_records(n: u16) -> Vec<NodeRecord> {
    (0..n)
        .map(|i| NodeRecord::sign(&generate_key(), 1, Ipv4Addr::LOCALHOST, 40_000 + i, 41_000 + i))
        .collect::<Result<_, _>>()
        .expect("sign records")
}

/// A tree signed by one key, as published.
pub(crate) struct Published {
    pub(crate) tree: Tree,
    pub(crate) zone: TxtZone,
}

impl Published {
    /// The tree of `records` with sequence number `seq`, signed by `key` for [`DOMAIN`].
    pub(crate) fn new(key: &SigningKey, seq: u64, records: Vec<NodeRecord>) -> (Self, LinkEntry) {
        let mut tree = Tree::build(seq, records, vec![]).expect("build tree");
        let url = tree.sign(key, DOMAIN);
        let zone = TxtZone::from_tree(&tree, DOMAIN, 60, 86_400);
        (Self { tree, zone }, url)
    }

    /// The tree's ENRs, sorted.
    pub(crate) fn enrs(&self) -> Vec<String> {
        let mut enrs: Vec<String> = self.tree.records().iter().map(ToString::to_string).collect();
        enrs.sort();
        enrs
    }

    /// `(lower-case name, text)` of every record.
    pub(crate) fn txt(&self) -> BTreeSet<(String, String)> {
        self.zone.records.iter().map(|r| (r.name.to_ascii_lowercase(), r.text.clone())).collect()
    }
}

/// Walks the tree at `url` through `records` (`(name, text)`, several per name allowed): its
/// sequence number and sorted ENRs, or every problem the client found.
pub(crate) async fn resolve(
    url: &LinkEntry,
    records: impl IntoIterator<Item = (String, String)>,
) -> Result<(u64, Vec<String>), String> {
    let resolver = MapResolver::default();
    for (name, text) in records {
        resolver.insert(&name, text);
    }
    let config = ClientConfig { follow_links: false, ..ClientConfig::default() };
    let tree = TreeClient::new(resolver, config).resolve_tree(url.clone()).await;
    if !tree.errors.is_empty() {
        return Err(tree.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
    }
    let root = tree.root.ok_or("no root")?;
    let mut enrs: Vec<String> = tree.records.iter().map(ToString::to_string).collect();
    enrs.sort();
    Ok((root.seq, enrs))
}

/// Asserts that `records` hold one of `trees` completely (and nothing else verifiable), and
/// returns which. With `none_yet`, records without any root are accepted too (`None`): nothing
/// was published before.
pub(crate) async fn assert_whole_tree(
    what: &str,
    url: &LinkEntry,
    records: Vec<(String, String)>,
    trees: &[&Published],
    none_yet: bool,
) -> Option<usize> {
    let apex =
        records.iter().any(|(name, _)| name.trim_end_matches('.').eq_ignore_ascii_case(DOMAIN));
    if !apex && none_yet {
        return None;
    }
    let (seq, enrs) =
        resolve(url, records).await.unwrap_or_else(|e| panic!("{what}: broken tree: {e}"));
    let index = trees
        .iter()
        .position(|t| t.tree.seq() == seq)
        .unwrap_or_else(|| panic!("{what}: unexpected seq {seq}"));
    assert_eq!(enrs, trees[index].enrs(), "{what}: tree seq {seq} is incomplete");
    Some(index)
}

/// The change files in `dir` not in `seen`, in name order (hidden state files skipped); adds
/// them to `seen`.
pub(crate) fn new_files(dir: &Path, seen: &mut BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            !name.starts_with('.') && name.ends_with(".json")
        })
        .filter(|p| !seen.contains(p))
        .collect();
    files.sort();
    seen.extend(files.iter().cloned());
    files
}

/// Whether this process runs as root, for whom directory permissions do not apply.
#[cfg(unix)]
pub(crate) fn running_as_root(scratch: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = scratch.join(".uid-probe");
    std::fs::write(&probe, b"").unwrap();
    let uid = std::fs::metadata(&probe).unwrap().uid();
    std::fs::remove_file(&probe).unwrap();
    uid == 0
}
