//! Faults: the archive's Postgres goes away and comes back. Store degrades (errors counted,
//! queries answered 503), relay goes on, and store recovers when the database returns. Uses a
//! throwaway Postgres cluster of its own (initdb + pg_ctl on a free port), so the machine's
//! server is never stopped.

use crate::common;

use std::{path::Path, process::Command, time::Duration};

use node::{
    message::{WakuMessage, now_ns},
    running::NodeEvent,
    store::{proto::StoreQueryRequest, status},
};
use tokio::time::timeout;

const TOPIC: &str = "/waku/2/rs/0/0";
const CONTENT: &str = "/wakufleet/1/fault/proto";

fn pg_bin(tool: &str) -> String {
    let version = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres server binaries (bash tests/run.sh installs them)")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .unwrap();
    format!("/usr/lib/postgresql/{version}/bin/{tool}")
}

/// Runs a Postgres tool as the postgres user (the server refuses to run as root).
fn run_as_postgres(command: &str) -> std::process::Output {
    if nix_is_root() {
        Command::new("su").args(["postgres", "-s", "/bin/sh", "-c", command]).output().unwrap()
    } else {
        Command::new("sh").args(["-c", command]).output().unwrap()
    }
}

/// Runs a Postgres tool as the postgres user and insists it succeeds.
fn as_postgres(command: &str) {
    let out = run_as_postgres(command);
    assert!(
        out.status.success(),
        "{command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn create() -> Self {
        let dir = tempfile::Builder::new().prefix("wakufleet-pg").tempdir_in("/tmp").unwrap();
        if nix_is_root() {
            Command::new("chown")
                .args(["-R", "postgres:postgres", dir.path().to_str().unwrap()])
                .status()
                .unwrap();
        }
        let port = node::free_port::free_port();
        let data = dir.path().join("data");
        as_postgres(&format!(
            "{} -D {} -A trust -U postgres >/dev/null",
            pg_bin("initdb"),
            data.display()
        ));
        let cluster = Self { dir, port };
        cluster.start();
        cluster
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        as_postgres(&format!(
            "{} -D {} -o '{options}' -l {} -w start >/dev/null",
            pg_bin("pg_ctl"),
            self.data().display(),
            Path::new(&self.dir.path()).join("log").display()
        ));
    }

    fn stop(&self) {
        as_postgres(&format!(
            "{} -D {} -m immediate -w stop >/dev/null",
            pg_bin("pg_ctl"),
            self.data().display()
        ));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        run_as_postgres(&format!(
            "{} -D {} -m immediate stop",
            pg_bin("pg_ctl"),
            self.data().display()
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_postgres_degrades_store_only_and_it_recovers() {
    let cluster = Cluster::create();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let (store, relayer, client) = common::store_network(url).await;
    let query = || StoreQueryRequest {
        pubsub_topic: Some(TOPIC.into()),
        content_topics: vec![CONTENT.into()],
        pagination_forward: true,
        ..StoreQueryRequest::default()
    };
    let stored = |n: usize| {
        let client = client.clone();
        let peer = store.peer_id();
        async move {
            timeout(Duration::from_secs(30), async {
                loop {
                    let response = client.store_query(peer, query()).await.unwrap();
                    if response.status_code == Some(status::SUCCESS) && response.messages.len() >= n
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await
            .expect("messages archived")
        }
    };

    relayer.publish(TOPIC, WakuMessage::new(CONTENT, b"before".to_vec(), now_ns())).await.unwrap();
    stored(1).await;

    // The database goes away: relay goes on, the archive counts errors, queries answer 503.
    cluster.stop();
    let mut events = store.events();
    relayer.publish(TOPIC, WakuMessage::new(CONTENT, b"during".to_vec(), now_ns())).await.unwrap();
    let relayed = timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(NodeEvent::Message { message, .. }) = events.recv().await {
                return message;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(relayed.payload, b"during", "relay goes on without the database");
    timeout(Duration::from_secs(30), async {
        while store.stats().await.unwrap().archive_errors == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("archive errors counted");
    let down = client.store_query(store.peer_id(), query()).await.unwrap();
    assert_eq!(down.status_code, Some(status::SERVICE_UNAVAILABLE), "{down:?}");

    // It comes back: store works again without restarting the node.
    cluster.start();
    relayer.publish(TOPIC, WakuMessage::new(CONTENT, b"after".to_vec(), now_ns())).await.unwrap();
    stored(2).await;
}

/// A size-limited tmpfs mount, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> Self {
        let dir = tempfile::Builder::new().prefix("wakufleet-disk").tempdir_in("/tmp").unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount (the full-disk test needs root, as CI has)");
        assert!(status.success(), "mounting a {bytes}-byte tmpfs needs root, as CI has");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk to the last byte with a filler file.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.flush();
        while file.write_all(&block[..1]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_degrades_store_only_and_it_recovers() {
    let disk = SmallDisk::mount(4 * 1024 * 1024);
    let url = format!("sqlite://{}", disk.path().join("store.db").display());
    let (store, relayer, client) = common::store_network(url).await;
    let query = || StoreQueryRequest {
        pubsub_topic: Some(TOPIC.into()),
        content_topics: vec![CONTENT.into()],
        pagination_forward: true,
        include_data: true,
        ..StoreQueryRequest::default()
    };
    let stored_payloads = || {
        let client = client.clone();
        let peer = store.peer_id();
        async move {
            let response = client.store_query(peer, query()).await.unwrap();
            assert_eq!(response.status_code, Some(status::SUCCESS), "{response:?}");
            response
                .messages
                .into_iter()
                .filter_map(|m| m.message.map(|m| String::from_utf8_lossy(&m.payload).into_owned()))
                .collect::<Vec<_>>()
        }
    };
    let wait_stored = |payload: &'static str| async move {
        timeout(Duration::from_secs(30), async {
            while !stored_payloads().await.iter().any(|p| p == payload) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{payload} archived"))
    };

    relayer.publish(TOPIC, WakuMessage::new(CONTENT, b"before".to_vec(), now_ns())).await.unwrap();
    wait_stored("before").await;

    // The disk fills up: relay goes on, the archive counts errors, what is stored still answers.
    let filler = disk.fill();
    let mut events = store.events();
    let big = vec![b'x'; 100 * 1024];
    for _ in 0..8 {
        relayer.publish(TOPIC, WakuMessage::new(CONTENT, big.clone(), now_ns())).await.unwrap();
    }
    relayer.publish(TOPIC, WakuMessage::new(CONTENT, b"during".to_vec(), now_ns())).await.unwrap();
    timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(NodeEvent::Message { message, .. }) = events.recv().await
                && message.payload == b"during"
            {
                return;
            }
        }
    })
    .await
    .expect("relay goes on with a full disk");
    timeout(Duration::from_secs(30), async {
        while store.stats().await.unwrap().archive_errors == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("archive errors counted");
    let during = stored_payloads().await;
    assert!(during.contains(&"before".to_owned()), "stored messages still served: {during:?}");
    let big_stored = during.iter().filter(|p| p.len() == big.len()).count();
    assert!(big_stored < 8, "a full disk cannot hold 800 KB more; {big_stored} of 8 stored");

    // Space comes back: the same node archives again.
    std::fs::remove_file(filler).unwrap();
    relayer.publish(TOPIC, WakuMessage::new(CONTENT, b"after".to_vec(), now_ns())).await.unwrap();
    wait_stored("after").await;
    let after = stored_payloads().await;
    assert_eq!(after.iter().filter(|p| *p == "before").count(), 1, "nothing stored twice");
}
