//! Waiting for something that happens over real sockets: polled, with a deadline, never a fixed
//! sleep (shared by the controller's and the agent's integration tests).

#![allow(dead_code)] // each test binary uses what it needs

use std::time::Duration;

/// Polls `done` every 50 ms until it holds; fails the test naming `what` after `limit`.
pub(crate) async fn poll_until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} never happened within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
