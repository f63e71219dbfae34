//! The bodies of the fuzz targets, one function per target, each feeding untrusted bytes to the
//! code that reads them from the network or from disk, the way that code is called there.
//!
//! A body panics only on a bug: decoders must return errors, never panic, and what decodes must
//! survive the round trips asserted below. The targets in `fuzz_targets/` are one-line calls of
//! these functions; the main workspace's tests include this file (`tests/it/fuzz_corpus.rs`) and
//! replay every committed corpus file through the same functions on stable Rust.
//!
//! No inner attributes in this file: it is also compiled as a module of that test.

use std::{
    str::FromStr,
    sync::{LazyLock, OnceLock},
};

use contract::{enrolment::Enrolment, report::Report};
use controller::publish::{
    dns_server::ZoneCatalog,
    rfc2136::{Rfc2136Config, Rfc2136Publisher, TsigAlgorithm, TsigKey},
    zone::TxtZone,
};
use hickory_proto::{
    op::{Message, OpCode, Query},
    rr::{Name, RecordType, TSigner, rdata::tsig::TsigAlgorithm as WireAlgorithm},
};
use k256::ecdsa::SigningKey;
use node::{
    enrtree::{
        BranchEntry, Entry, LinkEntry, NodeRecord, RootEntry, Tree,
        label::{decode_hash, is_valid_hash, matches_label},
        signature::{RootSignature, decode_public_key},
    },
    keystore::Keystore,
    message::{DEFAULT_MAX_MESSAGE_SIZE, WakuMessage},
    waku_enr::{RelayShards, WakuEnr, decode_multiaddrs},
};
use prost::Message as _;

/// A fixed key, so that runs are reproducible: tree roots are verified against it, and the
/// DNS target's zone is a tree signed with it.
fn fixed_key() -> &'static SigningKey {
    static KEY: LazyLock<SigningKey> = LazyLock::new(|| {
        let mut bytes = [0u8; 32];
        bytes[31] = 7;
        SigningKey::from_slice(&bytes).expect("7 is a valid secp256k1 secret")
    });
    &KEY
}

/// `enr`: a node record as peer exchange carries it (RLP), as text (`enr:` + base64url, in
/// trees, reports and the CLI, through both our strict parser and the `enr` crate's), and the
/// Waku fields the node reads from it.
pub fn enr(data: &[u8]) {
    if let Ok(record) = NodeRecord::from_rlp(data) {
        assert_eq!(record.to_rlp(), data, "an accepted record is its canonical RLP");
        waku_fields(&record);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(record) = text.parse::<NodeRecord>() {
            assert_eq!(record.to_string(), text);
            let again = NodeRecord::from_rlp(&record.to_rlp()).expect("a record's RLP parses");
            assert_eq!(again, record);
            waku_fields(&record);
        }
        let _ = node::enrtree::record::Enr::from_str(text);
    }
    // The Waku values on their own, as any record can carry them.
    let _ = decode_multiaddrs(data);
    let _ = RelayShards::from_rs(data);
    let _ = RelayShards::from_rsv(data);
}

fn waku_fields(record: &NodeRecord) {
    if let Ok(waku) = WakuEnr::decode(record.enr()) {
        let _ = waku.dial_addresses();
        if let Some(shards) = &waku.shards {
            let _ = shards.topics();
        }
    }
}

/// `enrtree_entry`: every EIP-1459 entry as a tree client reads it from a TXT record, the root's
/// signature checked as a client checks it, and the label helpers.
pub fn enrtree_entry(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entry) = text.parse::<Entry>() {
        let printed = entry.to_string();
        assert_eq!(printed.parse::<Entry>().ok().as_ref(), Some(&entry), "{printed}");
        if let Entry::Root(root) = &entry {
            let _ = root.verify(fixed_key().verifying_key());
        }
    }
    if let Ok(root) = text.parse::<RootEntry>() {
        let _ = root.verify(fixed_key().verifying_key());
    }
    let _ = text.parse::<BranchEntry>();
    let _ = text.parse::<LinkEntry>();
    let _ = text.parse::<RootSignature>();
    let _ = decode_public_key(text);
    let _ = decode_hash(text);
    let _ = is_valid_hash(text);
    // A label and the entry it should name, split at the first space.
    if let Some((label, entry_text)) = text.split_once(' ') {
        let _ = matches_label(label, entry_text);
    }
}

