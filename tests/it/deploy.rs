//! The deployment material is checked by the tools that consume it: Prometheus's `promtool`
//! loads the alert rules and runs their unit tests (alerts that fire, and ones that must not);
//! the systemd units start subcommands and flags this binary has.

use std::{path::Path, process::Command};

fn deploy() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy"))
}

fn run(program: &str, args: &[&str], cwd: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (`bash tests/run.sh` installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_load_and_their_unit_tests_pass() {
    let dir = deploy().join("prometheus");
    let checked = run("promtool", &["check", "rules", "wakufleet-rules.yml"], &dir);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run("promtool", &["test", "rules", "wakufleet-rules.test.yml"], &dir);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn systemd_units_name_existing_subcommands() {
    for (unit, subcommand) in
        [("wakufleet-controller.service", "controller"), ("wakufleet-agent.service", "agent")]
    {
        let text = std::fs::read_to_string(deploy().join("systemd").join(unit)).unwrap();
        let exec = text.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        assert!(exec.contains(&format!("wakufleet {subcommand} --config")), "{unit}: {exec}");
        // The subcommand and its flag exist in this binary.
        let help = Command::new(env!("CARGO_BIN_EXE_wakufleet"))
            .args([subcommand, "--help"])
            .output()
            .unwrap();
        assert!(help.status.success());
        assert!(String::from_utf8_lossy(&help.stdout).contains("--config"), "{unit}");
    }
}
