//! Zone files: BIND's `named-checkzone` accepts every step, and the records BIND reads from
//! the file (`named-compilezone`) are a whole tree after every step.

use std::{collections::BTreeSet, path::Path, process::Command};

use controller::publish::{
    ChangeSet, PublishError, Publisher,
    zone_file::{Soa, ZoneFileOptions, ZoneFilePublisher},
};
use node::{crypto::generate_key, enrtree::LinkEntry};

use crate::files::trees::{DOMAIN, Published, assert_whole_tree, node_records};

/// What BIND reads from a zone file.
struct Bind {
    serial: Option<u32>,
    /// `(lower-case name, joined text)` of every TXT record.
    txt: Vec<(String, String)>,
}

fn named(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("`{program}` is needed ({e}); `bash tests/run.sh` installs it (Debian bind9-utils)")
    })
}

/// Checks `file` as the zone `zone` with BIND and returns what BIND read.
fn bind(zone: &str, file: &Path) -> Bind {
    let file = file.to_str().unwrap();
    let check = named("named-checkzone", &[zone, file]);
    assert!(
        check.status.success(),
        "named-checkzone refused {file}:\n{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        std::fs::read_to_string(file).unwrap_or_default()
    );
    let compiled = named("named-compilezone", &["-q", "-s", "full", "-o", "-", zone, file]);
    assert!(compiled.status.success(), "{}", String::from_utf8_lossy(&compiled.stderr));
    let mut serial = None;
    let mut txt = Vec::new();
    for line in String::from_utf8_lossy(&compiled.stdout).lines() {
        // `<name> <ttl> IN <type> <data>`, blanks between fields; TXT data `"…" "…"`.
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.get(3) {
            Some(&"SOA") => serial = fields.get(6).and_then(|s| s.parse().ok()),
            Some(&"TXT") => {
                let data = line.split_once(" IN TXT").map(|(_, d)| d.trim()).unwrap();
                let text: String = data.trim_matches('"').split("\" \"").collect();
                txt.push((fields[0].trim_end_matches('.').to_ascii_lowercase(), text));
            }
            _ => {}
        }
    }
    Bind { serial, txt }
}

fn options() -> ZoneFileOptions {
    ZoneFileOptions {
        soa: Some(Soa::new(
            vec!["ns1.example.net".into(), "ns2.example.net".into()],
            "hostmaster.example.net",
        )),
    }
}

/// BIND accepts the file, our reader agrees with BIND, and the records are a whole tree; the
/// SOA serial.
async fn check_step(
    what: &str,
    publisher: &ZoneFilePublisher,
    url: &LinkEntry,
    expect: &Published,
    trees: &[&Published],
) -> u32 {
    let bind = bind(DOMAIN, &publisher.path(DOMAIN));
    let ours = publisher.read(DOMAIN).unwrap().unwrap();
    let ours_txt: BTreeSet<(String, String)> =
        ours.records.iter().map(|r| (r.name.to_ascii_lowercase(), r.text.clone())).collect();
    assert_eq!(ours_txt, bind.txt.iter().cloned().collect(), "{what}: our reader and BIND differ");
    assert_eq!(ours.serial, bind.serial, "{what}");
    let index = assert_whole_tree(what, url, bind.txt, trees, false).await.unwrap();
    assert_eq!(trees[index].tree.seq(), expect.tree.seq(), "{what}: wrong tree");
    bind.serial.unwrap()
}

