//! The four tree entry types, each parsed with `FromStr` and printed with `Display` in exactly
//! the form geth writes, so `parse → to_string` is the identity on canonical text.

use std::{fmt, str::FromStr};

use k256::ecdsa::{SigningKey, VerifyingKey};

use super::{
    error::{ParseEntryError, SignatureError},
    label::is_valid_hash,
    record::{ENR_PREFIX, NodeRecord},
    signature::{RootSignature, decode_public_key, encode_public_key},
};
use crate::crypto::keccak256;

/// Prefix of the root entry.
pub const ROOT_PREFIX: &str = "enrtree-root:v1";
/// Prefix of a link entry (and of tree URLs).
pub const LINK_PREFIX: &str = "enrtree://";
/// Prefix of a branch entry.
pub const BRANCH_PREFIX: &str = "enrtree-branch:";

/// The root of a tree, published at the tree's domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootEntry {
    /// Label of the root of the ENR subtree.
    pub enr_root: String,
    /// Label of the root of the link subtree.
    pub link_root: String,
    /// Sequence number; increases with every update.
    pub seq: u64,
    /// Signature over [`RootEntry::content`]; `None` until signed.
    pub signature: Option<RootSignature>,
}

impl RootEntry {
    /// The signed part of the root: the record text up to, not including, ` sig=`.
    pub fn content(&self) -> String {
        format!("{ROOT_PREFIX} e={} l={} seq={}", self.enr_root, self.link_root, self.seq)
    }

    /// keccak256 of [`RootEntry::content`], the hash that is signed.
    pub fn signing_hash(&self) -> [u8; 32] {
        keccak256(self.content())
    }

    /// Signs the root with `key`.
    pub fn sign(&mut self, key: &SigningKey) {
        self.signature = Some(RootSignature::sign_hash(key, &self.signing_hash()));
    }

    /// Verifies the signature against `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        let signature = self.signature.as_ref().ok_or(SignatureError::Length(0))?;
        signature.verify_hash(key, &self.signing_hash())
    }

    fn parse_value(s: &str) -> Result<Self, ParseEntryError> {
        // geth reads this with Sscanf("enrtree-root:v1 e=%s l=%s seq=%d sig=%s"): space separated
        // fields in a fixed order. The signed text is re-formatted from the fields, as in geth.
        let mut fields = s.split_ascii_whitespace();
        let mut field = |name: &'static str| {
            fields
                .next()
                .and_then(|f| f.strip_prefix(name))
                .ok_or(ParseEntryError::RootSyntax(name))
        };
        let enr_root = field("e=")?;
        let link_root = field("l=")?;
        let seq = field("seq=")?;
        let sig = field("sig=")?;
        if fields.next().is_some() {
            return Err(ParseEntryError::RootSyntax("trailing fields"));
        }
        for hash in [enr_root, link_root] {
            if !is_valid_hash(hash) {
                return Err(ParseEntryError::InvalidHash(hash.to_owned()));
            }
        }
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseEntryError::InvalidSeq(seq.to_owned()));
        }
        let seq = seq.parse().map_err(|_| ParseEntryError::InvalidSeq(seq.to_owned()))?;
        Ok(Self {
            enr_root: enr_root.to_owned(),
            link_root: link_root.to_owned(),
            seq,
            signature: Some(sig.parse()?),
        })
    }
}

impl fmt::Display for RootEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.content())?;
        match &self.signature {
            Some(sig) => write!(f, " sig={sig}"),
            None => f.write_str(" sig="),
        }
    }
}

impl FromStr for RootEntry {
    type Err = ParseEntryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix(ROOT_PREFIX) {
            Some(rest) if rest.starts_with(' ') => Self::parse_value(rest),
            _ => Err(ParseEntryError::UnknownEntry(s.to_owned())),
        }
    }
}

/// An inner node listing child labels. `enrtree-branch:` with no children is valid: it is the
/// link subtree of every tree without links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BranchEntry {
    /// The children's labels.
    pub children: Vec<String>,
}

impl BranchEntry {
    fn parse_value(s: &str) -> Result<Self, ParseEntryError> {
        if s.is_empty() {
            return Ok(Self::default());
        }
        let children = s
            .split(',')
            .map(|child| {
                if is_valid_hash(child) {
                    Ok(child.to_owned())
                } else {
                    Err(ParseEntryError::InvalidHash(child.to_owned()))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { children })
    }
}

impl fmt::Display for BranchEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{BRANCH_PREFIX}{}", self.children.join(","))
    }
}

