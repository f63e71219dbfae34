//! The agent with real parts: a real controller on 127.0.0.1 (SQLite, and Postgres where the
//! database matters), the real embedded node, real sockets. Faults: killed node tasks, a
//! stopped controller, bad answers, expired tokens, clock skew.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub)]

mod helpers;

mod config_file;
mod controller_faults;
mod desired;
mod fake_controller;
mod lifecycle;
mod outage;
mod reporting;
mod supervise;
mod tls;
