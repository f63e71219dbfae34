//! The wakufleet agent: runs beside each embedded node, keeps it up, measures its health and
//! reports it, signed, to the controller.
//!
//! # Layout
//!
//! Empty until the agent issue; it builds on the node and the controller.
