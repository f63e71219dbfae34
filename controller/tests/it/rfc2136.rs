//! RFC 2136 publication against a real Knot DNS primary: each test starts its own `knotd` on a
//! free loopback port with a TSIG key and a `fleet.test` zone that only that key may update,
//! publishes change sets, and reads the result back with `kdig` (Knot's own client, so the
//! check does not share our encoder).
use crate::common;

use std::time::{Duration, Instant};

use common::knot::{KEY_NAME, Knot, SECRET, ZONE};

use controller::publish::{
    ChangeSet, PublishError, Publisher,
    rfc2136::{Rfc2136Config, Rfc2136Publisher, TsigAlgorithm, TsigKey},
    zone::TxtZone,
};

const WRONG_SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn publisher(knot: &Knot, key: Option<TsigKey>) -> Rfc2136Publisher {
    let mut config = Rfc2136Config::new(knot.addr(), ZONE, key);
    config.timeout = Duration::from_secs(3);
    Rfc2136Publisher::new(config).unwrap()
}

fn key() -> TsigKey {
    format!("hmac-sha256:{KEY_NAME}:{SECRET}").parse().unwrap()
}

fn leaf(i: usize) -> String {
    format!("H{i:025}.{ZONE}")
}

/// A tree-shaped zone: the root at the apex and leaves under hash labels.
fn zone(serial: u32, root: &str, leaves: &[(usize, String)]) -> TxtZone {
    let mut zone = TxtZone::new(ZONE, serial);
    zone.push(ZONE, 60, root);
    for (i, text) in leaves {
        zone.push(&leaf(*i), 86_400, text.clone());
    }
    zone
}

/// An ENR-like value of `len` characters (what makes TXT values exceed 255 bytes).
fn long_value(seed: char, len: usize) -> String {
    let mut text = String::from("enr:-");
    let alphabet: Vec<char> =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect();
    let mut i = seed as usize;
    while text.len() < len {
        text.push(alphabet[i % alphabet.len()]);
        i = (i * 31 + 7) % 1_000_003;
    }
    text
}

#[tokio::test]
async fn publishes_a_whole_zone_byte_for_byte() {
    let knot = Knot::start();
    let serial_before = knot.soa_serial().unwrap();
    let leaves = vec![
        (1, long_value('a', 300)),
        (2, "enrtree-branch:H0000000000000000000000001,H0000000000000000000000003".to_owned()),
        (3, long_value('b', 255)),
        (4, "x".repeat(600)),
        (5, String::new()),
    ];
    let tree = zone(7, "enrtree-root:v1 e=H0000000000000000000000002 l=X seq=7 sig=abc", &leaves);
    publisher(&knot, Some(key())).apply(&ChangeSet::between(None, &tree)).await.unwrap();

    for record in &tree.records {
        assert_eq!(knot.txt(&record.name).value(), record.text, "{}", record.name);
    }
    // Split into ≤255-byte strings inside ONE record.
    let lengths: Vec<usize> = knot.txt(&leaf(1)).records[0].iter().map(Vec::len).collect();
    assert_eq!(lengths, [255, 45]);
    let lengths: Vec<usize> = knot.txt(&leaf(4)).records[0].iter().map(Vec::len).collect();
    assert_eq!(lengths, [255, 255, 90]);
    assert_eq!(knot.txt(&leaf(3)).records[0].len(), 1);
    let serial_after = knot.soa_serial().unwrap();
    assert_eq!(serial_after, serial_before + 1, "one UPDATE message, one serial step");

    // A large change set goes out in several messages, each its own transaction.
    let many: Vec<(usize, String)> =
        (100..300).map(|i| (i, long_value(char::from(b'A' + (i % 26) as u8), 400))).collect();
    let bigger = zone(8, "enrtree-root:v1 e=H0000000000000000000000100 l=X seq=8 sig=def", &many);
    publisher(&knot, Some(key())).apply(&ChangeSet::between(Some(&tree), &bigger)).await.unwrap();
    for record in &bigger.records {
        assert_eq!(knot.txt(&record.name).value(), record.text, "{}", record.name);
    }
    let messages = knot.soa_serial().unwrap() - serial_after;
    assert!(messages >= 3, "~80 KB of records went out in {messages} message(s)");
}

