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

/// The `name: |` block of a Kubernetes ConfigMap (indented four spaces).
fn config_map_block(yaml: &str, name: &str) -> String {
    let start = yaml.find(&format!("  {name}: |\n")).unwrap();
    yaml[start..]
        .lines()
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with("    "))
        .map(|line| format!("{}\n", line.get(4..).unwrap_or("")))
        .collect()
}

/// What compose's `.env` and Kubernetes' downward API give the processes.
fn env(name: &str) -> Option<String> {
    let value = match name {
        "CONTROLLER_ADDRESS" | "DNS_ADDRESS" => "127.0.0.1",
        "POD_IP" | "PUBLIC_IP" => "10.1.2.3",
        "CONTROLLER_PORT" => "8080",
        "DNS_PORT" => "53",
        "ZONE" | "WAKUFLEET_ZONE" => "fleet.example.org",
        "POD_NAME" | "AGENT_NAME" => "wakufleet-agent-0",
        "CONTROLLER_URL" => "http://wakufleet-controller:8080",
        "NODE_TCP_PORT" => "60001",
        "NODE_WS_PORT" => "8001",
        "NODE_DISCV5_PORT" => "9001",
        "AGENT_REST_PORT" => "8646",
        "AGENT_METRICS_PORT" => "8009",
        "TREE_URL" => {
            "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@boot.fleet.example.org"
        }
        "DNS_SERVER" => "10.96.0.53:53",
        _ => return None,
    };
    Some(value.to_owned())
}

/// The compose, Kubernetes and sim configurations parse once `${NAME}` is expanded, so a
/// renamed key fails here rather than in a container.
#[test]
fn compose_kubernetes_and_sim_configurations_parse_once_expanded() {
    let read = |path: &str| std::fs::read_to_string(deploy().join(path)).unwrap();
    let expand = |text: &str| node::config_env::expand(text, env).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let controllers = [
        read("compose/controller.toml"),
        config_map_block(&read("kubernetes/base/controller.yaml"), "controller.toml"),
    ];
    for (i, text) in controllers.iter().enumerate() {
        let file = dir.path().join(format!("controller-{i}.toml"));
        std::fs::write(&file, expand(text)).unwrap();
        let config = controller::config::ControllerConfig::from_file(&file).unwrap();
        assert_eq!(config.trees[0].domain, "boot.fleet.example.org");
        assert_eq!(config.dns.unwrap().zone, "fleet.example.org");
        assert!(config.keys[0].keystore.starts_with("/run/secrets"));
    }

    let agents = [
        read("compose/agent.toml"),
        config_map_block(&read("kubernetes/base/agents.yaml"), "agent.toml"),
    ];
    for text in &agents {
        let config = agent::config::AgentConfig::parse(&expand(text)).unwrap();
        assert!(config.node.nodekey.as_ref().unwrap().starts_with("/run/secrets"));
        let node = config.node_config(&node::crypto::generate_key(), None).unwrap();
        assert_eq!(node.announce_ip, Some("10.1.2.3".parse().unwrap()));
        assert!(node.websocket_port.is_some() && node.discv5.is_some());
    }

    let sim = config_map_block(&read("kubernetes/overlays/sim/sim-nodes.yaml"), "node.toml");
    let options: node::options::NodeOptions = toml::from_str(&expand(&sim)).unwrap();
    let sim = serde_json::to_value(&options).unwrap();
    assert_eq!(sim["dns-discovery-url"][0].as_str(), env("TREE_URL").as_deref());
    assert_eq!(sim["dns-addrs-name-server"][0].as_str(), Some("10.96.0.53:53"));
}
