//! The tree client: resolves `enrtree://<key>@<domain>`, checks the root signature and the hash
//! of every entry, follows links to other trees, and reports every bad entry by name while
//! keeping everything good — one broken record must not cost the rest of the list (go-waku
//! and geth's `SyncTree` drop the whole tree on the first error).

use std::{collections::HashSet, fmt};

use futures::{StreamExt, stream};

use super::resolver::{LookupError, TxtResolver};
use crate::enrtree::{
    Entry, LinkEntry, NodeRecord, ParseEntryError, RootEntry, SignatureError,
    entry::{BRANCH_PREFIX, LINK_PREFIX, ROOT_PREFIX},
    label::matches_label,
    record::ENR_PREFIX,
};

/// Limits of one resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Most DNS lookups per tree (branches count). Default: 50,000.
    pub max_lookups_per_tree: usize,
    /// Most trees, counting the first and every linked one. Default: 32.
    pub max_trees: usize,
    /// Lookups in flight at once. Default: 16.
    pub concurrency: usize,
    /// Whether to follow links. Default: true.
    pub follow_links: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self { max_lookups_per_tree: 50_000, max_trees: 32, concurrency: 16, follow_links: true }
    }
}

/// What was wrong with one DNS name of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    /// The full DNS name (`<label>.<domain>`, or the domain for the root).
    pub name: String,
    /// What went wrong.
    pub kind: EntryErrorKind,
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.kind)
    }
}

/// The ways an entry can be bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryErrorKind {
    /// The lookup failed.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// No TXT record at the apex starts with `enrtree-root:v1`.
    #[error("no enrtree root record")]
    NoRoot,
    /// No TXT record at the name is a tree entry.
    #[error("no tree entry among the TXT records")]
    NoEntry,
    /// The text does not hash to its label.
    #[error("hash mismatch: the text does not hash to its label")]
    HashMismatch,
    /// The text is not a valid entry.
    #[error("{0}")]
    Parse(#[from] ParseEntryError),
    /// The root is not signed by the key in the URL.
    #[error("root signature: {0}")]
    Signature(#[from] SignatureError),
    /// A link below `e=`.
    #[error("link entry in the ENR subtree")]
    LinkInEnrTree,
    /// A record below `l=`.
    #[error("enr entry in the link subtree")]
    EnrInLinkTree,
    /// A root below the apex.
    #[error("root entry inside the tree")]
    RootInSubtree,
    /// The lookup budget ran out before this entry.
    #[error("not resolved: lookup limit reached")]
    LookupLimit,
}

/// One tree as resolved.
#[derive(Debug, Clone)]
pub struct ResolvedTree {
    /// The tree's URL.
    pub url: LinkEntry,
    /// The verified root, or `None` when the root itself was unusable (then `errors` says why).
    pub root: Option<RootEntry>,
    /// Every valid record found, in the order found.
    pub records: Vec<NodeRecord>,
    /// Every valid link found.
    pub links: Vec<LinkEntry>,
    /// Every bad entry.
    pub errors: Vec<EntryError>,
    /// DNS lookups made.
    pub lookups: usize,
}

/// The result of resolving a URL: the tree and each tree reached through links.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// The trees, the requested one first.
    pub trees: Vec<ResolvedTree>,
}

impl Resolution {
    /// Every record of every tree, once per node id (the highest seq wins).
    pub fn records(&self) -> Vec<NodeRecord> {
        let mut by_id = std::collections::BTreeMap::new();
        for record in self.trees.iter().flat_map(|t| &t.records) {
            by_id
                .entry(record.node_id())
                .and_modify(|r: &mut NodeRecord| {
                    if record.seq() > r.seq() {
                        *r = record.clone();
                    }
                })
                .or_insert_with(|| record.clone());
        }
        by_id.into_values().collect()
    }

    /// Every bad entry of every tree.
    pub fn errors(&self) -> impl Iterator<Item = &EntryError> {
        self.trees.iter().flat_map(|t| &t.errors)
    }
}

/// Which subtree an entry was reached from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subtree {
    Enr,
    Link,
}

/// Resolves trees through a [`TxtResolver`].
#[derive(Debug, Clone)]
pub struct TreeClient<R> {
    resolver: R,
    config: ClientConfig,
}

impl<R: TxtResolver> TreeClient<R> {
    /// A client with the given resolver and limits.
    pub fn new(resolver: R, config: ClientConfig) -> Self {
        Self { resolver, config }
    }

    /// Resolves `url` and, if configured, every tree it links to.
    pub async fn resolve(&self, url: &LinkEntry) -> Resolution {
        let mut resolution = Resolution::default();
        let mut queue = std::collections::VecDeque::from([url.clone()]);
        let mut seen = HashSet::from([tree_key(url)]);
        while let Some(url) = queue.pop_front() {
            if resolution.trees.len() >= self.config.max_trees {
                break;
            }
            let tree = self.resolve_tree(url).await;
            if self.config.follow_links {
                for link in &tree.links {
                    if seen.insert(tree_key(link)) {
                        queue.push_back(link.clone());
                    }
                }
            }
            resolution.trees.push(tree);
        }
        resolution
    }

