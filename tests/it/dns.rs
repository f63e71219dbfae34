//! The tree client against the built-in authoritative server, over real UDP and TCP sockets on
//! 127.0.0.1, and the server checked with `dig` and `kdig`.

use std::net::SocketAddr;

use controller::publish::{dns_server::DnsServer, zone::TxtZone};
use node::{
    crypto::generate_key,
    dnsdisc::{ClientConfig, EntryErrorKind, HickoryTxtResolver, TreeClient, TxtResolver},
    enrtree::{LinkEntry, Tree, label::subdomain},
};

use crate::helpers::{long_record, records, tool};

const ANY: &str = "127.0.0.1:0";

fn addr() -> SocketAddr {
    ANY.parse().unwrap()
}

/// Two trees, the first linking to the second, each with multi-string records.
fn linked_trees() -> (Tree, LinkEntry, Tree, LinkEntry) {
    let mut linked = Tree::build(3, [records(15), vec![long_record()]].concat(), vec![]).unwrap();
    let linked_url = linked.sign(&generate_key(), "more.fleet.test");
    let mut main = Tree::build(
        9,
        [records(30), vec![long_record(), long_record()]].concat(),
        vec![linked_url.clone()],
    )
    .unwrap();
    let main_url = main.sign(&generate_key(), "nodes.fleet.test");
    (main, main_url, linked, linked_url)
}

#[tokio::test]
async fn resolves_a_served_tree_with_links_and_multi_string_records() {
    let (main, main_url, linked, linked_url) = linked_trees();
    let zones = vec![
        TxtZone::from_tree(&main, &main_url.domain, 60, 86_400),
        TxtZone::from_tree(&linked, &linked_url.domain, 60, 86_400),
    ];
    let server = DnsServer::start(addr(), zones).await.unwrap();
    let resolver = HickoryTxtResolver::with_server(server.local_addr()).unwrap();
    let resolution = TreeClient::new(resolver, ClientConfig::default()).resolve(&main_url).await;

    assert_eq!(resolution.trees.len(), 2, "the link is followed");
    assert_eq!(resolution.errors().count(), 0, "{:?}", resolution.errors().collect::<Vec<_>>());
    assert_eq!(resolution.trees[0].root.as_ref().unwrap().seq, 9);
    assert_eq!(resolution.trees[1].root.as_ref().unwrap().seq, 3);
    let mut got: Vec<String> = resolution.records().iter().map(ToString::to_string).collect();
    let mut want: Vec<String> =
        main.records().iter().chain(linked.records()).map(ToString::to_string).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every record arrives intact, long ones re-joined");
    server.shutdown().await;
}

