//! `wakufleet tree …` through the real binary: go-ethereum's directory
//! format, signing (online and two-party), exports, resolution over DNS, and bad input.

use std::{collections::BTreeMap, path::Path};

use controller::publish::{dns_server::DnsServer, zone::TxtZone};
use node::{
    crypto::generate_key,
    enrtree::{
        LinkEntry, NodeRecord, Tree,
        definition::{NODES_FILE, TreeDefinition},
        label::subdomain,
    },
};

use crate::helpers::{fails, long_record, ok, password_file, records, snapshot, wakufleet};

const DOMAIN: &str = "nodes.fleet.test";

/// A directory with a light keystore, a password file and an ENR list file.
fn workspace(n: u16) -> (tempfile::TempDir, Vec<NodeRecord>) {
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path());
    ok(dir.path(), &["key", "new", "k.json", "--light-kdf", "--password-file", pw]);
    let records = [records(n), vec![long_record()]].concat();
    let list: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(dir.path().join("enrs.txt"), format!("# from consul\n\n{list}")).unwrap();
    (dir, records)
}

fn tree_dir(root: &Path) -> String {
    root.join(DOMAIN).display().to_string()
}

#[test]
fn build_sign_verify_and_export_match_the_library() {
    let (dir, records) = workspace(20);
    let d = dir.path();
    let tree = tree_dir(d);
    let built = ok(d, &["tree", "build", &tree, "--enrs", "enrs.txt"]);
    assert!(built.contains("nodes:   21"), "{built}");
    ok(d, &["tree", "sign", &tree, "k.json", "--password-file", "password"]);
    let verified = ok(d, &["tree", "verify", &tree]);
    assert!(verified.starts_with("ok: enrtree://"), "{verified}");

    // geth's files: nodes.json keyed by node id with seq + record; info with url/seq/signature.
    let def = TreeDefinition::from_json(
        Some(&std::fs::read_to_string(d.join(DOMAIN).join("enrtree-info.json")).unwrap()),
        &std::fs::read_to_string(d.join(DOMAIN).join(NODES_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(def.info.seq, 1);
    assert_eq!(def.records().unwrap().len(), 21);

    // to-txt equals the library's tree built from the same records, signed by the same key.
    let txt: BTreeMap<String, String> =
        serde_json::from_str(&ok(d, &["tree", "to-txt", &tree])).unwrap();
    let url: LinkEntry = def.info.url.parse().unwrap();
    let mut expected = Tree::build(1, records, vec![]).unwrap();
    expected.set_signature(&url.public_key, def.info.signature.parse().unwrap()).unwrap();
    assert_eq!(txt, expected.to_txt(DOMAIN));

    // The zone file carries every record, long ones as two quoted strings.
    let zone = ok(d, &["tree", "to-zone", &tree]);
    assert_eq!(zone.lines().filter(|l| l.contains("\tIN\tTXT\t")).count(), txt.len());
    assert!(zone.lines().any(|l| l.contains("\" \"")), "multi-string TXT expected");

    // BIND parses the zone file: every TXT value comes back as the text we published.
    let zone_path = d.join("zone.db");
    ok(
        d,
        &[
            "tree",
            "to-zone",
            &tree,
            zone_path.to_str().unwrap(),
            "--name-server",
            "ns1.fleet.test.",
        ],
    );
    let check = std::process::Command::new("named-checkzone")
        .args([DOMAIN, zone_path.to_str().unwrap()])
        .output()
        .expect("named-checkzone is needed; `bash tests/run.sh` installs it");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let compiled = std::process::Command::new("named-compilezone")
        .args(["-q", "-s", "full", "-o", "-", DOMAIN, zone_path.to_str().unwrap()])
        .output()
        .expect("named-compilezone");
    assert!(compiled.status.success(), "{}", String::from_utf8_lossy(&compiled.stderr));
    let mut parsed = BTreeMap::new();
    for line in String::from_utf8_lossy(&compiled.stdout).lines() {
        // `<name> <ttl> IN TXT "<string>" ["<string>"…]`, fields separated by blanks.
        let mut fields = line.split_whitespace();
        let name = fields.next().unwrap_or_default();
        if fields.nth(2) != Some("TXT") {
            continue;
        }
        let strings = line.split_once(" IN TXT").map(|(_, rest)| rest.trim()).unwrap_or_default();
        let text: String = strings.trim_matches('"').split("\" \"").collect();
        parsed.insert(name.trim_end_matches('.').to_ascii_uppercase(), text);
    }
    let want: BTreeMap<String, String> =
        txt.iter().map(|(k, v)| (k.to_ascii_uppercase(), v.clone())).collect();
    assert_eq!(parsed, want);

    // A second sign bumps seq; the stored signature verifies again.
    ok(d, &["tree", "sign", &tree, "k.json", "--password-file", "password"]);
    assert!(ok(d, &["tree", "verify", &tree]).contains(" seq 2 "));
}

#[test]
fn two_party_signing_shows_changes_and_attaches_a_verified_signature() {
    let (dir, _) = workspace(6);
    let d = dir.path();
    let tree = tree_dir(d);
    ok(d, &["tree", "build", &tree, "--enrs", "enrs.txt"]);
    ok(d, &["tree", "sign", &tree, "k.json", "--password-file", "password"]);

    // The operator replaces the node list: three nodes leave, two arrive.
    let kept: Vec<String> = std::fs::read_to_string(d.join("enrs.txt"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("enr:"))
        .skip(3)
        .map(str::to_owned)
        .collect();
    let added: Vec<String> = records(2).iter().map(ToString::to_string).collect();
    std::fs::write(d.join("enrs2.txt"), [kept, added].concat().join("\n")).unwrap();
    ok(d, &["tree", "build", &tree, "--enrs", "enrs2.txt"]);
    ok(d, &["tree", "sign-request", &tree, "--out", "request.json"]);

    // The key holder's side: the summary names the change, and a signature file comes out.
    let summary = ok(
        d,
        &["tree", "sign-offline", "request.json", "k.json", "--password-file", "password", "--yes"],
    );
    assert!(summary.contains("seq:       2 (previous 1)"), "{summary}");
    assert!(summary.contains("added nodes: 2"), "{summary}");
    assert!(summary.contains("removed nodes: 3"), "{summary}");
    assert!(d.join("request.sig.json").exists());

    // Without --yes and without a terminal, nothing is signed.
    fails(
        d,
        &[
            "tree",
            "sign-offline",
            "request.json",
            "k.json",
            "--password-file",
            "password",
            "--out",
            "x.json",
        ],
        "--yes",
    );
    assert!(!d.join("x.json").exists());

    ok(d, &["tree", "attach", &tree, "request.sig.json"]);
    assert!(ok(d, &["tree", "verify", &tree]).contains(" seq 2 signed"));
}

#[test]
fn a_tampered_request_is_refused_by_the_key_holder() {
    let (dir, _) = workspace(4);
    let d = dir.path();
    let tree = tree_dir(d);
    ok(d, &["tree", "build", &tree, "--enrs", "enrs.txt"]);
    ok(d, &["tree", "sign-request", &tree, "--out", "request.json"]);
    // An attacker swaps a record but keeps the claimed root: the rebuilt tree differs.
    let mut request: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("request.json")).unwrap()).unwrap();
    request["enrs"][0] = serde_json::Value::String(records(1)[0].to_string());
    std::fs::write(d.join("request.json"), request.to_string()).unwrap();
    fails(
        d,
        &["tree", "sign-offline", "request.json", "k.json", "--password-file", "password", "--yes"],
        "does not match its own records",
    );
    assert!(!d.join("request.sig.json").exists());
}

#[test]
fn malformed_inputs_get_one_line_errors_and_leave_files_untouched() {
    let (dir, records) = workspace(3);
    let d = dir.path();
    let tree = tree_dir(d);
    ok(d, &["tree", "build", &tree, "--enrs", "enrs.txt"]);
    ok(d, &["tree", "sign", &tree, "k.json", "--password-file", "password"]);

    let padded = format!("{}=", records[0]);
    let mut bad_rlp = records[0].to_string();
    bad_rlp.truncate(bad_rlp.len() - 8);
    std::fs::write(d.join("padded.txt"), format!("{padded}\n")).unwrap();
    std::fs::write(d.join("truncated.txt"), format!("{}\n{bad_rlp}\n", records[1])).unwrap();
    std::fs::write(d.join("wrongpw"), "nope\n").unwrap();
    std::fs::write(d.join("corrupt.json"), "{").unwrap();
    // A second tree directory whose nodes.json key does not match its record.
    let mismatched = d.join("mismatch.test");
    std::fs::create_dir(&mismatched).unwrap();
    let other_id = records[1].node_id_hex();
    std::fs::write(
        mismatched.join(NODES_FILE),
        format!("{{\"{other_id}\": {{\"seq\": 1, \"record\": \"{}\"}}}}", records[0]),
    )
    .unwrap();
    let seq_mismatch = d.join("seq.test");
    std::fs::create_dir(&seq_mismatch).unwrap();
    std::fs::write(
        seq_mismatch.join(NODES_FILE),
        format!(
            "{{\"{}\": {{\"seq\": 9, \"record\": \"{}\"}}}}",
            records[0].node_id_hex(),
            records[0]
        ),
    )
    .unwrap();
    // A signature for some other tree.
    let mut other = Tree::build(2, crate::helpers::records(2), vec![]).unwrap();
    other.sign(&generate_key(), DOMAIN);
    let foreign = node::enrtree::request::DetachedSignature::sign(&other, DOMAIN, &generate_key());
    std::fs::write(d.join("foreign.sig.json"), foreign.to_json()).unwrap();
    let mut forged = foreign.clone();
    forged.signature = "A".repeat(87);
    std::fs::write(d.join("forged.sig.json"), forged.to_json()).unwrap();

    let before = snapshot(d);
    let long_domain = format!("{}.{}.test", "a".repeat(63), "b".repeat(63));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["tree", "build", &tree, "--enrs", "padded.txt"], "padded.txt line 1"),
        (vec!["tree", "build", &tree, "--enrs", "truncated.txt"], "truncated.txt line 2"),
        (vec!["tree", "build", &tree, "--link", "enrtree://nodes.example.org"], "no public key"),
        (vec!["tree", "sign", &tree, "k.json", "--password-file", "wrongpw"], "wrong password"),
        (
            vec!["tree", "sign", &tree, "corrupt.json", "--password-file", "password"],
            "corrupt.json",
        ),
        (
            vec!["tree", "sign", &tree, "k.json", "--password-file", "password", "--seq", "0"],
            "out of range",
        ),
        (
            vec![
                "tree",
                "sign",
                &tree,
                "k.json",
                "--password-file",
                "password",
                "--seq",
                "4294967296",
            ],
            "out of range",
        ),
        (
            vec![
                "tree",
                "sign",
                &tree,
                "k.json",
                "--password-file",
                "password",
                "--domain",
                &long_domain,
            ],
            "512-byte",
        ),
        (
            vec!["tree", "verify", mismatched.to_str().unwrap()],
            "does not match the record's node id",
        ),
        (vec!["tree", "verify", seq_mismatch.to_str().unwrap()], "seq 9 does not match"),
        (vec!["tree", "attach", &tree, "foreign.sig.json"], "tree changed since the request"),
        (vec!["tree", "attach", &tree, "forged.sig.json"], "signature"),
        (vec!["tree", "resolve", "enrtree://AAAA@x.test"], "invalid public key"),
        (vec!["tree", "verify", "no-such-dir"], "not a tree directory"),
    ];
    for (args, needle) in cases {
        fails(d, &args, needle);
    }
    assert_eq!(snapshot(d), before, "failed commands must not touch files");

    // A key other than the tree's own is refused unless rotating.
    let pw = "password";
    ok(d, &["key", "new", "k2.json", "--light-kdf", "--password-file", pw]);
    let before = snapshot(d);
    fails(d, &["tree", "sign", &tree, "k2.json", "--password-file", pw], "--rotate-key");
    assert_eq!(snapshot(d), before);
    ok(d, &["tree", "sign", &tree, "k2.json", "--password-file", pw, "--rotate-key"]);

    // Changing nodes.json after signing makes the stored signature stale.
    ok(d, &["tree", "build", &tree, "--enrs", "enrs.txt"]);
    std::fs::write(d.join("one.txt"), format!("{}\n", records[0])).unwrap();
    ok(d, &["tree", "build", &tree, "--enrs", "one.txt"]);
    fails(d, &["tree", "verify", &tree], "changed since it was signed");
}

