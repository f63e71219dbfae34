//! The API's server on the open internet (issue: trust boundary, part 5): a slowloris client,
//! one address opening every connection, guessing tokens, flooding enrolments, a body that
//! never finishes. Each held the server before (`axum::serve` has no header timer or caps);
//! each is cut off now while other clients are still served.
//!
//! Every client here is on 127.0.0.0/8, so the tests turn on `limit_loopback`; a second
//! "host" is a socket bound to 127.0.0.2.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use controller::{app::Controller, config::ControllerConfig, http_server::HttpConfig};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::common::controller::test_config;

const ADMIN: &str = "http-limits-admin";

async fn start(http: HttpConfig) -> (Controller, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = ControllerConfig { http, ..test_config(dir.path(), ADMIN, None) };
    let controller = Controller::start(config, Default::default(), Vec::new()).await.unwrap();
    (controller, dir)
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the server closed `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // An error response (408) before the close is fine; keep reading to the close.
            Ok(Ok(_)) => {}
        }
    }
}

fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::from(ip)).build().unwrap()
}

#[tokio::test]
async fn half_sent_headers_are_cut_off_and_others_are_still_served() {
    let (controller, _dir) =
        start(HttpConfig { header_read_timeout_secs: 1, ..HttpConfig::default() }).await;
    let addr = controller.http_addr();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        slow.push(stream);
    }
    // A client that connects and says nothing at all holds a slot the same way.
    let mut silent = TcpStream::connect(addr).await.unwrap();

    // While they hang, an honest client is answered.
    let health = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(health.status(), 200);

    let started = Instant::now();
    for stream in &mut slow {
        // Keep trickling bytes: the header timer must not restart on each one.
        let _ = stream.write_all(b"a").await;
    }
    for (i, stream) in slow.iter_mut().enumerate() {
        assert!(closed_within(stream, Duration::from_secs(5)).await, "slow connection {i} open");
    }
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "silent connection open");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    controller.shutdown().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let (controller, _dir) = start(HttpConfig {
        max_connections_per_ip: 4,
        header_read_timeout_secs: 30,
        limit_loopback: true,
        ..HttpConfig::default()
    })
    .await;
    let addr = controller.http_addr();
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect_from([127, 0, 0, 1], addr).await;
        stream.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        held.push(stream);
    }
    // Give the server time to count them: accepted connections are admitted in order.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = connect_from([127, 0, 0, 1], addr).await;
    assert!(closed_within(&mut fifth, Duration::from_secs(2)).await, "fifth connection kept");

    // Another address is served meanwhile.
    let other = client_from([127, 0, 0, 2]);
    let health = other.get(format!("http://{addr}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // A closed connection gives its slot back.
    drop(held.pop());
    let first = client_from([127, 0, 0, 1]);
    let mut answered = false;
    for _ in 0..50 {
        if let Ok(response) = first.get(format!("http://{addr}/health")).send().await {
            answered = response.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "the freed slot was not given back");
    controller.shutdown().await;
}

#[tokio::test]
async fn guessing_tokens_and_flooding_enrolments_are_rate_limited_per_address() {
    let (controller, _dir) = start(HttpConfig {
        auth_failures_per_minute: 3,
        enrolments_per_minute: 2,
        limit_loopback: true,
        ..HttpConfig::default()
    })
    .await;
    let base = format!("http://{}", controller.http_addr());
    let guesser = client_from([127, 0, 0, 1]);
    for guess in 0..3 {
        let response = guesser
            .get(format!("{base}/api/v1/nodes"))
            .bearer_auth(format!("guess-{guess}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    // Out of guesses: even the right token waits now, and says how long.
    let response =
        guesser.get(format!("{base}/api/v1/nodes")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("failed logins"), "{body}");

    // Another address is not punished for it.
    let operator = client_from([127, 0, 0, 2]);
    let response =
        operator.get(format!("{base}/api/v1/nodes")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // Enrolments: two attempts a minute from one address, whatever their bodies.
    let flooder = client_from([127, 0, 0, 3]);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = flooder
            .post(format!("{base}/api/v1/enrol"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_ne!(statuses[0], 429);
    assert_ne!(statuses[1], 429);
    assert_eq!(statuses[2], 429, "{statuses:?}");
    controller.shutdown().await;
}

#[tokio::test]
async fn a_body_that_never_finishes_is_answered_408() {
    let (controller, _dir) =
        start(HttpConfig { request_timeout_secs: 1, ..HttpConfig::default() }).await;
    let addr = controller.http_addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/tokens HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"label\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    controller.shutdown().await;
}
