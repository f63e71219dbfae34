//! `wakufleet controller --check` (the systemd units' ExecStartPre) checks what a start needs:
//! before, each mistake below passed the check and then failed the start. Each is now one
//! `error:` line naming the key at fault.

use std::path::Path;

use crate::helpers::{fails, ok};

/// A valid configuration with `edit` applied to its text.
fn config(dir: &Path, edit: impl FnOnce(String) -> String) -> &'static str {
    std::fs::write(dir.join("admin"), "check-admin").unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndatabase-url = \"sqlite://{db}\"\nadmin-token-file = \"admin\"\n\
         [dns]\nlisten = \"127.0.0.1:0\"\nzone = \"fleet.test\"\n\
         [[trees]]\nname = \"boot\"\ndomain = \"boot.fleet.test\"\nsigner = \"offline\"\n",
        db = dir.join("c.db").display()
    );
    std::fs::write(dir.join("c.toml"), edit(text)).unwrap();
    "c.toml"
}

const CHECK: [&str; 4] = ["controller", "--config", "c.toml", "--check"];

#[test]
fn check_finds_what_the_start_would_trip_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, |t| t);
    let out = ok(d, &CHECK);
    assert!(out.contains("configuration ok") && out.contains("sqlite database"), "{out}");

    config(d, |t| t.replace("signer = \"offline\"", "signer = \"key:boot-2027\""));
    fails(d, &CHECK, "trees.boot: signer key:boot-2027: no key \"boot-2027\" is unlocked");

    config(d, |t| t.replace("domain = \"boot.fleet.test\"", "domain = \"boot.elsewhere.test\""));
    fails(d, &CHECK, "trees.boot: domain boot.elsewhere.test is not inside the served zone");

    config(d, |t| t.replace("admin-token-file = \"admin\"", "admin-token-file = \"no-such-file\""));
    fails(d, &CHECK, "admin-token-file: cannot read no-such-file");

    let url = "postgres://postgres@127.0.0.1:5432/wakufleet_check_no_such_database";
    config(d, |t| t.replace(&format!("sqlite://{}", d.join("c.db").display()), url));
    fails(d, &CHECK, "database-url: ");
    let out = crate::helpers::wakufleet(d, &CHECK);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"), "{out:?}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    config(d, |t| {
        t.replacen("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""), 1)
    });
    fails(d, &CHECK, &format!("listen: 127.0.0.1:{port}: "));

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    config(d, |t| {
        t.replace(
            "[dns]\nlisten = \"127.0.0.1:0\"",
            &format!("[dns]\nlisten = \"127.0.0.1:{port}\""),
        )
    });
    fails(d, &CHECK, &format!("dns.listen: 127.0.0.1:{port}: "));
    // A change checked while the controller runs (Ansible, before its restart): the ports the
    // running controller holds are left out, everything else is still checked.
    let while_running = ["controller", "--config", "c.toml", "--check", "--while-running"];
    let out = ok(d, &while_running);
    assert!(out.contains("configuration ok") && out.contains("ports not checked"), "{out}");
    config(d, |t| t.replace("signer = \"offline\"", "signer = \"key:boot-2027\""));
    fails(d, &while_running, "trees.boot: signer key:boot-2027: no key \"boot-2027\" is unlocked");
}

/// `${NAME}` takes its value from the environment (one file for every replica of a container
/// platform); an unset variable is an error naming it and its line, a comment is left alone.
#[test]
fn configuration_takes_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, |t| {
        format!("# the zone is ${{WAKUFLEET_TEST_ZONE}}\n{t}")
            .replace("zone = \"fleet.test\"", "zone = \"${WAKUFLEET_TEST_ZONE}\"")
            .replace(
                "listen = \"127.0.0.1:0\"\ndatabase",
                "listen = \"127.0.0.1:${WAKUFLEET_TEST_PORT:-0}\"\ndatabase",
            )
    });
    let out = crate::helpers::wakufleet_env(d, &CHECK, &[("WAKUFLEET_TEST_ZONE", "fleet.test")]);
    assert!(out.status.success(), "{out:?}");
    let out =
        crate::helpers::wakufleet_env(d, &CHECK, &[("WAKUFLEET_TEST_ZONE", "elsewhere.test")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not inside the served zone"), "{stderr}");
    fails(d, &CHECK, "c.toml: line 7: ${WAKUFLEET_TEST_ZONE} is not set");
}

/// One spelling (kebab-case) for every key, the old ones read with a warning naming each; the
/// built-in DNS server's SOA and NS come from `[dns] name-servers` and `hostmaster` instead of
/// invented names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kebab_keys_old_spellings_with_a_warning_and_the_zones_own_soa() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dns = node::free_port::free_port();
    config(d, |t| {
        t.replace(
            "[dns]\nlisten = \"127.0.0.1:0\"",
            &format!("[dns]\nlisten = \"127.0.0.1:{dns}\""),
        )
        .replace(
            "zone = \"fleet.test\"\n",
            "zone = \"fleet.test\"\nname-servers = [\"a.ns.example\", \"b.ns.example\"]\n\
                 hostmaster = \"dns-admins.example\"\n",
        )
        .replace("admin-token-file", "admin_token_file")
    });
    let out = crate::helpers::wakufleet(d, &CHECK);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("old spelling admin_token_file (write admin-token-file)"), "{stderr}");

    let log = std::fs::File::create(d.join("controller.log")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wakufleet"))
        .args(["controller", "--config", "c.toml"])
        .current_dir(d)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let port = dns.to_string();
    let mut soa = String::new();
    for _ in 0..300 {
        // Until the controller listens, dig fails ("no servers could be reached"): try again.
        let out = tokio::process::Command::new("dig")
            .args(["@127.0.0.1", "-p", &port, "+short", "+tries=1", "SOA", "fleet.test"])
            .output()
            .await
            .expect("dig is needed for this test; `bash tests/run.sh` installs it");
        soa = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && !soa.trim().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(d.join("controller.log")).unwrap_or_default();
    assert!(soa.starts_with("a.ns.example. dns-admins.example. "), "{soa}\ncontroller: {log}");
    let ns =
        crate::helpers::tool("dig", &["@127.0.0.1", "-p", &port, "+short", "NS", "fleet.test"])
            .await;
    let mut names: Vec<&str> = ns.lines().collect();
    names.sort();
    assert_eq!(names, ["a.ns.example.", "b.ns.example."]);
    child.kill().await.unwrap();
}