#[tokio::test]
async fn resolve_reports_records_links_and_bad_entries_over_dns() {
    let (dir, _) = workspace(10);
    let d = dir.path().to_owned();
    let mut tree = Tree::build(5, records(12), vec![]).unwrap();
    let url = tree.sign(&generate_key(), "resolve.fleet.test");
    let mut zone = TxtZone::from_tree(&tree, &url.domain, 60, 86_400);
    let victim = format!("{}.resolve.fleet.test", subdomain(tree.records()[3].as_str()));
    let server =
        DnsServer::start("127.0.0.1:0".parse().unwrap(), vec![zone.clone()]).await.unwrap();
    let server_addr = server.local_addr().to_string();
    let url_text = url.to_string();

    let run = |args: Vec<String>| {
        let d = d.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            wakufleet(&d, &args)
        })
    };
    let args = vec![
        "tree".into(),
        "resolve".into(),
        url_text.clone(),
        "--server".into(),
        server_addr.clone(),
    ];
    let out = run(args.clone()).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 12);
    for record in tree.records() {
        assert!(stdout.contains(record.as_str()));
    }

    // Plant a bad entry: exit status 2, the entry named, the other records still printed.
    for record in &mut zone.records {
        if record.name.eq_ignore_ascii_case(&victim) {
            record.text = "enrtree-branch:".into();
        }
    }
    server.replace(&zone).await.unwrap();
    let out = run(args).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr).to_ascii_uppercase();
    assert!(stderr.contains(&format!("BAD ENTRY {}", victim.to_ascii_uppercase())), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 11);

    // A wrong key: the root does not verify, nothing is resolved, exit status 1.
    let wrong = LinkEntry::new(*generate_key().verifying_key(), "resolve.fleet.test").to_string();
    let out = run(vec![
        "tree".into(),
        "resolve".into(),
        wrong,
        "--server".into(),
        server_addr,
        "--json".into(),
    ])
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["trees"][0]["errors"][0]["error"].as_str().unwrap().contains("signature"));
    server.shutdown().await;
}

#[test]
fn the_first_tree_a_key_holder_signs_lists_every_node() {
    let (dir, _) = workspace(3);
    let d = dir.path();
    let tree = tree_dir(d);
    ok(d, &["tree", "build", &tree, "--enrs", "enrs.txt"]);
    ok(d, &["tree", "sign-request", &tree, "--out", "request.json"]);
    let summary = ok(
        d,
        &["tree", "sign-offline", "request.json", "k.json", "--password-file", "password", "--yes"],
    );
    assert!(summary.contains("(no previous tree known)"), "{summary}");
    assert!(summary.contains("every node (first tree):"), "{summary}");
    // Each node by id and address, as for the added ones of later trees.
    let nodes: usize = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("nodes:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(nodes >= 3);
    let listed = summary.lines().filter(|l| l.trim_start().starts_with("+ node ")).count();
    assert_eq!(listed, nodes, "{summary}");
}
