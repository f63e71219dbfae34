//! A private fleet CA made by openssl, for the TLS tests of the node (WSS) and the agent
//! (HTTPS to the controller).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// A private fleet CA and a leaf certificate for 127.0.0.1 signed by it, made by openssl.
/// Returns (CA certificate, leaf certificate, leaf key), PEM.
pub(crate) fn fleet_ca(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=fleet-ca"],
        ]
        .concat(),
        [&["req"][..], &ec, &["-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"]]
            .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed; `bash tests/run.sh` installs it");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    (read("ca.pem"), read("cert.pem"), read("key.pem"))
}
