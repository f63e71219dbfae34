//! The fuzz targets' corpora on stable Rust: every file under `fuzz/corpus/<target>/` (inputs
//! the fuzzer kept for new coverage, seeds, and fixed crashes) goes through the target's own
//! body, `fuzz/src/lib.rs`, so `cargo test` keeps all of them as regression tests without
//! nightly or libFuzzer.
//!
//! `write_seed_corpora` (ignored) wrote the seeds, from the real encoders, before the fuzzer
//! grew the corpora: `cargo test --test it fuzz_corpus::write_seed_corpora -- --ignored`.

use std::{
    fs,
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
};

#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod bodies;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

/// Runs every file of `target`'s corpus through `body`; fails naming each input that panics.
fn replay(target: &str, body: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> =
        fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = fs::read(file).unwrap();
            catch_unwind(AssertUnwindSafe(|| body(&data))).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: inputs that panic: {failed:#?}");
}

#[test]
fn enr_corpus() {
    replay("enr", bodies::enr);
}

#[test]
fn enrtree_entry_corpus() {
    replay("enrtree_entry", bodies::enrtree_entry);
}

#[test]
fn waku_protobufs_corpus() {
    replay("waku_protobufs", bodies::waku_protobufs);
}

#[test]
fn report_json_corpus() {
    replay("report_json", bodies::report_json);
}

#[test]
fn enrolment_json_corpus() {
    replay("enrolment_json", bodies::enrolment_json);
}

#[test]
fn dns_request_corpus() {
    replay("dns_request", bodies::dns_request);
}

#[test]
fn rfc2136_answer_corpus() {
    replay("rfc2136_answer", bodies::rfc2136_answer);
}

#[test]
fn keystore_json_corpus() {
    replay("keystore_json", bodies::keystore_json);
}

/// Writes the seed inputs of every target (`seed-*` files), built with the encoders the node
/// and the controller use, so the fuzzer starts from valid messages.
#[test]
#[ignore = "writes fuzz/corpus; run by hand when the wire formats change"]
fn write_seed_corpora() {
    use hickory_proto::{
        op::{Edns, Message, OpCode, Query},
        rr::{Name, RecordType, TSigResponseContext},
    };
    use k256::ecdsa::SigningKey;
    use node::{
        enrtree::{LinkEntry, NodeRecord, Tree},
        message::WakuMessage,
        waku_enr::{Capabilities, RelayShards, WakuEnrConfig, build_enr, encode_multiaddrs},
    };
    use prost::Message as _;

    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    };
    let key = |i: u8| {
        let mut secret = [0u8; 32];
        secret[31] = i;
        SigningKey::from_slice(&secret).unwrap()
    };

    // enr: EIP-778 and js-waku vectors, and a Waku record with every Waku field.
    let vectors = [
        "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RRcy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8",
        "enr:-KO4QANhx2beNpDw8LfX8hdyoNocMD5WCBY28EjKA50DyJv9QDxE5IWafE_O_nhbA31gmasx3WjpH517do3GqmzQvmaAgmlkgnY0gmlwhMCosvuKbXVsdGlhZGRyc4wACgTAqLL7Bh9C3QOJc2VjcDI1NmsxoQOmp7OJvC-UX4KeIJDW1CQQvhSA33OWgRrKccOcTG7dYYN0Y3CCH0KFd2FrdTIB",
    ];
    let multiaddrs = vec![
        "/dns4/node.example.org/tcp/443/wss".parse().unwrap(),
        "/ip4/10.0.0.1/tcp/8000/ws".parse().unwrap(),
    ];
    let config = WakuEnrConfig {
        seq: 5,
        ip: Some([10, 0, 0, 1].into()),
        tcp: Some(60000),
        udp: Some(9000),
        capabilities: Capabilities::RELAY | Capabilities::STORE,
        multiaddrs: multiaddrs.clone(),
        shards: Some(RelayShards::new(1, vec![0, 1, 7])),
    };
    let waku: NodeRecord = build_enr(&key(9), &config).unwrap().to_base64().parse().unwrap();
    let mut records: Vec<NodeRecord> = vectors.iter().map(|s| s.parse().unwrap()).collect();
    records.push(waku.clone());
    for (i, record) in records.iter().enumerate() {
        write("enr", &format!("text-{i}"), record.as_str().as_bytes());
        write("enr", &format!("rlp-{i}"), &record.to_rlp());
    }
    write("enr", "multiaddrs", &encode_multiaddrs(&multiaddrs).unwrap());
    write("enr", "rs", &RelayShards::new(1, vec![0, 1, 7]).to_rs().unwrap());
    let mut rsv = vec![0u8; 130];
    rsv[1] = 16;
    rsv[2] = 0b1000_0011;
    write("enr", "rsv", &rsv);

    // enrtree_entry: every entry of a signed tree with a link, and geth's root vector.
    let link = LinkEntry::new(*key(8).verifying_key(), "morenodes.example.org");
    let mut tree = Tree::build(3, records, vec![link]).unwrap();
    tree.sign(&key(7), "nodes.example.org");
    for (i, text) in tree.to_txt("nodes.example.org").values().enumerate() {
        write("enrtree_entry", &format!("tree-{i}"), text.as_bytes());
    }
    write(
        "enrtree_entry",
        "geth-root",
        b"enrtree-root:v1 e=QFT4PBCRX4XQCV3VUYJ6BTCEPU l=JGUFMSAGI7KZYB3P7IZW4S5Y3A seq=3 sig=3FmXuVwpa8Y7OstZTx9PIb1mt8FrW7VpDOFv4AaGCsZ2EIHmhraWhe4NxYhQDlw5MjeFXYMbJjsPeKlHzmJREQE",
    );

    // waku_protobufs: one message of each kind, behind its selector byte.
    let message = WakuMessage {
        meta: Some(vec![1, 2, 3]),
        version: Some(0),
        ephemeral: Some(false),
        ..WakuMessage::new("/app/1/chat/proto", b"hello".to_vec(), 1_700_000_000_000_000_000)
    };
    let topic = Some("/waku/2/rs/1/0".to_owned());
    let protobufs: Vec<(u8, Vec<u8>)> = vec![
        (0, message.encode_to_vec()),
        (1, node::metadata::WakuMetadata::new(1, &[0, 7]).encode_to_vec()),
        (
            2,
            node::filter::FilterSubscribeRequest {
                request_id: "r1".into(),
                filter_subscribe_type: 1,
                pubsub_topic: topic.clone(),
                content_topics: vec!["/app/1/chat/proto".into()],
            }
            .encode_to_vec(),
        ),
        (
            3,
            node::filter::FilterSubscribeResponse {
                request_id: "r1".into(),
                status_code: 200,
                status_desc: Some("OK".into()),
            }
            .encode_to_vec(),
        ),
        (
            4,
            node::filter::MessagePush {
                waku_message: Some(message.clone()),
                pubsub_topic: topic.clone(),
            }
            .encode_to_vec(),
        ),
        (
            5,
            node::lightpush::LightPushRequest {
                request_id: "r2".into(),
                pubsub_topic: topic.clone(),
                message: Some(message.clone()),
            }
            .encode_to_vec(),
        ),
        (
            6,
            node::lightpush::LightPushResponse {
                request_id: "r2".into(),
                status_code: 200,
                status_desc: None,
                relay_peer_count: Some(3),
            }
            .encode_to_vec(),
        ),
        (
            7,
            node::lightpush::PushRpc {
                request_id: "r3".into(),
                request: Some(node::lightpush::PushRequest {
                    pubsub_topic: "/waku/2/rs/1/0".into(),
                    message: Some(message.clone()),
                }),
                response: None,
            }
            .encode_to_vec(),
        ),
        (8, node::peer_exchange::PeerExchangeRpc::respond(&[waku]).encode_to_vec()),
        (
            9,
            node::store::proto::StoreQueryRequest {
                request_id: "r4".into(),
                include_data: true,
                pubsub_topic: topic.clone(),
                content_topics: vec!["/app/1/chat/proto".into()],
                time_start: Some(1),
                time_end: Some(2),
                pagination_cursor: Some(vec![7; 32]),
                pagination_limit: Some(20),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            10,
            node::store::proto::StoreQueryResponse {
                request_id: "r4".into(),
                status_code: Some(200),
                status_desc: Some("OK".into()),
                messages: vec![node::store::proto::WakuMessageKeyValue {
                    message_hash: Some(message.hash("/waku/2/rs/1/0").0.to_vec()),
                    message: Some(message.clone()),
                    pubsub_topic: topic,
                }],
                pagination_cursor: None,
            }
            .encode_to_vec(),
        ),
        (11, vec![0x05, 1, 2, 3, 4, 5]),
    ];
    for (choice, body) in protobufs {
        write("waku_protobufs", &format!("{choice}"), &[&[choice][..], &body].concat());
    }

    // report_json and enrolment_json: what agents send.
    let enr_text = vectors[0];
    let report = serde_json::json!({
        "version": 1,
        "nodeId": "a448f24c6d18e575453db13171562b71999873db5b286df957af199ec94617f7",
        "counter": 42, "sentAt": 1_700_000_000_000_i64, "measuredAt": 1_699_999_999_000_i64,
        "enr": enr_text, "services": ["relay", "store"], "shards": [0, 1], "clusterId": 1,
        "figures": {
            "peersInbound": 3, "peersOutbound": 5,
            "peersByProtocol": { "/vac/waku/relay/2.0.0": 6 }, "relayPeers": 6,
            "meshPerShard": { "/waku/2/rs/1/0": 4 }, "fleetShare": 0.5,
            "bootstrapSeconds": 2.5, "inboundSeen": true, "discv5Table": 12,
            "messagesInPerSec": 1.25, "messagesOutPerSec": 0.0,
            "storeProbe": { "ok": true, "latencyMs": 12.5, "error": null },
            "restarts": 1, "errors": ["dial failed"],
            "config": { "version": 2, "applied": false, "error": "bad shard" },
            "merged": 2, "measuredFrom": 1_699_999_990_000_i64
        }
    });
    write("report_json", "full", serde_json::to_string(&report).unwrap().as_bytes());
    write(
        "report_json",
        "minimal",
        br#"{"version":1,"nodeId":"ab","counter":1,"sentAt":1,"measuredAt":1,"enr":"enr:x","roles":["relay"]}"#,
    );
    let enrolment = serde_json::json!({
        "token": "wft_0123456789abcdef", "enr": enr_text, "label": "node-1",
        "sentAt": 1_700_000_000_000_i64
    });
    write("enrolment_json", "full", serde_json::to_string(&enrolment).unwrap().as_bytes());

    // dns_request: what tree clients ask (TXT at the root and at a leaf, with and without
    // EDNS, over UDP and TCP), and a name outside the zone.
    let zone = bodies::dns_zone();
    let leaf = zone.records.iter().map(|r| r.name.clone()).find(|n| n.contains('.')).unwrap();
    let leaf = format!("{}.nodes.fleet.test.", leaf.split('.').next().unwrap());
    for (i, (name, edns, tcp)) in [
        ("nodes.fleet.test.", false, false),
        ("nodes.fleet.test.", true, true),
        (leaf.as_str(), true, false),
        ("other.example.", false, false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut query = Message::query();
        query.metadata.id = 0x1234;
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::TXT));
        if edns {
            let mut options = Edns::new();
            options.set_max_payload(1232);
            query.set_edns(options);
        }
        write(
            "dns_request",
            &format!("{i}"),
            &[&[u8::from(tcp)][..], &query.to_vec().unwrap()].concat(),
        );
    }

    // rfc2136_answer: NOERROR unsigned, NOERROR signed with the target's key, and REFUSED.
    let id = 0x4242;
    let (mut request, signer) = bodies::rfc2136_request(id);
    request.finalize(&signer, bodies::RFC2136_TIME).unwrap();
    let answer = Message::response(id, OpCode::Update);
    write("rfc2136_answer", "unsigned", &[&[0][..], &answer.to_vec().unwrap()].concat());
    let request_mac = request.signature().unwrap().data.mac.clone();
    let tsig = TSigResponseContext::new(id, bodies::RFC2136_TIME, signer, request_mac, None)
        .sign(&answer.to_vec().unwrap())
        .unwrap();
    let mut signed = answer.clone();
    signed.set_signature(tsig);
    write("rfc2136_answer", "signed", &[&[1][..], &signed.to_vec().unwrap()].concat());
    let mut refused = Message::response(id, OpCode::Update);
    refused.metadata.response_code = hickory_proto::op::ResponseCode::Refused;
    write("rfc2136_answer", "refused", &[&[0][..], &refused.to_vec().unwrap()].concat());

    // keystore_json: geth's light scrypt and pbkdf2 test keystores.
    let password = b"testpassword";
    let scrypt =
        node::keystore::Keystore::encrypt(&key(3), password, node::keystore::KdfStrength::Light)
            .unwrap();
    write("keystore_json", "scrypt", scrypt.to_string().as_bytes());
    write("keystore_json", "pbkdf2", PBKDF2_KEYSTORE.as_bytes());
}

/// The pbkdf2 test vector of the Web3 Secret Storage definition.
const PBKDF2_KEYSTORE: &str = r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"6087dab2f9fdbbfaddc31a909735c1e6"},"ciphertext":"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46","kdf":"pbkdf2","kdfparams":{"c":262144,"dklen":32,"prf":"hmac-sha256","salt":"ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"},"mac":"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"},"id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;
