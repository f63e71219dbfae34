//! What an agent and the controller say to each other, and how it is signed. Both sides build
//! on this crate alone, so a change to the wire shows up on both at once.
//!
//! # Layout
//!
//! - [`enrolment`] — `POST /api/v1/enrol`: [`enrolment::Enrolment`] and its answer.
//! - [`report`] — `POST /api/v1/reports`: [`report::Report`] (schema version
//!   [`report::REPORT_VERSION`]), its [`report::Figures`], checks and answer.
//! - [`desired`] — the configuration the controller wants a node to run, and how applying it
//!   went.
//! - [`signing`] — request signatures with the node's secp256k1 key.

pub mod desired;
pub mod enrolment;
pub mod report;
pub mod signing;

/// The enrolment endpoint's path.
pub const ENROL_PATH: &str = "/api/v1/enrol";
/// The report endpoint's path.
pub const REPORTS_PATH: &str = "/api/v1/reports";
