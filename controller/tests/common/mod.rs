//! Fixtures shared by the controller's integration tests.

pub(crate) mod agent;
pub(crate) mod controller;
pub(crate) mod knot;
pub(crate) mod poll;
