//! The API's HTTP server, hardened for the open internet: what `axum::serve` leaves out.
//!
//! - Headers must arrive within `header_read_timeout_secs` (hyper's timer, which
//!   `axum::serve` never sets: 200 connections holding half-sent headers stayed open for
//!   ever), and a whole request — body included — is answered within `request_timeout_secs`
//!   (408 otherwise).
//! - At most `max_connections` connections, and `max_connections_per_ip` from one address;
//!   more are closed at once.
//! - Per-address rate limits ([`RateLimiter`]) on what anyone may call unauthenticated:
//!   enrolment, reports, and failed logins (a 401 anywhere costs the address a token).
//!
//! Loopback is exempt from the per-address limits unless `limit_loopback` is set: on one host
//! every agent is 127.0.0.1 (the local fleet, the ingest benchmark), and behind a proxy on the
//! same host so is every client — limit there, at the proxy.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::sync::watch;

/// HTTP limits, `[http]` in the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// A request's headers must be complete this long after the connection (or the previous
    /// response).
    pub header_read_timeout_secs: u64,
    /// A request, body included, must be answered within this.
    pub request_timeout_secs: u64,
    /// Connections at once.
    pub max_connections: usize,
    /// Connections at once from one address.
    pub max_connections_per_ip: usize,
    /// Enrolments per minute from one address (burst: the same number).
    pub enrolments_per_minute: u32,
    /// Reports per second from one address (burst: ten seconds' worth).
    pub reports_per_second: u32,
    /// Failed logins (401 answers) per minute from one address before it gets 429.
    pub auth_failures_per_minute: u32,
    /// Apply the per-address limits to loopback clients too.
    pub limit_loopback: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 4096,
            max_connections_per_ip: 64,
            enrolments_per_minute: 30,
            reports_per_second: 20,
            auth_failures_per_minute: 30,
            limit_loopback: false,
        }
    }
}

impl HttpConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.header_read_timeout_secs == 0 || self.request_timeout_secs == 0 {
            return Err("[http] timeouts must be at least 1 s".into());
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            return Err("[http] connection limits must be at least 1".into());
        }
        if self.enrolments_per_minute == 0
            || self.reports_per_second == 0
            || self.auth_failures_per_minute == 0
        {
            return Err("[http] rate limits must be at least 1".into());
        }
        Ok(())
    }

    /// Whether per-address limits apply to `ip` (loopback only with `limit_loopback`).
    pub(crate) fn limits(&self, ip: IpAddr) -> bool {
        self.limit_loopback || !ip.is_loopback()
    }
}

/// Most addresses the rate limiter remembers; past it, idle ones are forgotten first.
const MAX_TRACKED: usize = 100_000;

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes one token if there is one; else how long until there is.
    fn take(&mut self, rate_per_sec: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate_per_sec).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate_per_sec))
        }
    }

    fn has_token(&self, rate_per_sec: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let mut copy = *self;
        copy.take(rate_per_sec, burst, now)
    }
}

/// What a request is limited as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Enrolment,
    Report,
    AuthFailure,
}

/// Per-address token buckets, bounded in size.
#[derive(Debug)]
pub struct RateLimiter {
    config: HttpConfig,
    buckets: Mutex<HashMap<(IpAddr, Class), Bucket>>,
}

impl RateLimiter {
    /// Limits as `config` says.
    pub fn new(config: HttpConfig) -> Self {
        Self { config, buckets: Mutex::new(HashMap::new()) }
    }

    fn rate(&self, class: Class) -> (f64, f64) {
        match class {
            Class::Enrolment => {
                let n = f64::from(self.config.enrolments_per_minute);
                (n / 60.0, n)
            }
            Class::Report => {
                let n = f64::from(self.config.reports_per_second);
                (n, n * 10.0)
            }
            Class::AuthFailure => {
                let n = f64::from(self.config.auth_failures_per_minute);
                (n / 60.0, n)
            }
        }
    }