impl FromStr for BranchEntry {
    type Err = ParseEntryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix(BRANCH_PREFIX)
            .ok_or_else(|| ParseEntryError::UnknownEntry(s.to_owned()))?;
        Self::parse_value(rest)
    }
}

/// A link to another tree, `enrtree://<key>@<domain>`. Tree URLs have the same form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEntry {
    /// The key that signs the linked tree.
    pub public_key: VerifyingKey,
    /// The domain of the linked tree.
    pub domain: String,
}

impl LinkEntry {
    /// The link for a tree signed by `public_key` at `domain`.
    pub fn new(public_key: VerifyingKey, domain: impl Into<String>) -> Self {
        Self { public_key, domain: domain.into() }
    }

    fn parse_value(s: &str) -> Result<Self, ParseEntryError> {
        let full = || format!("{LINK_PREFIX}{s}");
        let (key, domain) =
            s.split_once('@').ok_or_else(|| ParseEntryError::NoPublicKey(full()))?;
        let public_key =
            decode_public_key(key).ok_or_else(|| ParseEntryError::BadPublicKey(full()))?;
        if domain.is_empty() || domain.contains(char::is_whitespace) {
            return Err(ParseEntryError::EmptyDomain(full()));
        }
        Ok(Self { public_key, domain: domain.to_owned() })
    }
}

impl fmt::Display for LinkEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{LINK_PREFIX}{}@{}", encode_public_key(&self.public_key), self.domain)
    }
}

impl FromStr for LinkEntry {
    type Err = ParseEntryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix(LINK_PREFIX)
            .ok_or_else(|| ParseEntryError::UnknownEntry(s.to_owned()))?;
        Self::parse_value(rest)
    }
}

/// Any tree entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The root (only at the apex).
    Root(RootEntry),
    /// An inner node.
    Branch(BranchEntry),
    /// A link to another tree (only below `l=`).
    Link(LinkEntry),
    /// A node record (only below `e=`).
    Enr(NodeRecord),
}

impl Entry {
    /// A short name of the entry type, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Root(_) => "root",
            Self::Branch(_) => "branch",
            Self::Link(_) => "link",
            Self::Enr(_) => "enr",
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root(e) => e.fmt(f),
            Self::Branch(e) => e.fmt(f),
            Self::Link(e) => e.fmt(f),
            Self::Enr(e) => e.fmt(f),
        }
    }
}

