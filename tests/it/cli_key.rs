//! `wakufleet key …` through the real binary.

use node::keystore::Keystore;

use crate::helpers::{PASSWORD, fails, ok, password_file, snapshot, wakufleet};

#[test]
fn new_show_and_import_round_trip_through_encrypted_keystores() {
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path());
    let out = ok(dir.path(), &["key", "new", "k.json", "--light-kdf", "--password-file", pw]);
    let public = out.lines().next().unwrap().trim_start_matches("public key: ").to_owned();
    assert_eq!(public.len(), 53);

    let text = std::fs::read_to_string(dir.path().join("k.json")).unwrap();
    let keystore: Keystore = text.parse().unwrap();
    let key = keystore.decrypt(PASSWORD.as_bytes()).unwrap();
    assert!(!text.contains(&data_encoding::HEXLOWER.encode(&key.to_bytes())), "key is encrypted");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("k.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let shown =
        ok(dir.path(), &["key", "show", "k.json", "--password-file", pw, "--domain", "n.example"]);
    assert!(shown.contains(&format!("enrtree://{public}@n.example")), "{shown}");

    // Import the geth test key from a hex file; the public key is the known one.
    std::fs::write(
        dir.path().join("raw.hex"),
        "0xdc599867fc513f8f5e2c2c9c489cde5e71362d1d9ec6e693e0de063236ed1240\n",
    )
    .unwrap();
    let imported = ok(
        dir.path(),
        &["key", "import", "raw.hex", "geth.json", "--light-kdf", "--password-file", pw],
    );
    assert!(imported.contains("AKPYQIUQIL7PSIACI32J7FGZW56E5FKHEFCCOFHILBIMW3M6LWXS2"));
}

#[test]
fn password_comes_from_the_environment_and_never_from_argv() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wakufleet"))
        .args(["key", "new", "k.json", "--light-kdf"])
        .current_dir(dir.path())
        .env("WAKUFLEET_PASSWORD", PASSWORD)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let keystore: Keystore =
        std::fs::read_to_string(dir.path().join("k.json")).unwrap().parse().unwrap();
    keystore.decrypt(PASSWORD.as_bytes()).unwrap();

    // There is no flag that takes a password itself.
    let help = String::from_utf8_lossy(&wakufleet(dir.path(), &["key", "new", "--help"]).stdout)
        .into_owned();
    assert!(help.contains("--password-file"));
    assert!(!help.contains("--password "));
    // Without a terminal, file or variable, it refuses instead of hanging.
    fails(dir.path(), &["key", "show", "k.json"], "no password");
}

#[test]
fn bad_keys_passwords_and_keystores_fail_cleanly_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path());
    ok(dir.path(), &["key", "new", "k.json", "--light-kdf", "--password-file", pw]);
    std::fs::write(dir.path().join("wrong"), "not the password\n").unwrap();
    std::fs::write(dir.path().join("corrupt.json"), "{\"version\": 3, \"crypto\": 7}").unwrap();
    std::fs::write(dir.path().join("short.hex"), "abcd").unwrap();
    std::fs::write(dir.path().join("nothex.hex"), "zz".repeat(32)).unwrap();
    let before = snapshot(dir.path());

    fails(dir.path(), &["key", "show", "k.json", "--password-file", "wrong"], "wrong password");
    fails(dir.path(), &["key", "show", "corrupt.json", "--password-file", pw], "corrupt.json");
    fails(dir.path(), &["key", "show", "missing.json", "--password-file", pw], "missing.json");
    fails(
        dir.path(),
        &["key", "new", "k.json", "--light-kdf", "--password-file", pw],
        "already exists",
    );
    fails(dir.path(), &["key", "import", "short.hex", "x.json", "--password-file", pw], "32 bytes");
    fails(
        dir.path(),
        &["key", "import", "nothex.hex", "x.json", "--password-file", pw],
        "not a hex",
    );

    assert_eq!(snapshot(dir.path()), before, "failed commands must not touch files");
}
