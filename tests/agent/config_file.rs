//! A malformed `agent.toml` is a clear error naming the file and the problem.

use agent::{AgentConfig, ConfigError};

#[test]
fn malformed_agent_toml_names_the_file_the_line_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "data-dir = \"/tmp/x\"\n[controller]\nurl = \"http://127.0.0.1:1\"\nreport-interval = 30\n",
    )
    .unwrap();
    let error = AgentConfig::load(&path).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ConfigError::Parse { .. }), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("line 4"), "{text}");
    assert!(text.contains("report-interval"), "{text}");

    std::fs::write(&path, "data-dir = \"/tmp/x\"\n[controller]\nurl = \"http://a\"\n[nodes]\n")
        .unwrap();
    let text = AgentConfig::load(&path).unwrap_err().to_string();
    assert!(text.contains("unknown field `nodes`"), "{text}");

    let missing = AgentConfig::load(&dir.path().join("nope.toml")).unwrap_err().to_string();
    assert!(missing.contains("nope.toml: cannot read"), "{missing}");

    // No node key configured: said before anything starts.
    std::fs::write(&path, "data-dir = \"/tmp/x\"\n[controller]\nurl = \"http://a\"\n").unwrap();
    let config = AgentConfig::load(&path).unwrap();
    let text = config.node_key().unwrap_err().to_string();
    assert!(text.contains("node.nodekey and node.password-file are required"), "{text}");
}
