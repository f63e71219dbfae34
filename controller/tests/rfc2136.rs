//! RFC 2136 publication against a real Knot DNS primary: each test starts its own `knotd` on a
//! free loopback port with a TSIG key and a `fleet.test` zone that only that key may update,
//! publishes change sets, and reads the result back with `kdig` (Knot's own client, so the
//! check does not share our encoder).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use controller::publish::{
    ChangeSet, PublishError, Publisher,
    rfc2136::{Rfc2136Config, Rfc2136Publisher, TsigAlgorithm, TsigKey},
    zone::TxtZone,
};

const ZONE: &str = "fleet.test";
const KEY_NAME: &str = "wakufleet-test.";
/// 32 bytes, as `keymgr -t` makes them; a test key, never used anywhere else.
const SECRET: &str = "5c6Lr9Q0a4lT7m1x2nK8bV3zW0pYh6sJqEeR4uFgD1M=";
const WRONG_SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// Looks for a program on PATH and in the sbin directories (knotd lives in /usr/sbin, which is
/// not on every user's PATH).
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn required(name: &str, package: &str) -> PathBuf {
    program(name).unwrap_or_else(|| {
        panic!(
            "`{name}` not found: the RFC 2136 tests need a real Knot DNS. `bash tests/run.sh` \
             installs it (Debian package `{package}`)."
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What `kdig` saw for one TXT query.
#[derive(Debug)]
struct Answer {
    rcode: u64,
    /// Each TXT RR as its character-strings, exactly as on the wire.
    records: Vec<Vec<Vec<u8>>>,
}

impl Answer {
    /// The single TXT value at the name, strings joined.
    fn value(&self) -> String {
        assert_eq!(self.rcode, 0, "{self:?}");
        assert_eq!(self.records.len(), 1, "expected one TXT record: {self:?}");
        String::from_utf8(self.records[0].concat()).unwrap()
    }
}

/// A `knotd` of our own, in a temporary directory.
struct Knot {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    kdig: PathBuf,
}

impl Knot {
    fn start() -> Self {
        let knotd = required("knotd", "knot");
        let kdig = required("kdig", "knot-dnsutils");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["run", "db"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        std::fs::write(
            root.join("fleet.test.zone"),
            "$ORIGIN fleet.test.\n$TTL 60\n\
             @ IN SOA ns1.fleet.test. hostmaster.fleet.test. 1 3600 600 86400 60\n\
             @ IN NS ns1.fleet.test.\n\
             ns1 IN A 127.0.0.1\n",
        )
        .unwrap();
        let port = free_port();
        // No `server.user`: knotd then keeps the invoking user (root or not) and needs no
        // privileges for a high port. `zonefile-sync: -1` keeps updates in the journal only.
        let conf = format!(
            "server:\n    rundir: \"{root}/run\"\n    listen: 127.0.0.1@{port}\n    \
             background-workers: 1\n    udp-workers: 1\n    tcp-workers: 1\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: \"{root}/db\"\n\
             key:\n  - id: {KEY_NAME}\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
             acl:\n  - id: fleet-update\n    key: {KEY_NAME}\n    action: update\n\
             zone:\n  - domain: {ZONE}\n    storage: \"{root}\"\n    file: fleet.test.zone\n    \
             acl: fleet-update\n    zonefile-sync: -1\n",
            root = root.display()
        );
        std::fs::write(root.join("knot.conf"), conf).unwrap();
        let log = std::fs::File::create(root.join("knotd.log")).unwrap();
        let child = Command::new(knotd)
            .arg("-c")
            .arg(root.join("knot.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start knotd");
        let mut knot = Self { dir, port, child: Some(child), kdig };
        knot.wait_ready();
        knot
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }

    /// Until knotd answers the zone's SOA over TCP.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().unwrap()
            {
                panic!("knotd exited ({status}) before serving:\n{}", self.log());
            }
            if self.soa_serial().is_some() {
                return;
            }
            assert!(Instant::now() < deadline, "knotd never served {ZONE}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn publisher(&self, key: Option<TsigKey>) -> Rfc2136Publisher {
        let mut config = Rfc2136Config::new(self.addr(), ZONE, key);
        config.timeout = Duration::from_secs(3);
        Rfc2136Publisher::new(config).unwrap()
    }

    fn kdig_json(&self, name: &str, rtype: &str) -> Option<serde_json::Value> {
        let output = Command::new(&self.kdig)
            .args([
                "@127.0.0.1".to_owned(),
                "-p".into(),
                self.port.to_string(),
                rtype.into(),
                name.into(),
                "+tcp".into(),
                "+json".into(),
                "+timeout=2".into(),
                "+retry=0".into(),
            ])
            .output()
            .expect("run kdig");
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    fn soa_serial(&self) -> Option<u32> {
        let json = self.kdig_json(ZONE, "SOA")?;
        let soa = json["answerRRs"].get(0)?["rdataSOA"].as_str()?.to_owned();
        soa.split_whitespace().nth(2)?.parse().ok()
    }

    fn txt(&self, name: &str) -> Answer {
        let json = self.kdig_json(name, "TXT").unwrap_or_else(|| panic!("kdig TXT {name} failed"));
        let rcode = json["RCODE"].as_u64().unwrap();
        let records = json["answerRRs"]
            .as_array()
            .map(|rrs| {
                rrs.iter()
                    .filter(|rr| rr["TYPEname"] == "TXT")
                    .map(|rr| {
                        let hex = rr["RDATAHEX"].as_str().unwrap();
                        character_strings(&data_encoding::HEXUPPER.decode(hex.as_bytes()).unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Answer { rcode, records }
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// TXT RDATA → its length-prefixed character-strings.
fn character_strings(mut rdata: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = rdata.split_first() {
        let (string, rest) = rest.split_at(usize::from(len));
        out.push(string.to_vec());
        rdata = rest;
    }
    out
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
    knot.publisher(Some(key())).apply(&ChangeSet::between(None, &tree)).await.unwrap();

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
    knot.publisher(Some(key())).apply(&ChangeSet::between(Some(&tree), &bigger)).await.unwrap();
    for record in &bigger.records {
        assert_eq!(knot.txt(&record.name).value(), record.text, "{}", record.name);
    }
    let messages = knot.soa_serial().unwrap() - serial_after;
    assert!(messages >= 3, "~80 KB of records went out in {messages} message(s)");
}

#[tokio::test]
async fn moves_to_a_new_tree_leaves_first_stale_records_last_and_idempotently() {
    let knot = Knot::start();
    let publisher = knot.publisher(Some(key()));
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
        let error = knot.publisher(key).apply(&set).await.unwrap_err();
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
    knot.publisher(Some(key())).apply(&set).await.unwrap();
    assert_eq!(knot.txt(&leaf(1)).value(), "one");
}

#[tokio::test]
async fn a_stopped_server_is_unreachable_within_the_timeout() {
    let mut knot = Knot::start();
    let publisher = knot.publisher(Some(key()));
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
