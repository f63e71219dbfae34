//! A controller configuration for tests: listening on 127.0.0.1 port 0, a SQLite file in the
//! test's directory unless a database URL is given, the admin token written to a file, passes
//! driven by the test and reachability off (the simulated agents are keys and records, nothing
//! listens at their addresses). Tests change what they exercise with `..` on top. Shared with
//! the top-level tests through `#[path]`.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use controller::{
    config::{ControllerConfig, DnsConfig, TreeConfig},
    policy::TreePolicy,
    reachability::ReachabilityConfig,
    tree_definition::Signer,
};

/// The zone the test trees live in.
pub(crate) const ZONE: &str = "fleet.test";

/// The base configuration (see the module's text); `admin` is the admin token.
pub(crate) fn test_config(dir: &Path, admin: &str, database_url: Option<&str>) -> ControllerConfig {
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, admin).unwrap();
    ControllerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.map_or_else(
            || format!("sqlite://{}", dir.join("controller.db").display()),
            str::to_owned,
        ),
        admin_token_file: Some(token_file),
        // The test drives every pass unless it sets an interval.
        reconcile_interval_ms: 3_600_000,
        // Each pass the test drives builds what changed.
        settle_ms: 0,
        reachability: ReachabilityConfig { enabled: false, ..ReachabilityConfig::default() },
        ..ControllerConfig::default()
    }
}

/// The built-in DNS server on port 0, serving [`ZONE`].
pub(crate) fn test_dns() -> Option<DnsConfig> {
    Some(DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        zone: ZONE.into(),
        name_servers: Vec::new(),
        hostmaster: None,
        rate_limit: 20,
        rate_limit_slip: 1,
        rate_limit_loopback: false,
    })
}

/// The `cold` tree at `cold.fleet.test`: every healthy node, each version waiting for a key
/// holder's offline signature.
pub(crate) fn cold_tree() -> TreeConfig {
    TreeConfig {
        name: "cold".into(),
        domain: format!("cold.{ZONE}"),
        signer: Signer::Offline,
        policy: TreePolicy::default(),
    }
}

/// The `boot` tree at `boot.fleet.test`: nodes with the `boot` role, signed by the key `dev`.
pub(crate) fn boot_tree() -> TreeConfig {
    TreeConfig {
        name: "boot".into(),
        domain: format!("boot.{ZONE}"),
        signer: Signer::Key("dev".into()),
        policy: TreePolicy { roles: vec!["boot".into()], ..TreePolicy::default() },
    }
}
