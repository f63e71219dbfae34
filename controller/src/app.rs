//! The running controller: shared state, the HTTP server, the DNS server and the reconcile
//! loop, started together and stopped together.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::TcpListener,
    sync::{Mutex, Notify, watch},
    task::JoinHandle,
};

use crate::{
    config::{ConfigError, ControllerConfig, TlsConfig},
    db::{Db, DbError},
    keyring::Keyring,
    publish::{Publisher, dns_server::DnsServer, zone::TxtZone},
};

/// What every request handler and the reconcile loop share.
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The configuration.
    pub config: ControllerConfig,
    /// Online signing keys.
    pub keyring: Keyring,
    /// The operators' bearer token.
    pub admin_token: Option<String>,
    /// The built-in DNS server.
    pub dns: Option<DnsServer>,
    /// External publishers (RFC 2136, files…).
    pub publishers: Vec<Box<dyn Publisher>>,
    /// This controller's id in leases.
    pub instance: String,
    /// Held during a reconcile pass: passes never overlap.
    pub(crate) reconcile_pass: Mutex<()>,
    /// Whether this instance held the publisher lease at its last pass.
    pub(crate) publisher: std::sync::atomic::AtomicBool,
    /// What the trees expect of nodes, as of the last reconcile pass (for reports' health
    /// checks between passes).
    expectations: std::sync::RwLock<std::sync::Arc<crate::drift::Expectations>>,
    /// This instance's counters.
    pub metrics: crate::metrics::ControllerMetrics,
    /// Trees whose membership changed, and since when (their settle window runs).
    pub(crate) settling: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// The fleet as of the last reconcile pass, for reports' answers.
    fleet: std::sync::RwLock<std::sync::Arc<crate::fleet_hint::FleetSnapshot>>,
    /// Wakes the reconcile loop early (a report changed something).
    pub wake: Notify,
    /// Verified reports waiting for the next group commit ([`crate::ingest`]).
    pub reports: crate::ingest::ReportQueue,
    /// The (tree, seq, state) of the versions the built-in DNS server serves now.
    pub(crate) served: Mutex<Option<Vec<(String, u64, crate::db::trees::VersionState)>>>,
}

