//! `wakufleet controller --check` (the systemd units' ExecStartPre) checks what a start needs:
//! before, each mistake below passed the check and then failed the start. Each is now one
//! `error:` line naming the key at fault.

use std::path::Path;

use crate::helpers::{fails, ok};

/// A valid configuration with `edit` applied to its text.
fn config(dir: &Path, edit: impl FnOnce(String) -> String) -> &'static str {
    std::fs::write(dir.join("admin"), "check-admin").unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{db}\"\nadmin_token_file = \"admin\"\n\
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

    config(d, |t| t.replace("admin_token_file = \"admin\"", "admin_token_file = \"no-such-file\""));
    fails(d, &CHECK, "admin_token_file: cannot read no-such-file");

    let url = "postgres://postgres@127.0.0.1:5432/wakufleet_check_no_such_database";
    config(d, |t| t.replace(&format!("sqlite://{}", d.join("c.db").display()), url));
    fails(d, &CHECK, "database_url: ");
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
}