    /// Resolves one tree without following its links.
    pub async fn resolve_tree(&self, url: LinkEntry) -> ResolvedTree {
        let mut tree = ResolvedTree {
            url,
            root: None,
            records: Vec::new(),
            links: Vec::new(),
            errors: Vec::new(),
            lookups: 1,
        };
        let domain = tree.url.domain.clone();
        let root = match self.resolve_root(&tree.url).await {
            Ok(root) => root,
            Err(kind) => {
                tree.errors.push(EntryError { name: domain, kind });
                return tree;
            }
        };
        let mut frontier =
            vec![(root.enr_root.clone(), Subtree::Enr), (root.link_root.clone(), Subtree::Link)];
        tree.root = Some(root);
        let mut seen: HashSet<String> = frontier.iter().map(|(l, _)| l.clone()).collect();

        while !frontier.is_empty() {
            let budget = self.config.max_lookups_per_tree.saturating_sub(tree.lookups);
            if frontier.len() > budget {
                for (label, _) in frontier.drain(budget..) {
                    let name = format!("{label}.{domain}");
                    tree.errors.push(EntryError { name, kind: EntryErrorKind::LookupLimit });
                }
            }
            tree.lookups += frontier.len();
            let domain_ref = domain.as_str();
            let results: Vec<_> = stream::iter(frontier.drain(..))
                .map(|(label, subtree)| async move {
                    let entry = self.resolve_entry(&label, domain_ref).await;
                    (label, subtree, entry)
                })
                .buffer_unordered(self.config.concurrency.max(1))
                .collect()
                .await;
            for (label, subtree, entry) in results {
                let name = format!("{label}.{domain}");
                let kind = match (entry, subtree) {
                    (Ok(Entry::Branch(branch)), _) => {
                        for child in branch.children {
                            if seen.insert(child.clone()) {
                                frontier.push((child, subtree));
                            }
                        }
                        continue;
                    }
                    (Ok(Entry::Enr(record)), Subtree::Enr) => {
                        tree.records.push(record);
                        continue;
                    }
                    (Ok(Entry::Link(link)), Subtree::Link) => {
                        tree.links.push(link);
                        continue;
                    }
                    (Ok(Entry::Link(_)), Subtree::Enr) => EntryErrorKind::LinkInEnrTree,
                    (Ok(Entry::Enr(_)), Subtree::Link) => EntryErrorKind::EnrInLinkTree,
                    (Ok(Entry::Root(_)), _) => EntryErrorKind::RootInSubtree,
                    (Err(kind), _) => kind,
                };
                tree.errors.push(EntryError { name, kind });
            }
        }
        tree
    }

    async fn resolve_root(&self, url: &LinkEntry) -> Result<RootEntry, EntryErrorKind> {
        let texts = self.resolver.lookup_txt(&url.domain).await?;
        // An apex may carry other TXT records (SPF, ownership tokens): take the root by prefix.
        let text =
            texts.iter().find(|t| t.starts_with(ROOT_PREFIX)).ok_or(EntryErrorKind::NoRoot)?;
        let root: RootEntry = text.parse()?;
        root.verify(&url.public_key)?;
        Ok(root)
    }

    /// geth's rule: the first TXT record with a known entry prefix decides; it must hash to the
    /// label, and then it must parse.
    async fn resolve_entry(&self, label: &str, domain: &str) -> Result<Entry, EntryErrorKind> {
        let texts = self.resolver.lookup_txt(&format!("{label}.{domain}")).await?;
        let text = texts
            .iter()
            .find(|t| {
                [ROOT_PREFIX, BRANCH_PREFIX, LINK_PREFIX, ENR_PREFIX]
                    .iter()
                    .any(|p| t.starts_with(p))
            })
            .ok_or(EntryErrorKind::NoEntry)?;
        if !matches_label(label, text) {
            return Err(EntryErrorKind::HashMismatch);
        }
        Ok(text.parse()?)
    }
}