impl AppState {
    /// Whether this instance is the publisher (held the lease at its last pass).
    pub fn is_publisher(&self) -> bool {
        self.publisher.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_publisher(&self, held: bool) {
        self.publisher.store(held, std::sync::atomic::Ordering::Relaxed);
        self.metrics.set_lease_held(held);
    }

    /// What the trees expect of nodes, as of the last reconcile pass.
    pub fn expectations(&self) -> std::sync::Arc<crate::drift::Expectations> {
        self.expectations.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_expectations(&self, expected: crate::drift::Expectations) {
        *self.expectations.write().unwrap_or_else(|e| e.into_inner()) =
            std::sync::Arc::new(expected);
    }

    /// The fleet as of the last reconcile pass.
    pub fn fleet(&self) -> std::sync::Arc<crate::fleet_hint::FleetSnapshot> {
        self.fleet.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_fleet(&self, fleet: crate::fleet_hint::FleetSnapshot) {
        *self.fleet.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(fleet);
    }

    /// Root and other TTLs for tree records.
    pub fn ttls(&self) -> (u32, u32) {
        (self.config.root_ttl, self.config.ttl)
    }
}

/// Why the controller cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A socket.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics registry (a programming error).
    #[error("metrics: {0}")]
    Metrics(prometheus::Error),
    /// The DNS server.
    #[error(transparent)]
    Dns(#[from] crate::publish::dns_server::DnsServerError),
}

/// A running controller.
pub struct Controller {
    state: Arc<AppState>,
    http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Controller {
    /// Starts the controller with `config`, the unlocked `keyring` and external `publishers`.
    pub async fn start(
        config: ControllerConfig,
        keyring: Keyring,
        publishers: Vec<Box<dyn Publisher>>,
    ) -> Result<Self, StartError> {
        Self::start_with_clock(config, keyring, publishers, Arc::new(node::clock::SystemClock))
            .await
    }

    /// [`Controller::start`] on `clock`'s time: every report age, lease, retirement window and
    /// rollout deadline is measured by it (tests move it forward instead of sleeping).
    pub async fn start_with_clock(
        config: ControllerConfig,
        keyring: Keyring,
        publishers: Vec<Box<dyn Publisher>>,
        clock: Arc<dyn node::clock::Clock>,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let admin_token = config.admin_token()?;
        let db = Db::connect(&config.database_url).await?.with_clock(clock);
        for tree in &config.trees {
            if db.tree(&tree.name).await?.is_some_and(|t| t.retire_at.is_some()) {
                tracing::warn!(target: "ctl", tree = %tree.name, "tree retired over the API is still in the configuration: left as it is");
                continue;
            }
            crate::tree_definition::define(&db, &config, &keyring, tree, "config")
                .await
                .map_err(|e| ConfigError::Invalid(format!("tree {}: {e}", tree.name)))?;
        }
        let dns = match &config.dns {
            Some(dns) => {
                let zones = vec![TxtZone::new(&dns.zone, 1)];
                Some(
                    DnsServer::start_limited(dns.listen, zones, dns.apex(), dns.rate_limit())
                        .await?,
                )
            }
            None => None,
        };
        let tls = config.tls.as_ref().map(TlsConfig::load).transpose()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen { addr: config.listen, source })?;
        let http_addr = listener
            .local_addr()
            .map_err(|source| StartError::Listen { addr: config.listen, source })?;
        let mut instance = [0u8; 8];
        node::crypto::random_bytes(&mut instance);
        let (reports, report_writer) = crate::ingest::queue();
        let state = Arc::new(AppState {
            reports,
            db,
            config,
            keyring,
            admin_token,
            dns,
            publishers,
            instance: data_encoding::HEXLOWER.encode(&instance),
            reconcile_pass: Mutex::new(()),
            publisher: std::sync::atomic::AtomicBool::new(false),
            expectations: std::sync::RwLock::default(),
            fleet: std::sync::RwLock::default(),
            settling: std::sync::Mutex::default(),
            metrics: crate::metrics::ControllerMetrics::new().map_err(StartError::Metrics)?,
            wake: Notify::new(),
            served: Mutex::new(None),
        });
        for publisher in &state.publishers {
            state.metrics.register_publisher(&publisher.name());
        }
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let router = crate::api::router(state.clone());
        let http = state.config.http.clone();
        tasks.push(match tls {
            Some(tls) => {
                let listener = crate::tls_listener::TlsListener::new(listener, tls, http.clone());
                tokio::spawn(crate::http_server::serve(listener, router, http, stopped.clone()))
            }
            None => {
                tokio::spawn(crate::http_server::serve(listener, router, http, stopped.clone()))
            }
        });
        tasks.push(tokio::spawn(crate::ingest::run(state.clone(), report_writer, stopped.clone())));
        tasks.push(tokio::spawn(crate::reachability::run(state.clone(), stopped.clone())));
        tasks.push(tokio::spawn(reconcile_loop(state.clone(), stopped)));
        tracing::info!(target: "ctl", %http_addr, dns = ?state.dns.as_ref().map(DnsServer::local_addr), "controller started");
        Ok(Self { state, http_addr, stop, tasks })
    }

    /// The HTTP API's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The built-in DNS server's address.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.state.dns.as_ref().map(DnsServer::local_addr)
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Runs one reconcile pass now.
    pub async fn reconcile_now(&self) -> Result<(), crate::reconcile::ReconcileError> {
        crate::reconcile::reconcile(&self.state).await
    }

    /// Stops the HTTP server and the loop; releases the publisher lease.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = self.state.db.release_lease("publisher", &self.state.instance).await;
    }
}

/// Woken passes start at most this often (or every interval, if that is shorter): under a
/// thousand agents' reports a wake comes every few milliseconds, and back-to-back passes of
/// tens of milliseconds each took a core from report ingest.
const MIN_WOKEN_GAP: Duration = Duration::from_secs(1);

async fn reconcile_loop(state: Arc<AppState>, mut stopped: watch::Receiver<bool>) {
    let interval = Duration::from_millis(state.config.reconcile_interval_ms.max(100));
    let gap = interval.min(MIN_WOKEN_GAP);
    loop {
        let started = std::time::Instant::now();
        let result = crate::reconcile::reconcile(&state).await;
        state.metrics.reconcile_pass(started.elapsed(), result.is_ok());
        if let Err(error) = result {
            tracing::warn!(target: "ctl", %error, "reconcile pass failed");
        }
        let woken = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = state.wake.notified() => true,
            _ = stopped.wait_for(|s| *s) => return,
        };
        if woken {
            // Changes that arrive meanwhile are taken by the same pass.
            let earliest = tokio::time::Instant::from_std(started + gap);
            tokio::select! {
                _ = tokio::time::sleep_until(earliest) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    }
}