#[tokio::test]
async fn moves_to_a_new_tree_leaves_first_stale_records_last_and_idempotently() {
    let knot = Knot::start();
    let publisher = publisher(&knot, Some(key()));
    let old = zone(
        1,
        "enrtree-root:v1 e=OLD seq=1",
        &[(1, long_value('a', 300)), (2, "two".into()), (3, "three".into())],
    );
    let new = zone(
        2,
        &format!("enrtree-root:v1 e=NEW seq=2 {}", "p".repeat(280)),
        &[(2, "two".into()), (3, "three".into()), (4, long_value('d', 320))],
    );
    publisher.apply(&ChangeSet::between(None, &old)).await.unwrap();

    let set = ChangeSet::between(Some(&old), &new);
    publisher.apply(&set.additions()).await.unwrap();
    let root = knot.txt(ZONE);
    assert_eq!(root.value(), new.records[0].text, "the root is replaced, not added to");
    assert_eq!(knot.txt(&leaf(4)).value(), long_value('d', 320));
    assert_eq!(knot.txt(&leaf(1)).value(), long_value('a', 300), "old leaf kept until deletions");
    assert_eq!(knot.txt(&leaf(2)).value(), "two");

    // The same additions again (a retried change set): no error, no duplicate records.
    publisher.apply(&set.additions()).await.unwrap();
    assert_eq!(knot.txt(ZONE).value(), new.records[0].text);
    assert_eq!(knot.txt(&leaf(4)).value(), long_value('d', 320));

    publisher.apply(&set.deletions()).await.unwrap();
    assert_eq!(knot.txt(&leaf(1)).rcode, 3, "the stale leaf is gone (NXDOMAIN)");
    assert_eq!(knot.txt(&leaf(2)).value(), "two");
    assert_eq!(knot.txt(&leaf(4)).value(), long_value('d', 320));
    // Deleting what is already gone is not an error either.
    publisher.apply(&set.deletions()).await.unwrap();
    assert_eq!(knot.txt(ZONE).value(), new.records[0].text);
}

#[tokio::test]
async fn bad_or_missing_tsig_is_refused_and_changes_nothing() {
    let knot = Knot::start();
    let serial = knot.soa_serial().unwrap();
    let tree = zone(1, "enrtree-root:v1 seq=1", &[(1, "one".into())]);
    let set = ChangeSet::between(None, &tree);

    let wrong = TsigKey::from_base64(KEY_NAME, TsigAlgorithm::HmacSha256, WRONG_SECRET).unwrap();
    let unknown = TsigKey::from_base64("nobody.", TsigAlgorithm::HmacSha256, SECRET).unwrap();
    let other_algorithm =
        TsigKey::from_base64(KEY_NAME, TsigAlgorithm::HmacSha512, SECRET).unwrap();
    for (what, key, expect) in [
        ("wrong secret", Some(wrong), "BADSIG"),
        ("unknown key", Some(unknown), "BADKEY"),
        ("wrong algorithm", Some(other_algorithm), "BADKEY"),
        ("no TSIG", None, "NOTAUTH"),
    ] {
        let error = publisher(&knot, key).apply(&set).await.unwrap_err();
        match &error {
            PublishError::Refused { message, .. } => {
                assert!(message.contains(expect), "{what}: {message}");
                if expect != "NOTAUTH" {
                    assert!(message.contains("NOTAUTH"), "{what}: {message}");
                }
            }
            other => panic!("{what}: expected Refused, got {other:?}"),
        }
        assert!(!format!("{error} {error:?}").contains(SECRET));
    }
    assert_eq!(knot.txt(ZONE).records.len(), 0, "nothing was published");
    assert_eq!(knot.txt(&leaf(1)).rcode, 3);
    assert_eq!(knot.soa_serial().unwrap(), serial);

    // The right key still works afterwards.
    publisher(&knot, Some(key())).apply(&set).await.unwrap();
    assert_eq!(knot.txt(&leaf(1)).value(), "one");
}

#[tokio::test]
async fn a_stopped_server_is_unreachable_within_the_timeout() {
    let mut knot = Knot::start();
    let publisher = publisher(&knot, Some(key()));
    let first = zone(1, "enrtree-root:v1 seq=1", &[(1, "one".into())]);
    publisher.apply(&ChangeSet::between(None, &first)).await.unwrap();

    knot.stop();
    let second = zone(2, "enrtree-root:v1 seq=2", &[(2, "two".into())]);
    let started = Instant::now();
    let error = publisher.apply(&ChangeSet::between(Some(&first), &second)).await.unwrap_err();
    assert!(matches!(error, PublishError::Unreachable { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert!(error.to_string().contains(&knot.addr().to_string()), "{error}");
}