/// `waku_protobufs`: every protobuf the node decodes from peers. The first byte chooses the
/// message; the rest is its body. What decodes must encode and decode to itself.
pub fn waku_protobufs(data: &[u8]) {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    match choice % 12 {
        0 => {
            if let Ok(message) = WakuMessage::decode_bounded(body, DEFAULT_MAX_MESSAGE_SIZE) {
                round_trip(&message);
                let _ = message.hash("/waku/2/rs/1/0");
                let _ = message.check_publishable(DEFAULT_MAX_MESSAGE_SIZE);
                let _ = message.content_topic.parse::<node::topics::ContentTopic>();
            }
        }
        1 => {
            if let Ok(metadata) = node::metadata::WakuMetadata::decode(body) {
                round_trip(&metadata);
                let _ = metadata.shard_list();
            }
        }
        2 => {
            if let Ok(request) = node::filter::FilterSubscribeRequest::decode(body) {
                round_trip(&request);
                if let Some(topic) = &request.pubsub_topic {
                    let _ = topic.parse::<node::topics::ShardTopic>();
                }
            }
        }
        3 => decode_round_trip::<node::filter::FilterSubscribeResponse>(body),
        4 => decode_round_trip::<node::filter::MessagePush>(body),
        5 => decode_round_trip::<node::lightpush::LightPushRequest>(body),
        6 => decode_round_trip::<node::lightpush::LightPushResponse>(body),
        7 => decode_round_trip::<node::lightpush::PushRpc>(body),
        8 => {
            if let Ok(rpc) = node::peer_exchange::PeerExchangeRpc::decode(body) {
                round_trip(&rpc);
                for record in rpc.records() {
                    waku_fields(&record);
                }
            }
        }
        9 => {
            if let Ok(request) = node::store::proto::StoreQueryRequest::decode(body) {
                round_trip(&request);
                let _ = node::store::busy(&request);
            }
        }
        10 => decode_round_trip::<node::store::proto::StoreQueryResponse>(body),
        _ => {
            // The length-prefixed framing every request-response protocol reads first.
            let mut reader = futures::io::Cursor::new(body);
            let _ = futures::executor::block_on(node::codec::read_length_prefixed(
                &mut reader,
                node::metadata::MAX_SIZE,
            ));
        }
    }
}

fn decode_round_trip<M: prost::Message + Default + PartialEq + std::fmt::Debug>(body: &[u8]) {
    if let Ok(message) = M::decode(body) {
        round_trip(&message);
    }
}

fn round_trip<M: prost::Message + Default + PartialEq + std::fmt::Debug>(message: &M) {
    let again = M::decode(message.encode_to_vec().as_slice()).expect("our encoding decodes");
    assert_eq!(&again, message);
}

/// `report_json`: a report body as the controller reads it: parsed, checked (freshness against
/// its own `sentAt`, so the bounds behind it are reached), its ENR parsed, and stored.
pub fn report_json(data: &[u8]) {
    let Ok(report) = serde_json::from_slice::<Report>(data) else {
        return;
    };
    let checked = report.check(report.sent_at, 300, 10);
    let _ = report.known_services();
    let _ = report.enr.parse::<NodeRecord>();
    if let Ok(stored) = report.to_stored() {
        // The stored text is read back later (dashboard, health): it must parse, and pass
        // the same checks when the original did.
        let back: Report = serde_json::from_str(&stored).expect("a stored report parses");
        if checked.is_ok() {
            assert_eq!(back.check(back.sent_at, 300, 10), Ok(()), "{stored}");
        }
    }
}

/// `enrolment_json`: an enrolment body as the controller reads it, with its ENR, freshness and
/// request-signature header paths.
pub fn enrolment_json(data: &[u8]) {
    // The signature header is untrusted text too; here it is the body's first line.
    let header = data.split(|&b| b == b'\n').next().and_then(|l| std::str::from_utf8(l).ok());
    let _ = contract::signing::recover(data, header);
    let Ok(enrolment) = serde_json::from_slice::<Enrolment>(data) else {
        return;
    };
    let _ = contract::report::check_fresh(enrolment.sent_at, 0, 300, 10);
    let _ = enrolment.enr.parse::<NodeRecord>();
    let text = serde_json::to_string(&enrolment).expect("an enrolment serialises");
    let back: Enrolment = serde_json::from_str(&text).expect("a serialised enrolment parses");
    assert_eq!(back, enrolment);
}

/// The zone the DNS target asks: a signed tree of three records under `nodes.fleet.test`.
pub fn dns_zone() -> TxtZone {
    let records = (1u8..=3)
        .map(|i| {
            let mut secret = [0u8; 32];
            secret[31] = i;
            let key = SigningKey::from_slice(&secret).expect("a small secret is valid");
            let ip = std::net::Ipv4Addr::new(10, 0, 0, i);
            NodeRecord::sign(&key, 1, ip, 60000, 9000).expect("a record signs")
        })
        .collect();
    let mut tree = Tree::build(1, records, Vec::new()).expect("a tree builds");
    tree.sign(fixed_key(), "nodes.fleet.test");
    TxtZone::from_tree(&tree, "nodes.fleet.test", 60, 3600)
}

