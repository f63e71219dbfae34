//! The controller's integration tests, one binary (one link): the controller on port 0 against
//! a migrated SQLite file and a fresh Postgres database, real DNS queries, a real `knotd`, BIND's
//! zone parser, headless Chromium for the dashboard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../files/mod.rs"]
mod files;

mod api;
mod dashboard;
mod dashboard_actions;
mod dashboard_browser;
mod http_limits;
mod lost_database;
mod reachability;
mod report_writes;
mod rfc2136;
mod roles;
mod rollouts;
mod settle;
mod trust;
mod two_controllers;
