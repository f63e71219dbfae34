//! The wakufleet controller: fleet registry, agent enrolment and signed reports, tree policy,
//! signing and publication.
//!
//! # Layout
//!
//! - [`app`] — [`app::Controller`]: starts the HTTP API, the built-in DNS server and the
//!   reconcile loop over one [`app::AppState`].
//! - [`api`] — the axum routes: agents' signed endpoints, people's endpoints (each behind a
//!   role), OpenAPI.
//! - [`access`] — people: roles (viewer, operator, key-holder, admin), what each may do, named
//!   access tokens.
//! - [`error`] — [`error::AppError`], the one error type of the API.
//! - [`config`] — [`config::ControllerConfig`] from TOML; secrets from files or the environment;
//!   [`config_style`] — kebab-case keys, the old spellings read with a warning.
//! - [`db`] — the database (Postgres, or a SQLite file by default): tokens, nodes, trees and
//!   versions, access tokens, the audit log, leases.
//! - The enrolment and report schema and agents' request signatures are the `contract` crate's,
//!   shared with the agent.
//! - [`membership`] — roles and the shard/cluster ceiling are the operator's, never a report's.
//! - [`ingest`] — group commit of agents' reports: one writer checks and writes each batch.
//! - [`health`] — passing / warning / critical from report freshness and figures;
//!   [`drift`] — a node's cluster or shards against what its trees and desired configuration
//!   say.
//! - [`fleet_hint`] — the other fleet nodes and peer ids each report's answer carries, so
//!   fleet nodes find each other without bootstrap lists.
//! - [`policy`] — which nodes a tree lists, and the client limits on tree size.
//! - [`tree_definition`] — tree definitions checked and stored, from the configuration or the
//!   API; signers (`key:<name>`, `offline`) and links (`enrtree://…`, `tree:<name>`) as types.
//! - [`keyring`] — signing keys unlocked from keystores.
//! - [`preflight`] — `controller --check`: everything a start needs, checked without serving.
//! - [`metrics`] — `GET /metrics`: this instance's counters and the fleet's state for
//!   Prometheus.
//! - [`reachability`] — libp2p handshakes with every node at its advertised address.
//! - [`rollout`] — one desired configuration taken to many nodes a few at a time, gated on
//!   their health.
//! - [`reconcile`] — one reconcile pass, one file per step: health, builds (and online
//!   signing), publication, the built-in DNS server's zone.
//! - [`dashboard`] — the read-only HTML dashboard at `/dashboard` (askama templates in the
//!   workspace's `templates/`).
//! - [`http_server`] — the API's server: header and request timeouts, connection caps,
//!   per-address rate limits on unauthenticated routes.
//! - [`tls_listener`] — HTTPS on the API's port: TLS handshakes done concurrently.
//! - [`publish`] — zones, change sets, the [`publish::Publisher`] trait and the built-in DNS
//!   server.

pub mod access;
pub mod api;
pub mod app;
pub mod config;
pub mod config_style;
pub mod dashboard;
pub mod db;

pub mod drift;
pub mod error;
pub mod fleet_hint;
pub mod health;
pub mod http_server;
pub mod ingest;
pub mod keyring;
pub mod membership;
pub mod metrics;
pub mod policy;
pub mod preflight;
pub mod publish;
pub mod reachability;
pub mod reconcile;
pub mod rollout;
pub mod tls_listener;
pub mod tree_definition;