fn zone_catalog() -> &'static ZoneCatalog {
    static CATALOG: OnceLock<ZoneCatalog> = OnceLock::new();
    CATALOG.get_or_init(|| ZoneCatalog::new(vec![dns_zone()]).expect("the zone is valid"))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().build().expect("a runtime starts")
    })
}

/// `dns_request`: a query to the built-in DNS server, through hickory's decoding and the
/// served catalog. The first byte's low bit chooses TCP (otherwise UDP, whose answers are
/// size-limited). Over UDP, an answer the server precomputed (`prebuilt`) must be one the
/// catalog gives too: the same header, the same records.
pub fn dns_request(data: &[u8]) {
    let Some((&flags, request)) = data.split_first() else {
        return;
    };
    let over_tcp = flags & 1 == 1;
    let full = runtime().block_on(zone_catalog().answer(request, over_tcp));
    if let Some(answer) = &full {
        Message::from_vec(answer).expect("our answer decodes");
    }
    if over_tcp {
        return;
    }
    if let Some(fast) = zone_catalog().prebuilt_answer(request) {
        let fast = Message::from_vec(&fast).expect("a precomputed answer decodes");
        let full = full.expect("the catalog answers what the table answers");
        let full = Message::from_vec(&full).expect("our answer decodes");
        assert_eq!(fast.metadata, full.metadata, "the same header");
        let data = |m: &Message| m.answers.iter().map(|r| r.data.clone()).collect::<Vec<_>>();
        assert_eq!(data(&fast), data(&full), "the same records");
        assert_eq!(fast.edns.map(|e| e.max_payload()), full.edns.map(|e| e.max_payload()));
    }
}

/// The secret the RFC 2136 target signs with (seed answers are signed with it too).
pub const RFC2136_SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-sec";
/// The TSIG key name of the RFC 2136 target.
pub const RFC2136_KEY_NAME: &str = "k";
/// The signing time of the RFC 2136 target's requests, fixed so that runs are reproducible.
pub const RFC2136_TIME: u64 = 1_700_000_000;

/// The signed UPDATE request the RFC 2136 target checks answers against (the id is the answer's,
/// so that the fuzzer reaches past the id check).
pub fn rfc2136_request(id: u16) -> (Message, TSigner) {
    let signer = TSigner::new(
        RFC2136_SECRET.to_vec(),
        WireAlgorithm::HmacSha256,
        Name::from_ascii(format!("{RFC2136_KEY_NAME}.")).expect("a valid key name"),
        300,
    )
    .expect("HMAC-SHA256 signs");
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.op_code = OpCode::Update;
    message.metadata.recursion_desired = false;
    let zone = Name::from_ascii("fleet.test.").expect("a valid zone");
    message.add_query(Query::query(zone, RecordType::SOA));
    (message, signer)
}

fn rfc2136_publisher(signed: bool) -> &'static Rfc2136Publisher {
    static PUBLISHERS: OnceLock<[Rfc2136Publisher; 2]> = OnceLock::new();
    let publishers = PUBLISHERS.get_or_init(|| {
        let publisher = |tsig| {
            let config = Rfc2136Config::new(([127, 0, 0, 1], 53).into(), "fleet.test", tsig);
            Rfc2136Publisher::new(config).expect("a valid configuration")
        };
        let key =
            TsigKey::new(RFC2136_KEY_NAME, TsigAlgorithm::HmacSha256, RFC2136_SECRET.to_vec())
                .expect("a valid key");
        [publisher(None), publisher(Some(key))]
    });
    &publishers[usize::from(signed)]
}

/// `rfc2136_answer`: a DNS server's answer to one of our UPDATE messages. The first byte's low
/// bit chooses a signed update (the answer must then carry a valid TSIG signature).
pub fn rfc2136_answer(data: &[u8]) {
    let Some((&flags, answer)) = data.split_first() else {
        return;
    };
    let signed = flags & 1 == 1;
    let id = match answer {
        [high, low, ..] => u16::from_be_bytes([*high, *low]),
        _ => 0,
    };
    let verifier = if signed {
        let (mut request, signer) = rfc2136_request(id);
        request.finalize(&signer, RFC2136_TIME).expect("the request signs")
    } else {
        None
    };
    let _ = rfc2136_publisher(signed).check_answer(id, answer, verifier);
}

/// `keystore_json`: a keystore file, parsed and validated (never decrypted: the KDF is slow by
/// design). What parses must print and parse to itself.
pub fn keystore_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(keystore) = text.parse::<Keystore>() {
        let printed = keystore.to_string();
        assert_eq!(printed.parse::<Keystore>().ok().as_ref(), Some(&keystore), "{printed}");
        let _ = keystore.address();
    }
}
