//! Building trees exactly as go-ethereum's `dnsdisc.MakeTree` does, so that a tree built here
//! and by `devp2p dns sign` from the same records is the same tree, byte for byte.
//!
//! - records are sorted by node id (nim-dnsdisc keeps input order and so builds other trees);
//! - a list of one entry is that entry; up to 13 entries make one branch; longer lists are cut
//!   in order into groups of 13, each built recursively, and the results built again;
//! - an empty list is the empty branch `enrtree-branch:`;
//! - the ENR list and the link list each make a subtree; the root names both and is signed.

use std::collections::BTreeMap;

use k256::ecdsa::{SigningKey, VerifyingKey};

use super::{
    entry::{BranchEntry, Entry, LinkEntry, RootEntry},
    error::TreeError,
    label::subdomain,
    record::NodeRecord,
    signature::RootSignature,
    wire::{MAX_UDP_MESSAGE, udp_answer_size},
};

/// Children per branch: `370 / (26-character hash + comma)`. 370 characters keep a branch
/// answer under 512 bytes for long domains (geth PR #22533 lowered it from 30).
pub const MAX_CHILDREN: usize = 370 / 27;

/// The highest sequence number every client accepts (nim-dnsdisc stores a u32).
pub const MAX_SEQ: u64 = u32::MAX as u64;

/// A built tree: the root and every subtree entry by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    root: RootEntry,
    entries: BTreeMap<String, Entry>,
    records: Vec<NodeRecord>,
    links: Vec<LinkEntry>,
}

impl Tree {
    /// Builds the tree of `records` and `links` with sequence number `seq`, unsigned.
    ///
    /// Fails on duplicate node ids and on a `seq` outside `1..=2^32-1`.
    pub fn build(
        seq: u64,
        mut records: Vec<NodeRecord>,
        links: Vec<LinkEntry>,
    ) -> Result<Self, TreeError> {
        if !(1..=MAX_SEQ).contains(&seq) {
            return Err(TreeError::SeqOutOfRange(seq));
        }
        records.sort_by_key(NodeRecord::node_id);
        if let Some(pair) = records.windows(2).find(|w| w[0].node_id() == w[1].node_id()) {
            return Err(TreeError::DuplicateNode(pair[0].node_id_hex()));
        }
        let mut entries = BTreeMap::new();
        let enr_root = build(&mut entries, records.iter().cloned().map(Entry::Enr).collect());
        let enr_label = insert(&mut entries, enr_root);
        let link_root = build(&mut entries, links.iter().cloned().map(Entry::Link).collect());
        let link_label = insert(&mut entries, link_root);
        let root = RootEntry { enr_root: enr_label, link_root: link_label, seq, signature: None };
        Ok(Self { root, entries, records, links })
    }

    /// The root entry.
    pub fn root(&self) -> &RootEntry {
        &self.root
    }

    /// The sequence number.
    pub fn seq(&self) -> u64 {
        self.root.seq
    }

    /// The records, sorted by node id.
    pub fn records(&self) -> &[NodeRecord] {
        &self.records
    }

    /// The links.
    pub fn links(&self) -> &[LinkEntry] {
        &self.links
    }

    /// Every entry below the root, by label.
    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    /// Signs the root and returns the tree's URL for `domain`.
    pub fn sign(&mut self, key: &SigningKey, domain: &str) -> LinkEntry {
        self.root.sign(key);
        LinkEntry::new(*key.verifying_key(), domain)
    }

    /// Sets a signature made elsewhere (a key holder's detached signature, or the one stored in
    /// a tree directory) after checking it against `public_key`. Leaves the tree unchanged on
    /// error.
    pub fn set_signature(
        &mut self,
        public_key: &VerifyingKey,
        signature: RootSignature,
    ) -> Result<(), TreeError> {
        signature.verify_hash(public_key, &self.root.signing_hash())?;
        self.root.signature = Some(signature);
        Ok(())
    }

    /// Checks the signature against `public_key`.
    pub fn verify(&self, public_key: &VerifyingKey) -> Result<(), TreeError> {
        let signature = self.root.signature.as_ref().ok_or(TreeError::Unsigned)?;
        Ok(signature.verify_hash(public_key, &self.root.signing_hash())?)
    }

    /// The tree as TXT records: the root at `domain`, every other entry at `<label>.<domain>`
    /// (bare labels when `domain` is empty), like geth's `ToTXT`.
    pub fn to_txt(&self, domain: &str) -> BTreeMap<String, String> {
        let name = |label: &str| {
            if domain.is_empty() { label.to_owned() } else { format!("{label}.{domain}") }
        };
        let mut out: BTreeMap<String, String> =
            self.entries.iter().map(|(label, entry)| (name(label), entry.to_string())).collect();
        out.insert(domain.to_owned(), self.root.to_string());
        out
    }