#[tokio::test]
async fn a_zone_file_moves_from_tree_to_tree_and_bind_loads_every_step() {
    let dir = tempfile::tempdir().unwrap();
    // The directory is created on first use.
    let publisher = ZoneFilePublisher::new(dir.path().join("zones"), options()).unwrap();
    let key = generate_key();
    let nodes = node_records(40);
    let (first, url) = Published::new(&key, 1, nodes[..25].to_vec());
    let (second, _) = Published::new(&key, 2, nodes[10..].to_vec());
    let trees = [&first, &second];
    let path = publisher.path(DOMAIN);

    let set = ChangeSet::between(None, &first.zone);
    publisher.apply(&set.additions()).await.unwrap();
    let serial = check_step("first tree", &publisher, &url, &first, &trees).await;
    assert_eq!(serial, 1, "the first serial is the tree's");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\" \""), "13-child branches are split into two strings:\n{text}");

    // Applied again: not a byte changes, not even the serial.
    let before = std::fs::read(&path).unwrap();
    publisher.apply(&set).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // The next tree: new leaves and the new root, old leaves kept.
    let set = ChangeSet::between(Some(&first.zone), &second.zone);
    publisher.apply(&set.additions()).await.unwrap();
    let serial = check_step("additions", &publisher, &url, &second, &trees).await;
    assert_eq!(serial, 2);
    // A client still holding the old root can still walk the old tree.
    let mut with_old_root = bind(DOMAIN, &path).txt;
    with_old_root.retain(|(name, _)| name != DOMAIN);
    with_old_root.push((DOMAIN.into(), first.tree.root().to_string()));
    assert_whole_tree("old root, after additions", &url, with_old_root, &[&first], false).await;

    let before = std::fs::read(&path).unwrap();
    publisher.apply(&set.additions()).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before, "additions again change nothing");

    // The deletions carry the same serial as the additions; the file's serial still moves on.
    publisher.apply(&set.deletions()).await.unwrap();
    let serial = check_step("deletions", &publisher, &url, &second, &trees).await;
    assert_eq!(serial, 3);
    let left: BTreeSet<(String, String)> = bind(DOMAIN, &path).txt.into_iter().collect();
    assert_eq!(left, second.txt(), "exactly the new tree's records remain");

    // A new publisher on the same directory (a restart) finds nothing to do either.
    let restarted = ZoneFilePublisher::new(dir.path().join("zones"), options()).unwrap();
    let before = std::fs::read(&path).unwrap();
    restarted.apply(&set).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // Nothing but the zone file is left in the directory (no temporary files).
    let names: Vec<String> = std::fs::read_dir(dir.path().join("zones"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [format!("{DOMAIN}.zone")]);
}

#[tokio::test]
async fn a_fragment_without_soa_loads_through_include() {
    let dir = tempfile::tempdir().unwrap();
    let publisher =
        ZoneFilePublisher::new(dir.path().to_owned(), ZoneFileOptions::default()).unwrap();
    let key = generate_key();
    let (tree, url) = Published::new(&key, 5, node_records(3));
    publisher.apply(&ChangeSet::between(None, &tree.zone)).await.unwrap();
    let fragment = std::fs::read_to_string(publisher.path(DOMAIN)).unwrap();
    assert!(!fragment.contains("SOA") && !fragment.contains("\tNS\t"), "{fragment}");

    // The operator's zone owns SOA and NS and includes our records.
    let main = dir.path().join("main.zone");
    std::fs::write(
        &main,
        format!(
            "$ORIGIN {DOMAIN}.\n$TTL 3600\n@ IN SOA ns1.example.net. hostmaster.example.net. 9 3600 600 86400 60\n\
             @ IN NS ns1.example.net.\n$INCLUDE {}\n",
            publisher.path(DOMAIN).display()
        ),
    )
    .unwrap();
    let bind = bind(DOMAIN, &main);
    assert_eq!(bind.serial, Some(9));
    let index = assert_whole_tree("included", &url, bind.txt, &[&tree], false).await;
    assert_eq!(index, Some(0));
}

#[tokio::test]
async fn a_zone_file_it_cannot_read_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let publisher = ZoneFilePublisher::new(dir.path().to_owned(), options()).unwrap();
    let key = generate_key();
    let (tree, _) = Published::new(&key, 1, node_records(2));
    let path = publisher.path(DOMAIN);
    let hand_edited =
        format!("$ORIGIN {DOMAIN}.\n@ 60 IN TXT \"root\"\nmail 60 IN MX 10 mx.example.net.\n");
    std::fs::write(&path, &hand_edited).unwrap();

    let error = publisher.apply(&ChangeSet::between(None, &tree.zone)).await.unwrap_err();
    match &error {
        PublishError::Io { path: reported, source } => {
            assert_eq!(reported, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidData);
            let message = source.to_string();
            assert!(message.contains("line 3") && message.contains("MX"), "{message}");
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), hand_edited, "not overwritten");

    // Not UTF-8 either.
    std::fs::write(&path, b"$ORIGIN \xff\n").unwrap();
    let error = publisher.apply(&ChangeSet::between(None, &tree.zone)).await.unwrap_err();
    assert!(error.to_string().contains("UTF-8"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), b"$ORIGIN \xff\n");
}

#[tokio::test]
async fn records_outside_the_zone_are_invalid_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let publisher = ZoneFilePublisher::new(dir.path().to_owned(), options()).unwrap();
    let mut zone = controller::publish::zone::TxtZone::new(DOMAIN, 1);
    zone.push(DOMAIN, 60, "root");
    zone.push("elsewhere.test", 60, "x");
    let error = publisher.apply(&ChangeSet::between(None, &zone)).await.unwrap_err();
    assert!(
        matches!(&error, PublishError::Invalid { message, .. } if message.contains("outside")),
        "{error}"
    );
    assert!(!publisher.path(DOMAIN).exists());
}
