//! Store (13/WAKU2-STORE v3): the archive of relayed messages and the store query protocol.
//!
//! - [`proto`] — store v3 protobufs.
//! - [`archive`] — the archive on SQLite or Postgres: insert once by hash, queries, retention.

pub mod archive;
pub mod proto;

/// The store protocol id.
pub const PROTOCOL: libp2p::StreamProtocol =
    libp2p::StreamProtocol::new("/vac/waku/store-query/3.0.0");

/// Status codes (nwaku `waku_store/common.nim`).
pub mod status {
    /// Success.
    pub const SUCCESS: u32 = 200;
    /// Malformed query.
    pub const BAD_REQUEST: u32 = 400;
    /// Rate limited.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// The archive is unavailable.
    pub const SERVICE_UNAVAILABLE: u32 = 503;
}