impl FromStr for Entry {
    type Err = ParseEntryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with(ROOT_PREFIX) {
            s.parse().map(Self::Root)
        } else if s.starts_with(BRANCH_PREFIX) {
            s.parse().map(Self::Branch)
        } else if s.starts_with(LINK_PREFIX) {
            s.parse().map(Self::Link)
        } else if s.starts_with(ENR_PREFIX) {
            Ok(Self::Enr(s.parse()?))
        } else {
            Err(ParseEntryError::UnknownEntry(s.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrtree::{RecordError, label::subdomain};

    const GETH_TEST_KEY: &str = "AKPYQIUQIL7PSIACI32J7FGZW56E5FKHEFCCOFHILBIMW3M6LWXS2";

    // --- geth p2p/dnsdisc TestParseRoot ---

    #[test]
    fn root_without_link_root_is_a_syntax_error() {
        let s = "enrtree-root:v1 e=TO4Q75OQ2N7DX4EOOR7X66A6OM seq=3 sig=N-YY6UB9xD0hFx1Gmnt7v0RfSxch5tKyry2SRDoLx7B4GfPXagwLxQqyf7gAMvApFn_ORwZQekMWa_pXrcGCtw";
        assert!(matches!(s.parse::<RootEntry>(), Err(ParseEntryError::RootSyntax(_))));
    }

    #[test]
    fn root_with_64_byte_signature_parses_but_never_verifies_as_a_65_byte_one() {
        // geth rejects this at parse time (errInvalidSig); we accept 64 bytes when reading, as
        // reth and js-waku do, but we never emit them.
        let s = "enrtree-root:v1 e=TO4Q75OQ2N7DX4EOOR7X66A6OM l=TO4Q75OQ2N7DX4EOOR7X66A6OM seq=3 sig=N-YY6UB9xD0hFx1Gmnt7v0RfSxch5tKyry2SRDoLx7B4GfPXagwLxQqyf7gAMvApFn_ORwZQekMWa_pXrcGCtw";
        let root: RootEntry = s.parse().unwrap();
        assert_eq!(root.signature.as_ref().unwrap().as_bytes().len(), 64);
        assert_eq!(root.to_string(), s);
    }

    #[test]
    fn geth_valid_root_vector() {
        let s = "enrtree-root:v1 e=QFT4PBCRX4XQCV3VUYJ6BTCEPU l=JGUFMSAGI7KZYB3P7IZW4S5Y3A seq=3 sig=3FmXuVwpa8Y7OstZTx9PIb1mt8FrW7VpDOFv4AaGCsZ2EIHmhraWhe4NxYhQDlw5MjeFXYMbJjsPeKlHzmJREQE";
        let root: RootEntry = s.parse().unwrap();
        assert_eq!(root.seq, 3);
        assert_eq!(
            data_encoding::HEXLOWER.encode(root.signature.as_ref().unwrap().as_bytes()),
            "dc5997b95c296bc63b3acb594f1f4f21bd66b7c16b5bb5690ce16fe006860ac6761081e686b69685ee0dc588500e5c393237855d831b263b0f78a947ce62511101"
        );
        let signer =
            decode_public_key("AJNFGTPZ4QREVDTWY27RQ74LG6EBOOAHVCHC77RHPKHBVWUWONAJW").unwrap();
        root.verify(&signer).unwrap();
        assert_eq!(root.to_string(), s);
    }

    #[test]
    fn real_ethdisco_and_nethermind_roots_verify() {
        let key =
            decode_public_key("AKA3AM6LPBYEUDMVNU3BSVQJ5AD45Y7YPOHJLEF6W26QOE4VTUDPE").unwrap();
        for s in [
            // js-waku packages/discovery/src/dns/testdata.json
            "enrtree-root:v1 e=JORXBYVVM7AEKETX5DGXW44EAY l=FDXN3SN67NA5DKA4J2GOK7BVQI seq=1839 sig=Ma7yIqW2gj59dY8F6plfL7dfotaBPz285mu_XZK1e5VRzNrnf0pCAfacu4fBLuE7jMX-nDbqCM1sFiWWLq8WogE",
            // Nethermind EnrTreeParserTests
            "enrtree-root:v1 e=TPLRUM3FAKJZIRMXADWOHSU3PM l=FDXN3SN67NA5DKA4J2GOK7BVQI seq=2779 sig=CNoJofW_lNh7QFQkaVGhEX2ifbEZ3UkiBQCVyZCkM_I-72cEh8Bfd21cSS9BP5tyAqWF3jMVov8duUCdSByEQAE",
        ] {
            let root: RootEntry = s.parse().unwrap();
            root.verify(&key).unwrap();
        }
        // js-waku's bad-signature variant: first signature character M -> A.
        let bad = "enrtree-root:v1 e=JORXBYVVM7AEKETX5DGXW44EAY l=FDXN3SN67NA5DKA4J2GOK7BVQI seq=1839 sig=Aa7yIqW2gj59dY8F6plfL7dfotaBPz285mu_XZK1e5VRzNrnf0pCAfacu4fBLuE7jMX-nDbqCM1sFiWWLq8WogE";
        let root: RootEntry = bad.parse().unwrap();
        assert!(root.verify(&key).is_err());
    }

    // --- geth p2p/dnsdisc TestParseEntry ---

    #[test]
    fn branch_vectors() {
        assert!(matches!(
            "enrtree-branch:1,2".parse::<Entry>(),
            Err(ParseEntryError::InvalidHash(_))
        ));
        let long = format!("enrtree-branch:{}", "A".repeat(53));
        assert!(matches!(long.parse::<Entry>(), Err(ParseEntryError::InvalidHash(_))));
        assert_eq!("enrtree-branch:".parse::<Entry>(), Ok(Entry::Branch(BranchEntry::default())));
        assert_eq!(
            "enrtree-branch:AAAAAAAAAAAAAAAAAAAA".parse::<Entry>(),
            Ok(Entry::Branch(BranchEntry { children: vec!["AAAAAAAAAAAAAAAAAAAA".into()] }))
        );
        assert_eq!(
            "enrtree-branch:AAAAAAAAAAAAAAAAAAAA,BBBBBBBBBBBBBBBBBBBB".parse::<Entry>(),
            Ok(Entry::Branch(BranchEntry {
                children: vec!["AAAAAAAAAAAAAAAAAAAA".into(), "BBBBBBBBBBBBBBBBBBBB".into()]
            }))
        );
        assert!(",AAAAAAAAAAAAAAAAAAAA".parse::<BranchEntry>().is_err());
    }

    #[test]
    fn link_vectors() {
        let Ok(Entry::Link(link)) = format!("enrtree://{GETH_TEST_KEY}@nodes.example.org").parse()
        else {
            panic!("valid link did not parse");
        };
        assert_eq!(link.domain, "nodes.example.org");
        assert_eq!(encode_public_key(&link.public_key), GETH_TEST_KEY);
        assert!(matches!(
            "enrtree://nodes.example.org".parse::<Entry>(),
            Err(ParseEntryError::NoPublicKey(_))
        ));
        for bad in [
            "enrtree://AP62DT7WOTEQZGQZOU474PP3KMEGVTTE7A7NPRXKX3DUD57@nodes.example.org",
            "enrtree://AP62DT7WONEQZGQZOU474PP3KMEGVTTE7A7NPRXKX3DUD57TQHGIA@nodes.example.org",
        ] {
            assert!(matches!(bad.parse::<Entry>(), Err(ParseEntryError::BadPublicKey(_))), "{bad}");
        }
        assert!(matches!(
            format!("enrtree://{GETH_TEST_KEY}@").parse::<Entry>(),
            Err(ParseEntryError::EmptyDomain(_))
        ));
    }

    #[test]
    fn enr_vectors() {
        let valid = "enr:-HW4QES8QIeXTYlDzbfr1WEzE-XKY4f8gJFJzjJL-9D7TC9lJb4Z3JPRRz1lP4pL_N_QpT6rGQjAU9Apnc-C1iMP36OAgmlkgnY0iXNlY3AyNTZrMaED5IdwfMxdmR8W37HqSFdQLjDkIwBd4Q_MjxgZifgKSdM";
        let Ok(Entry::Enr(record)) = valid.parse::<Entry>() else { panic!("valid ENR rejected") };
        assert_eq!(record.to_string(), valid);
        let padded = "enr:-HW4QLZHjM4vZXkbp-5xJoHsKSbE7W39FPC8283X-y8oHcHPTnDDlIlzL5ArvDUlHZVDPgmFASrh7cWgLOLxj4wprRkHgmlkgnY0iXNlY3AyNTZrMaEC3t2jLMhDpCDX5mbSEwDn4L3iUfyXzoO8G28XvjGRkrAg=";
        assert!(matches!(
            padded.parse::<Entry>(),
            Err(ParseEntryError::Record(RecordError::Base64(_)))
        ));
        assert!(matches!("enr:-----".parse::<Entry>(), Err(ParseEntryError::Record(_))));
        // Trailing bytes after the RLP list: decodable, but not the canonical encoding.
        let mut bytes = data_encoding::BASE64URL_NOPAD.decode(&valid.as_bytes()[4..]).unwrap();
        bytes.push(0);
        let trailing = format!("enr:{}", data_encoding::BASE64URL_NOPAD.encode(&bytes));
        assert!(matches!(
            trailing.parse::<Entry>(),
            Err(ParseEntryError::Record(RecordError::NonCanonicalRlp))
        ));
    }

    #[test]
    fn unknown_entries() {
        for s in ["", "foo", "enrtree", "enrtree-x="] {
            assert!(matches!(s.parse::<Entry>(), Err(ParseEntryError::UnknownEntry(_))), "{s:?}");
        }
    }

    #[test]
    fn nim_enr_vector_decodes_to_listed_fields() {
        let s = "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RRcy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8";
        let record: NodeRecord = s.parse().unwrap();
        assert_eq!(record.seq(), 1);
        assert_eq!(record.enr().ip4(), Some(std::net::Ipv4Addr::LOCALHOST));
        assert_eq!(record.enr().udp4(), Some(30303));
        let key = crate::crypto::compressed_public_key(&record.enr().public_key());
        assert_eq!(
            data_encoding::HEXUPPER.encode(&key),
            "03CA634CAE0D49ACB401D8A4C6B6FE8C55B70D115BF400769CC1400F3258CD3138"
        );
    }

    #[test]
    fn eip_example_entries_hash_to_their_labels() {
        for (label, text) in [
            (
                "C7HRFPF3BLGF3YR4DY5KX3SMBE",
                "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@morenodes.example.org",
            ),
            (
                "JWXYDBPXYWG6FX3GMDIBFA6CJ4",
                "enrtree-branch:2XS2367YHAXJFGLZHVAWLQD4ZY,H4FHT4B454P6UXFD7JCYQ5PWDY,MHTDO6TMUBRIA2XWG5LUDACK24",
            ),
        ] {
            assert_eq!(subdomain(text), label);
            assert_eq!(text.parse::<Entry>().unwrap().to_string(), text);
        }
    }
}

/// Round trips `parse(to_string(x)) == x` for every entry type, and no decoder panics on any
/// input.
#[cfg(test)]
mod proptests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    fn label() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<u8>(), 12..=32)
            .prop_map(|bytes| data_encoding::BASE32_NOPAD.encode(&bytes))
    }