fn tree_key(url: &LinkEntry) -> (String, Vec<u8>) {
    (
        url.domain.trim_end_matches('.').to_ascii_lowercase(),
        crate::crypto::compressed_public_key(&url.public_key).to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{
        crypto::generate_key,
        dnsdisc::MapResolver,
        enrtree::{Tree, label::subdomain},
    };

    fn records(n: usize) -> Vec<NodeRecord> {
        (0..n)
            .map(|i| {
                let port = 1000 + u16::try_from(i).unwrap();
                NodeRecord::sign(&generate_key(), 1, Ipv4Addr::LOCALHOST, port, port).unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn resolves_every_record_and_follows_links() {
        let resolver = MapResolver::default();
        let linked_key = generate_key();
        let mut linked = Tree::build(1, records(20), vec![]).unwrap();
        let linked_url = linked.sign(&linked_key, "more.example.org");
        resolver.extend(&linked.to_txt("more.example.org"));

        let key = generate_key();
        let mut tree = Tree::build(5, records(40), vec![linked_url.clone()]).unwrap();
        let url = tree.sign(&key, "nodes.example.org");
        resolver.extend(&tree.to_txt("nodes.example.org"));

        let resolution = TreeClient::new(resolver, ClientConfig::default()).resolve(&url).await;
        assert_eq!(resolution.trees.len(), 2);
        assert_eq!(resolution.trees[0].links, vec![linked_url]);
        assert_eq!(resolution.records().len(), 60);
        assert_eq!(resolution.errors().count(), 0);
    }

    /// geth's TestClientSyncTreeBadNode: a root whose e= is the hash of `enr:-----`.
    #[tokio::test]
    async fn geth_bad_node_tree_reports_the_entry_by_name() {
        let resolver = MapResolver::default();
        resolver.insert("n", "enrtree-root:v1 e=INDMVBZEEQ4ESVYAKGIYU74EAA l=C7HRFPF3BLGF3YR4DY5KX3SMBE seq=3 sig=Vl3AmunLur0JZ3sIyJPSH6A3Vvdp4F40jWQeCmkIhmcgwE4VC5U9wpK8C_uL_CMY29fd6FAhspRvq2z_VysTLAA");
        resolver.insert(
            "C7HRFPF3BLGF3YR4DY5KX3SMBE.n",
            "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@morenodes.example.org",
        );
        resolver.insert("INDMVBZEEQ4ESVYAKGIYU74EAA.n", "enr:-----");
        let url: LinkEntry =
            "enrtree://AKPYQIUQIL7PSIACI32J7FGZW56E5FKHEFCCOFHILBIMW3M6LWXS2@n".parse().unwrap();
        let config = ClientConfig { follow_links: false, ..ClientConfig::default() };
        let tree = TreeClient::new(resolver, config).resolve(&url).await.trees.remove(0);
        assert_eq!(tree.links.len(), 1, "the good link is kept");
        assert_eq!(tree.errors.len(), 1);
        assert_eq!(tree.errors[0].name, "INDMVBZEEQ4ESVYAKGIYU74EAA.n");
        assert!(matches!(tree.errors[0].kind, EntryErrorKind::Parse(ParseEntryError::Record(_))));
    }

    #[tokio::test]
    async fn tampered_entries_and_wrong_keys_are_reported() {
        let resolver = MapResolver::default();
        let key = generate_key();
        let mut tree = Tree::build(1, records(30), vec![]).unwrap();
        let url = tree.sign(&key, "t.example");
        let txt = tree.to_txt("t.example");
        // Swap one leaf's text for another record's: its hash no longer matches its label.
        let leaf = tree.records()[0].to_string();
        let victim = format!("{}.t.example", subdomain(&leaf));
        for (name, text) in &txt {
            if *name == victim {
                resolver.insert(name, tree.records()[1].to_string());
            } else {
                resolver.insert(name, text.clone());
            }
        }
        let client = TreeClient::new(resolver, ClientConfig::default());
        let resolved = client.resolve(&url).await.trees.remove(0);
        assert_eq!(resolved.records.len(), 29);
        assert_eq!(resolved.errors.len(), 1);
        assert_eq!(resolved.errors[0].name, victim);
        assert_eq!(resolved.errors[0].kind, EntryErrorKind::HashMismatch);

        let wrong = LinkEntry::new(*generate_key().verifying_key(), "t.example");
        let resolved = client.resolve(&wrong).await.trees.remove(0);
        assert!(resolved.root.is_none());
        assert!(matches!(resolved.errors[0].kind, EntryErrorKind::Signature(_)));
    }

    #[tokio::test]
    async fn lookup_budget_is_enforced_and_reported() {
        let resolver = MapResolver::default();
        let key = generate_key();
        let mut tree = Tree::build(1, records(30), vec![]).unwrap();
        let url = tree.sign(&key, "t.example");
        resolver.extend(&tree.to_txt("t.example"));
        let config = ClientConfig { max_lookups_per_tree: 10, ..ClientConfig::default() };
        let resolved = TreeClient::new(resolver, config).resolve(&url).await.trees.remove(0);
        assert!(resolved.lookups <= 10);
        assert!(resolved.records.len() < 30);
        assert!(resolved.errors.iter().all(|e| e.kind == EntryErrorKind::LookupLimit));
        assert!(!resolved.errors.is_empty());
    }
}