#[tokio::test]
async fn planted_bad_entries_are_reported_and_the_rest_resolved() {
    // A hand-made tree: five good leaves, geth's bad `enr:-----` leaf (whose label matches its
    // text, so it fails as a record), and one label whose TXT is another record's text.
    let good = records(6);
    let swapped = subdomain(good[5].as_str());
    let mut labels: Vec<String> = good[..5].iter().map(|r| subdomain(r.as_str())).collect();
    labels.push("INDMVBZEEQ4ESVYAKGIYU74EAA".into());
    labels.push(swapped.clone());
    let branch = format!("enrtree-branch:{}", labels.join(","));
    let key = generate_key();
    let mut root = node::enrtree::RootEntry {
        enr_root: subdomain(&branch),
        link_root: subdomain("enrtree-branch:"),
        seq: 1,
        signature: None,
    };
    root.sign(&key);
    let domain = "bad.fleet.test";
    let mut zone = TxtZone::new(domain, 1);
    zone.push(domain, 60, root.to_string());
    zone.push(&format!("{}.{domain}", root.enr_root), 60, branch);
    zone.push(&format!("{}.{domain}", root.link_root), 60, "enrtree-branch:");
    for record in &good[..5] {
        zone.push(&format!("{}.{domain}", subdomain(record.as_str())), 60, record.to_string());
    }
    zone.push(&format!("INDMVBZEEQ4ESVYAKGIYU74EAA.{domain}"), 60, "enr:-----");
    zone.push(&format!("{swapped}.{domain}"), 60, good[0].to_string());

    let server = DnsServer::start(addr(), vec![zone]).await.unwrap();
    let resolver = HickoryTxtResolver::with_server(server.local_addr()).unwrap();
    let url = LinkEntry::new(*key.verifying_key(), domain);
    let resolved = TreeClient::new(resolver, ClientConfig::default()).resolve(&url).await;
    let tree = &resolved.trees[0];
    assert_eq!(tree.records.len(), 5, "all good records are kept");
    assert_eq!(tree.errors.len(), 2, "{:?}", tree.errors);
    for error in &tree.errors {
        if error.name == format!("INDMVBZEEQ4ESVYAKGIYU74EAA.{domain}") {
            assert!(matches!(error.kind, EntryErrorKind::Parse(_)), "{error}");
        } else {
            assert_eq!(error.name, format!("{swapped}.{domain}"));
            assert_eq!(error.kind, EntryErrorKind::HashMismatch);
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn truncated_udp_answers_are_retried_over_tcp() {
    // 900 characters at a long name: far over 512 bytes, so the UDP answer is truncated.
    let origin = format!("{}.fleet.test", "x".repeat(60));
    let text = "t".repeat(900);
    let mut zone = TxtZone::new(&origin, 1);
    zone.push(&format!("big.{origin}"), 60, text.clone());
    let server = DnsServer::start(addr(), vec![zone]).await.unwrap();
    let port = server.local_addr().port().to_string();

    let resolver = HickoryTxtResolver::with_server(server.local_addr()).unwrap();
    assert_eq!(resolver.lookup_txt(&format!("big.{origin}")).await.unwrap(), vec![text.clone()]);

    // dig confirms the server sets TC over UDP and answers in full over TCP.
    let name = format!("big.{origin}");
    let udp = tool("dig", &["@127.0.0.1", "-p", &port, "+noedns", "+ignore", "TXT", &name]).await;
    assert!(udp.contains(" tc"), "UDP answer should be truncated:\n{udp}");
    let tcp = tool("dig", &["@127.0.0.1", "-p", &port, "+tcp", "+short", "TXT", &name]).await;
    assert_eq!(unquote(&tcp), text);
    server.shutdown().await;
}

#[tokio::test]
async fn dig_and_kdig_see_multi_string_txt_soa_and_an_authoritative_answer() {
    let record = long_record();
    let mut tree = Tree::build(4, vec![record.clone()], vec![]).unwrap();
    let url = tree.sign(&generate_key(), "dig.fleet.test");
    let zone = TxtZone::from_tree(&tree, &url.domain, 60, 86_400);
    let server = DnsServer::start(addr(), vec![zone]).await.unwrap();
    let port = server.local_addr().port().to_string();

    let leaf = format!("{}.dig.fleet.test", subdomain(record.as_str()));
    let short = tool("dig", &["@127.0.0.1", "-p", &port, "+short", "TXT", &leaf]).await;
    assert_eq!(short.trim().matches("\" \"").count(), 1, "two character-strings: {short}");
    assert_eq!(unquote(&short), record.as_str());

    let full = tool("kdig", &["@127.0.0.1", "-p", &port, "TXT", "dig.fleet.test"]).await;
    assert!(
        full.to_ascii_lowercase().contains("flags: qr aa"),
        "authoritative answer expected:\n{full}"
    );
    assert!(full.contains(&tree.root().to_string()), "{full}");
    let soa = tool("kdig", &["@127.0.0.1", "-p", &port, "+short", "SOA", "dig.fleet.test"]).await;
    assert!(soa.trim().ends_with(" 4 3600 600 86400 60"), "SOA serial is the seq: {soa}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_zone_swap_is_atomic_and_unknown_zones_are_refused() {
    let mut first = Tree::build(1, records(20), vec![]).unwrap();
    let key = generate_key();
    let url = first.sign(&key, "swap.fleet.test");
    let server =
        DnsServer::start(addr(), vec![TxtZone::from_tree(&first, &url.domain, 60, 86_400)])
            .await
            .unwrap();
    let mut second = Tree::build(2, records(7), vec![]).unwrap();
    second.sign(&key, &url.domain);
    server.replace(&TxtZone::from_tree(&second, &url.domain, 60, 86_400)).await.unwrap();

    let resolver = HickoryTxtResolver::with_server(server.local_addr()).unwrap();
    let roots = resolver.lookup_txt("swap.fleet.test").await.unwrap();
    assert_eq!(roots, vec![second.root().to_string()], "exactly one root, the new one");
    let resolved = TreeClient::new(resolver, ClientConfig::default()).resolve(&url).await;
    assert_eq!(resolved.records().len(), 7);

    let other = TxtZone::new("other.test", 1);
    assert!(server.replace(&other).await.is_err());
    server.shutdown().await;
}

/// Joins dig's `"a" "b"` output into one string.
fn unquote(dig_short: &str) -> String {
    dig_short.trim().trim_matches('"').split("\" \"").collect()
}

/// A TXT query for `name`, as a stub sends it (no EDNS).
fn txt_query(id: u16, name: &str) -> Vec<u8> {
    let mut packet = [id.to_be_bytes().as_slice(), &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]].concat();
    for label in name.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.extend_from_slice(&[0, 0, 16, 0, 1]);
    packet
}

/// Response-rate limiting: a flood of spoofable UDP queries from one /24 gets its rate in
/// answers, then empty TC=1 answers no larger than the queries (every second limited one, with
/// slip 2) and silence; meanwhile a client on another /24 resolves the whole tree, its own
/// burst past the rate finishing over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_flood_from_one_prefix_is_limited_while_another_client_resolves() {
    use controller::publish::response_rate::RateLimit;
    let (main, main_url, linked, linked_url) = linked_trees();
    let zones = vec![
        TxtZone::from_tree(&main, &main_url.domain, 60, 86_400),
        TxtZone::from_tree(&linked, &linked_url.domain, 60, 86_400),
    ];
    let limit = RateLimit { responses_per_second: 20, slip: 2, limit_loopback: true };
    let server = DnsServer::start_limited(addr(), zones, Default::default(), limit).await.unwrap();
    let target = server.local_addr();

    // The flood: 1,000 queries for the root as fast as one socket sends them, from 127.0.9.9.
    let flooder = std::sync::Arc::new(tokio::net::UdpSocket::bind("127.0.9.9:0").await.unwrap());
    let query = txt_query(1, &main_url.domain);
    // Answers are read as they come, so none is lost to the socket's buffer.
    let reader = {
        let flooder = flooder.clone();
        tokio::spawn(async move {
            let (mut answered, mut truncated, mut largest_truncated) = (0, 0, 0);
            let mut buffer = [0u8; 4096];
            while let Ok(Ok((len, _))) = tokio::time::timeout(
                std::time::Duration::from_millis(1_500),
                flooder.recv_from(&mut buffer),
            )
            .await
            {
                let answers = u16::from_be_bytes([buffer[6], buffer[7]]);
                if buffer[2] & 0x02 != 0 {
                    assert_eq!(answers, 0, "a slipped answer carries no records");
                    truncated += 1;
                    largest_truncated = largest_truncated.max(len);
                } else {
                    assert_eq!(answers, 1);
                    answered += 1;
                }
            }
            (answered, truncated, largest_truncated)
        })
    };
    let sender = {
        let flooder = flooder.clone();
        let query = query.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            for _ in 0..1_000 {
                flooder.send_to(&query, target).await.unwrap();
                tokio::task::yield_now().await;
            }
            started.elapsed()
        })
    };
    // Meanwhile the tree client, from 127.0.0.1, resolves both trees (about 40 queries).
    let resolver = HickoryTxtResolver::with_server(target).unwrap();
    let resolution = TreeClient::new(resolver, ClientConfig::default()).resolve(&main_url).await;
    let flood_time = sender.await.unwrap();
    let (answered, truncated, largest_truncated) = reader.await.unwrap();
    let silent = 1_000 - answered - truncated;
    eprintln!(
        "flood: {answered} answered, {truncated} truncated, {silent} silent in {flood_time:?}"
    );
    let allowed = 20 + (flood_time.as_secs_f64() * 20.0).ceil() as usize + 20;
    assert!((20..=allowed).contains(&answered), "{answered} answered of 1,000 in {flood_time:?}");
    let limited = server.limited();
    // Under the flood some queries never reach the server (its socket buffer overflows).
    let decided = limited.slipped as usize + limited.dropped as usize + answered;
    // The resolving client shares 127.0.0.0/24's limit here (limit-loopback), so its own
    // slipped queries count too.
    assert!((200..=1_100).contains(&decided), "{limited:?}, {answered} answered");
    assert!(limited.slipped.abs_diff(limited.dropped) <= 4, "slip 2: {limited:?}");
    assert!(truncated > 100 && truncated <= limited.slipped as usize, "{truncated}: {limited:?}");
    assert!(silent > 300, "{silent} silent");
    assert!(largest_truncated <= query.len(), "{largest_truncated} > {} bytes", query.len());

    assert_eq!(resolution.errors().count(), 0, "{:?}", resolution.errors().collect::<Vec<_>>());
    assert_eq!(resolution.records().len(), main.records().len() + linked.records().len());
    server.shutdown().await;
}
