//! A `knotd` of our own for tests: a free loopback port, a TSIG key and a `fleet.test` zone
//! that only that key may update (and loopback may transfer), read back with `kdig` — Knot's
//! own client, so checks do not share our encoder. Used by `controller/tests/it/rfc2136.rs` and,
//! through `#[path]`, by the kill-during-publish test in `tests/it`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The zone knotd serves.
pub(crate) const ZONE: &str = "fleet.test";
/// The TSIG key's name.
pub(crate) const KEY_NAME: &str = "wakufleet-test.";
/// 32 bytes, as `keymgr -t` makes them; a test key, never used anywhere else.
pub(crate) const SECRET: &str = "5c6Lr9Q0a4lT7m1x2nK8bV3zW0pYh6sJqEeR4uFgD1M=";

/// Looks for a program on PATH and in the sbin directories (knotd lives in /usr/sbin, which is
/// not on every user's PATH).
pub(crate) fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

pub(crate) fn required(name: &str, package: &str) -> PathBuf {
    program(name).unwrap_or_else(|| {
        panic!(
            "`{name}` not found: the RFC 2136 tests need a real Knot DNS. `bash tests/run.sh` \
             installs it (Debian package `{package}`)."
        )
    })
}

pub(crate) use node::free_port::free_port;

/// What `kdig` saw for one TXT query.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) rcode: u64,
    /// Each TXT RR as its character-strings, exactly as on the wire.
    pub(crate) records: Vec<Vec<Vec<u8>>>,
}

impl Answer {
    /// The single TXT value at the name, strings joined.
    pub(crate) fn value(&self) -> String {
        assert_eq!(self.rcode, 0, "{self:?}");
        assert_eq!(self.records.len(), 1, "expected one TXT record: {self:?}");
        String::from_utf8(self.records[0].concat()).unwrap()
    }
}

/// A `knotd` of our own, in a temporary directory.
pub(crate) struct Knot {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    kdig: PathBuf,
}

impl Knot {
    pub(crate) fn start() -> Self {
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
             acl:\n  - id: fleet-update\n    key: {KEY_NAME}\n    action: update\n  \
             - id: loopback-transfer\n    address: 127.0.0.1\n    action: transfer\n\
             zone:\n  - domain: {ZONE}\n    storage: \"{root}\"\n    file: fleet.test.zone\n    \
             acl: [fleet-update, loopback-transfer]\n    zonefile-sync: -1\n",
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

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }

    /// Until knotd answers the zone's SOA over TCP.
    pub(crate) fn wait_ready(&mut self) {
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

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub(crate) fn kdig_json(&self, name: &str, rtype: &str) -> Option<serde_json::Value> {
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

    pub(crate) fn soa_serial(&self) -> Option<u32> {
        let json = self.kdig_json(ZONE, "SOA")?;
        let soa = json["answerRRs"].get(0)?["rdataSOA"].as_str()?.to_owned();
        soa.split_whitespace().nth(2)?.parse().ok()
    }

    pub(crate) fn txt(&self, name: &str) -> Answer {
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

impl Knot {
    /// Every TXT record of the zone by zone transfer: (owner name without the trailing dot,
    /// value with its strings joined), sorted.
    pub(crate) fn txt_records(&self) -> Vec<(String, String)> {
        let json = self.kdig_json(ZONE, "AXFR").expect("kdig AXFR failed");
        // A transfer may take several messages: kdig prints an array of them.
        let messages = json.as_array().cloned().unwrap_or_else(|| vec![json]);
        let mut out: Vec<(String, String)> = messages
            .iter()
            .flat_map(|message| message["answerRRs"].as_array().cloned().unwrap_or_default())
            .filter(|rr| rr["TYPEname"] == "TXT")
            .map(|rr| {
                let name = rr["NAME"].as_str().unwrap().trim_end_matches('.').to_owned();
                let hex = rr["RDATAHEX"].as_str().unwrap();
                let rdata = data_encoding::HEXUPPER.decode(hex.as_bytes()).unwrap();
                (name, String::from_utf8(character_strings(&rdata).concat()).unwrap())
            })
            .collect();
        assert!(!messages.is_empty() && messages[0]["RCODE"] == 0, "AXFR refused: {messages:?}");
        out.sort();
        out
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// TXT RDATA → its length-prefixed character-strings.
pub(crate) fn character_strings(mut rdata: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = rdata.split_first() {
        let (string, rest) = rest.split_at(usize::from(len));
        out.push(string.to_vec());
        rdata = rest;
    }
    out
}