    /// Checks that every record of the tree, published under `domain`, fits one 512-byte UDP
    /// answer. The root is sized with a full 65-byte signature even while unsigned.
    pub fn check_sizes(&self, domain: &str) -> Result<(), TreeError> {
        // A 65-byte signature is always 87 base64url characters.
        let root_text = match &self.root.signature {
            Some(_) => self.root.to_string(),
            None => format!("{} sig={}", self.root.content(), "A".repeat(87)),
        };
        let subtree = self
            .entries
            .iter()
            .map(|(label, entry)| (format!("{label}.{domain}"), entry.to_string()));
        for (name, text) in std::iter::once((domain.to_owned(), root_text)).chain(subtree) {
            let size = udp_answer_size(&name, &text);
            if size > MAX_UDP_MESSAGE {
                return Err(TreeError::RecordTooLarge { name, size });
            }
        }
        Ok(())
    }
}

/// Adds `entry` under its label and returns the label.
fn insert(entries: &mut BTreeMap<String, Entry>, entry: Entry) -> String {
    let label = subdomain(&entry.to_string());
    entries.insert(label.clone(), entry);
    label
}

/// geth's `build`: the subtree over `list`, returning its top entry (not yet inserted).
fn build(entries: &mut BTreeMap<String, Entry>, mut list: Vec<Entry>) -> Entry {
    if list.len() == 1 {
        return list.remove(0);
    }
    if list.len() <= MAX_CHILDREN {
        let children = list.into_iter().map(|entry| insert(entries, entry)).collect();
        return Entry::Branch(BranchEntry { children });
    }
    let mut subtrees = Vec::with_capacity(list.len().div_ceil(MAX_CHILDREN));
    let mut rest = list.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<Entry> = rest.by_ref().take(MAX_CHILDREN).collect();
        let subtree = build(entries, chunk);
        entries.insert(subdomain(&subtree.to_string()), subtree.clone());
        subtrees.push(subtree);
    }
    build(entries, subtrees)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{
        crypto::generate_key,
        enrtree::{label::matches_label, signature::encode_public_key},
    };

    fn geth_test_key() -> SigningKey {
        let hex = "dc599867fc513f8f5e2c2c9c489cde5e71362d1d9ec6e693e0de063236ed1240";
        SigningKey::from_slice(&data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap()).unwrap()
    }

    fn generated(n: usize) -> Vec<NodeRecord> {
        (0..n)
            .map(|i| {
                let port = 30_000 + u16::try_from(i % 30_000).unwrap();
                NodeRecord::sign(&generate_key(), 1, Ipv4Addr::new(10, 0, 0, 1), port, port)
                    .unwrap()
            })
            .collect()
    }

    /// geth `TestClientSyncTree` / the EIP-1459 example zone, rebuilt from its three records
    /// and one link, signed with geth's test key: every record and the signature must match.
    #[test]
    fn eip_example_tree_is_rebuilt_byte_for_byte_with_its_signature() {
        let records = [
            "enr:-HW4QOFzoVLaFJnNhbgMoDXPnOvcdVuj7pDpqRvh6BRDO68aVi5ZcjB3vzQRZH2IcLBGHzo8uUN3snqmgTiE56CH3AMBgmlkgnY0iXNlY3AyNTZrMaECC2_24YYkYHEgdzxlSNKQEnHhuNAbNlMlWJxrJxbAFvA",
            "enr:-HW4QAggRauloj2SDLtIHN1XBkvhFZ1vtf1raYQp9TBW2RD5EEawDzbtSmlXUfnaHcvwOizhVYLtr7e6vw7NAf6mTuoCgmlkgnY0iXNlY3AyNTZrMaECjrXI8TLNXU0f8cthpAMxEshUyQlK-AM0PW2wfrnacNI",
            "enr:-HW4QLAYqmrwllBEnzWWs7I5Ev2IAs7x_dZlbYdRdMUx5EyKHDXp7AV5CkuPGUPdvbv1_Ms1CPfhcGCvSElSosZmyoqAgmlkgnY0iXNlY3AyNTZrMaECriawHKWdDRk2xeZkrOXBQ0dfMFLHY4eENZwdufn1S1o",
        ];
        let link =
            "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@morenodes.example.org";
        // Input order must not matter: geth sorts by node id.
        let records: Vec<NodeRecord> = records.iter().rev().map(|r| r.parse().unwrap()).collect();
        let mut tree = Tree::build(1, records, vec![link.parse().unwrap()]).unwrap();
        let url = tree.sign(&geth_test_key(), "n");
        assert_eq!(
            url.to_string(),
            "enrtree://AKPYQIUQIL7PSIACI32J7FGZW56E5FKHEFCCOFHILBIMW3M6LWXS2@n"
        );

        let expected: BTreeMap<String, String> = [
            ("n", "enrtree-root:v1 e=JWXYDBPXYWG6FX3GMDIBFA6CJ4 l=C7HRFPF3BLGF3YR4DY5KX3SMBE seq=1 sig=o908WmNp7LibOfPsr4btQwatZJ5URBr2ZAuxvK4UWHlsB9sUOTJQaGAlLPVAhM__XJesCHxLISo94z5Z2a463gA"),
            ("C7HRFPF3BLGF3YR4DY5KX3SMBE.n", link),
            ("JWXYDBPXYWG6FX3GMDIBFA6CJ4.n", "enrtree-branch:2XS2367YHAXJFGLZHVAWLQD4ZY,H4FHT4B454P6UXFD7JCYQ5PWDY,MHTDO6TMUBRIA2XWG5LUDACK24"),
            ("2XS2367YHAXJFGLZHVAWLQD4ZY.n", "enr:-HW4QOFzoVLaFJnNhbgMoDXPnOvcdVuj7pDpqRvh6BRDO68aVi5ZcjB3vzQRZH2IcLBGHzo8uUN3snqmgTiE56CH3AMBgmlkgnY0iXNlY3AyNTZrMaECC2_24YYkYHEgdzxlSNKQEnHhuNAbNlMlWJxrJxbAFvA"),
            ("H4FHT4B454P6UXFD7JCYQ5PWDY.n", "enr:-HW4QAggRauloj2SDLtIHN1XBkvhFZ1vtf1raYQp9TBW2RD5EEawDzbtSmlXUfnaHcvwOizhVYLtr7e6vw7NAf6mTuoCgmlkgnY0iXNlY3AyNTZrMaECjrXI8TLNXU0f8cthpAMxEshUyQlK-AM0PW2wfrnacNI"),
            ("MHTDO6TMUBRIA2XWG5LUDACK24.n", "enr:-HW4QLAYqmrwllBEnzWWs7I5Ev2IAs7x_dZlbYdRdMUx5EyKHDXp7AV5CkuPGUPdvbv1_Ms1CPfhcGCvSElSosZmyoqAgmlkgnY0iXNlY3AyNTZrMaECriawHKWdDRk2xeZkrOXBQ0dfMFLHY4eENZwdufn1S1o"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(tree.to_txt("n"), expected);
        tree.verify(&geth_test_key().verifying_key().clone()).unwrap();
    }

    #[test]
    fn geth_bad_node_root_and_route53_seq0_root_verify_with_the_test_key() {
        let key = *geth_test_key().verifying_key();
        for root in [
            "enrtree-root:v1 e=INDMVBZEEQ4ESVYAKGIYU74EAA l=C7HRFPF3BLGF3YR4DY5KX3SMBE seq=3 sig=Vl3AmunLur0JZ3sIyJPSH6A3Vvdp4F40jWQeCmkIhmcgwE4VC5U9wpK8C_uL_CMY29fd6FAhspRvq2z_VysTLAA",
            "enrtree-root:v1 e=2KFJOGVXDQTXXUGBH7GS7NAAAI l=FDXN3SN67NA5DKA4J2GOK7BVQI seq=0 sig=v_-J_q_9ICQg5ztExFvLQhDBGMb0lZPJLhe3ts9LAcgqhOhtT3YFJsl8BWNDSwGtamUdR-9xl88_w-X42SVpjwE",
        ] {
            let parsed: RootEntry = root.parse().unwrap();
            parsed.verify(&key).unwrap();
            let mut resigned = parsed.clone();
            resigned.sign(&geth_test_key());
            assert_eq!(resigned.to_string(), root, "RFC 6979 signature must be reproduced");
        }
    }

    #[test]
    fn route53_vector_record_rebuilds_its_single_leaf_tree() {
        // cmd/devp2p dns_route53_test.go: one record, no links; the root (seq 0, which we never
        // emit) names the record itself as e= because a one-entry list is its own subtree.
        let record: NodeRecord = "enr:-HW4QO1ml1DdXLeZLsUxewnthhUy8eROqkDyoMTyavfks9JlYQIlMFEUoM78PovJDPQrAkrb3LRJ-vtrymDguKCOIAWAgmlkgnY0iXNlY3AyNTZrMaEDffaGfJzgGhUif1JqFruZlYmA31HzathLSWxfbq_QoQ4".parse().unwrap();
        let tree = Tree::build(1, vec![record], vec![]).unwrap();
        assert_eq!(tree.root().enr_root, "2KFJOGVXDQTXXUGBH7GS7NAAAI");
        assert_eq!(tree.root().link_root, "FDXN3SN67NA5DKA4J2GOK7BVQI");
        assert_eq!(Tree::build(0, vec![], vec![]), Err(TreeError::SeqOutOfRange(0)));
    }

    #[test]
    fn empty_tree_has_empty_branches_on_both_sides() {
        let tree = Tree::build(1, vec![], vec![]).unwrap();
        assert_eq!(tree.root().enr_root, "FDXN3SN67NA5DKA4J2GOK7BVQI");
        assert_eq!(tree.root().link_root, "FDXN3SN67NA5DKA4J2GOK7BVQI");
        assert_eq!(tree.entries().len(), 1);
    }

    #[test]
    fn sequence_numbers_outside_u32_are_refused() {
        assert_eq!(Tree::build(1 << 32, vec![], vec![]), Err(TreeError::SeqOutOfRange(1 << 32)));
        assert!(Tree::build(u64::from(u32::MAX), vec![], vec![]).is_ok());
    }

    #[test]
    fn duplicate_node_ids_are_refused() {
        let key = generate_key();
        let a = NodeRecord::sign(&key, 1, Ipv4Addr::LOCALHOST, 1, 1).unwrap();
        let b = NodeRecord::sign(&key, 2, Ipv4Addr::LOCALHOST, 2, 2).unwrap();
        assert!(matches!(Tree::build(1, vec![a, b], vec![]), Err(TreeError::DuplicateNode(_))));
    }

    /// Walks a 1,000-record tree from the root: every branch has 1..=13 children whose texts
    /// hash to their labels, every record is reached exactly once, and the leaves come in
    /// node-id order; shuffled input builds the same tree.
    #[test]
    fn large_tree_shape_follows_geth() {
        let records = generated(1000);
        let tree = Tree::build(7, records.clone(), vec![]).unwrap();
        let mut reversed = records;
        reversed.reverse();
        assert_eq!(Tree::build(7, reversed, vec![]).unwrap(), tree);

        let mut leaves = Vec::new();
        let mut stack = vec![tree.root().enr_root.clone()];
        while let Some(label) = stack.pop() {
            let entry = &tree.entries()[&label];
            assert!(matches_label(&label, &entry.to_string()));
            match entry {
                Entry::Branch(b) => {
                    assert!((1..=MAX_CHILDREN).contains(&b.children.len()));
                    stack.extend(b.children.iter().rev().cloned());
                }
                Entry::Enr(r) => leaves.push(r.node_id()),
                other => panic!("unexpected {} in ENR subtree", other.kind()),
            }
        }
        let expected: Vec<_> = tree.records().iter().map(NodeRecord::node_id).collect();
        assert_eq!(leaves, expected);
        assert!(leaves.windows(2).all(|w| w[0] < w[1]));
        tree.check_sizes("nodes.example.org").unwrap();
    }

    #[test]
    fn oversized_records_are_named() {
        let records = generated(3);
        let tree = Tree::build(1, records, vec![]).unwrap();
        let long_domain = format!("{}.example.org", ["a".repeat(63), "b".repeat(63)].join("."));
        match tree.check_sizes(&long_domain) {
            Err(TreeError::RecordTooLarge { name, size }) => {
                assert!(name.ends_with(&long_domain));
                assert!(size > 512);
            }
            other => panic!("expected RecordTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn signature_from_another_key_is_refused_and_not_set() {
        let mut tree = Tree::build(1, generated(2), vec![]).unwrap();
        let signer = generate_key();
        let other = generate_key();
        let signature = RootSignature::sign_hash(&signer, &tree.root().signing_hash());
        let err = tree.set_signature(other.verifying_key(), signature.clone()).unwrap_err();
        assert!(err.to_string().contains(&encode_public_key(other.verifying_key())));
        assert!(tree.root().signature.is_none());
        tree.set_signature(signer.verifying_key(), signature).unwrap();
        tree.verify(signer.verifying_key()).unwrap();
    }
}