    fn with_bucket<T>(
        &self,
        ip: IpAddr,
        class: Class,
        now: Instant,
        f: impl FnOnce(&mut Bucket, f64, f64) -> T,
    ) -> T {
        let (rate, burst) = self.rate(class);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&(ip, class)) {
            // Full buckets say nothing a fresh one would not: forget those first.
            buckets.retain(|(_, c), b| {
                let (rate, burst) = self.rate(*c);
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            if buckets.len() >= MAX_TRACKED {
                buckets.clear();
            }
        }
        let bucket = buckets.entry((ip, class)).or_insert(Bucket { tokens: burst, at: now });
        f(bucket, rate, burst)
    }

    fn take(&self, ip: IpAddr, class: Class, now: Instant) -> Result<(), Duration> {
        self.with_bucket(ip, class, now, |b, rate, burst| b.take(rate, burst, now))
    }

    fn peek(&self, ip: IpAddr, class: Class, now: Instant) -> Result<(), Duration> {
        self.with_bucket(ip, class, now, |b, rate, burst| b.has_token(rate, burst, now))
    }
}

fn too_many(retry: Duration, what: &str) -> Response {
    let secs = retry.as_secs().max(1);
    let body = axum::Json(serde_json::json!({
        "error": format!("too many {what} from this address; retry in {secs} s")
    }));
    let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
    if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Middleware: rate limits per client address, and the request timeout.
pub async fn guard(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let limited = ip.filter(|ip| limiter.config.limits(*ip));
    let now = Instant::now();
    if let Some(ip) = limited {
        let class = match (request.method().as_str(), request.uri().path()) {
            ("POST", "/api/v1/enrol") => Some((Class::Enrolment, "enrolments")),
            ("POST", "/api/v1/reports") => Some((Class::Report, "reports")),
            _ => None,
        };
        if let Some((class, what)) = class
            && let Err(retry) = limiter.take(ip, class, now)
        {
            return too_many(retry, what);
        }
        // An address that keeps failing to log in is stopped before its next guess.
        if let Err(retry) = limiter.peek(ip, Class::AuthFailure, now) {
            return too_many(retry, "failed logins");
        }
    }
    let limit = Duration::from_secs(limiter.config.request_timeout_secs.max(1));
    let Ok(response) = tokio::time::timeout(limit, next.run(request)).await else {
        let message = format!("request not completed within {} s", limit.as_secs());
        let body = axum::Json(serde_json::json!({ "error": message }));
        return (StatusCode::REQUEST_TIMEOUT, body).into_response();
    };
    if response.status() == StatusCode::UNAUTHORIZED
        && let Some(ip) = limited
    {
        let _ = limiter.take(ip, Class::AuthFailure, now);
    }
    response
}

/// Counts connections per address; a slot is given back when its guard drops.
#[derive(Debug, Default)]
struct Connections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

struct Slot {
    connections: Arc<Mutex<Connections>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

fn admit(connections: &Arc<Mutex<Connections>>, config: &HttpConfig, ip: IpAddr) -> Option<Slot> {
    let mut c = connections.lock().unwrap_or_else(|e| e.into_inner());
    if c.total >= config.max_connections {
        return None;
    }
    let from_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
    if config.limits(ip) && from_ip >= config.max_connections_per_ip {
        return None;
    }
    c.total += 1;
    *c.per_ip.entry(ip).or_default() += 1;
    Some(Slot { connections: connections.clone(), ip })
}

/// Returns once `flag` is true (or its sender is gone).
async fn until_set(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

/// Serves `router` on `listener` until `stopped`, then lets open requests finish (up to the
/// request timeout).
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    config: HttpConfig,
    mut stopped: watch::Receiver<bool>,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let connections = Arc::new(Mutex::new(Connections::default()));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = until_set(&mut stopped) => break,
        };
        // Reap finished connections so the set stays as large as what is open.
        while tasks.try_join_next().is_some() {}
        let Some(slot) = admit(&connections, &config, peer.ip()) else {
            tracing::debug!(target: "ctl::api", %peer, "connection refused: too many open");
            drop(io);
            continue;
        };
        let service = router.clone();
        let mut drain = drain_rx.clone();
        let header_timeout = Duration::from_secs(config.header_read_timeout_secs.max(1));
        tasks.spawn(async move {
            let _slot = slot;
            let hyper_service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let mut service = service.clone();
                    async move {
                        use tower::Service;
                        service.call(request.map(axum::body::Body::new)).await
                    }
                },
            );
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let connection = builder.serve_connection(TokioIo::new(io), hyper_service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(target: "ctl::api", %peer, %error, "connection ended");
                    }
                }
                () = until_set(&mut drain) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
        });
    }
    let _ = drain_tx.send(true);
    let grace = Duration::from_secs(config.request_timeout_secs.max(1));
    let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_their_rate_up_to_the_burst() {
        let limiter =
            RateLimiter::new(HttpConfig { reports_per_second: 2, ..HttpConfig::default() });
        let ip: IpAddr = [192, 0, 2, 7].into();
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(limiter.take(ip, Class::Report, t0).is_ok());
        }
        let retry = limiter.take(ip, Class::Report, t0).unwrap_err();
        assert!(retry <= Duration::from_millis(500), "{retry:?}");
        assert!(limiter.take(ip, Class::Report, t0 + Duration::from_millis(500)).is_ok());
        // Another address has its own bucket; peeking takes nothing.
        let other: IpAddr = [192, 0, 2, 8].into();
        for _ in 0..5 {
            assert!(limiter.peek(other, Class::AuthFailure, t0).is_ok());
        }
        assert!(limiter.take(other, Class::Report, t0).is_ok());
    }

    #[test]
    fn connection_slots_per_address_and_in_total() {
        let config = HttpConfig {
            max_connections: 3,
            max_connections_per_ip: 2,
            limit_loopback: true,
            ..HttpConfig::default()
        };
        let connections = Arc::new(Mutex::new(Connections::default()));
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let first = admit(&connections, &config, a).unwrap();
        let _second = admit(&connections, &config, a).unwrap();
        assert!(admit(&connections, &config, a).is_none(), "per address");
        let _third = admit(&connections, &config, b).unwrap();
        assert!(admit(&connections, &config, b).is_none(), "in total");
        drop(first);
        assert!(admit(&connections, &config, a).is_some(), "a closed connection frees its slot");
    }
}