    fn key() -> impl Strategy<Value = SigningKey> {
        any::<[u8; 32]>().prop_filter_map("valid scalar", |b| SigningKey::from_slice(&b).ok())
    }

    fn domain() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?){0,4}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn root_round_trips(e in label(), l in label(), seq in any::<u64>(), key in key(), sign in any::<bool>()) {
            let mut root = RootEntry { enr_root: e, link_root: l, seq, signature: None };
            root.sign(&key);
            if !sign {
                // A 64-byte signature (as reth writes) round-trips too.
                let sig = root.signature.as_ref().unwrap().as_bytes()[..64].to_vec();
                root.signature = Some(RootSignature::from_bytes(&sig).unwrap());
            }
            let text = root.to_string();
            let parsed: RootEntry = text.parse().unwrap();
            prop_assert_eq!(&parsed, &root);
            prop_assert_eq!(parsed.to_string(), text);
            prop_assert!(parsed.verify(key.verifying_key()).is_ok());
        }

        #[test]
        fn branch_round_trips(children in proptest::collection::vec(label(), 0..14)) {
            let branch = BranchEntry { children };
            let text = branch.to_string();
            prop_assert_eq!(text.parse::<Entry>().unwrap(), Entry::Branch(branch));
        }

        #[test]
        fn link_round_trips(key in key(), domain in domain()) {
            let link = LinkEntry::new(*key.verifying_key(), domain);
            let text = link.to_string();
            prop_assert_eq!(text.parse::<Entry>().unwrap(), Entry::Link(link));
        }

        #[test]
        fn enr_round_trips(key in key(), seq in 1..u64::MAX, ip in any::<u32>(), tcp in any::<u16>(), udp in any::<u16>()) {
            let record = NodeRecord::sign(&key, seq, Ipv4Addr::from(ip), tcp, udp).unwrap();
            let text = record.to_string();
            let Entry::Enr(parsed) = text.parse::<Entry>().unwrap() else {
                return Err(TestCaseError::fail("not an enr entry"));
            };
            prop_assert_eq!(parsed.to_string(), text);
            prop_assert_eq!(parsed.node_id(), record.node_id());
            prop_assert_eq!(parsed.enr().tcp4(), Some(tcp));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let text = String::from_utf8_lossy(&bytes);
            for prefix in ["", ROOT_PREFIX, "enrtree-root:v1 e=", BRANCH_PREFIX, LINK_PREFIX, ENR_PREFIX, "enr:-"] {
                let _ = format!("{prefix}{text}").parse::<Entry>();
            }
            let _ = text.parse::<RootSignature>();
            let _ = super::super::label::decode_hash(&text);
            let _ = crate::keystore::Keystore::from_str(&text);
            let _ = super::super::request::SignRequest::from_json(&text);
            let _ = super::super::definition::TreeDefinition::from_json(Some(&text), &text);
        }

        #[test]
        fn mangled_records_are_rejected_or_canonical(key in key(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            // Flip one bit of a valid record's RLP: either it no longer decodes, or whatever
            // decodes prints back to exactly the text that was parsed.
            let record = NodeRecord::sign(&key, 1, Ipv4Addr::LOCALHOST, 1, 2).unwrap();
            let mut bytes = data_encoding::BASE64URL_NOPAD.decode(&record.as_str().as_bytes()[4..]).unwrap();
            let i = flip.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let text = format!("enr:{}", data_encoding::BASE64URL_NOPAD.encode(&bytes));
            if let Ok(parsed) = text.parse::<NodeRecord>() {
                prop_assert_eq!(parsed.to_string(), text);
            }
        }
    }
}
