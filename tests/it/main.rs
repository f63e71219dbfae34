//! Integration tests, compiled as one binary. They use real parts: the `wakufleet` binary, the
//! built-in DNS server on 127.0.0.1 port 0, hickory's resolver, and `dig`/`kdig` from Debian's
//! packages (installed by `tests/run.sh`).

#![allow(clippy::unwrap_used)]

mod alerting;
mod bench;
mod cli_agent;
mod cli_controller;
mod cli_key;
mod cli_logs;
mod cli_node;
mod cli_token;
mod cli_tree;
mod cli_up;
mod controller_kill;
mod deploy;
mod discovery;
mod dns;
mod fuzz_corpus;
mod grafana;
mod helpers;
mod sim;
/// The controller tests' simulated agent (signed enrolments and reports).
#[path = "../../controller/tests/common/agent.rs"]
mod sim_agent;
mod walkthrough;
