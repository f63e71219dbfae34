//! The read-only HTML dashboard: what needs attention first (uncovered shards, critical
//! nodes, trees that failed or wait for a signature), then shard coverage, every node's
//! connections and health, the trees and the audit log; a page per node and per tree.
//!
//! Server-rendered with askama (templates in the workspace's `templates/dashboard/`), no
//! script at all, so the Content-Security-Policy forbids every script. Unless configured
//! public, the browser logs in with HTTP Basic: an account's name and its access token (the
//! bootstrap admin: `admin` and the admin token); every role may look.
//!
//! - [`view`] — rows turned into what the pages print.

pub(crate) mod view;

use std::sync::Arc;

use askama::Template;
use axum::{
    Router,
    extract::{Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use node::enrtree::NodeRecord;

use self::view::{
    Attention, AuditView, NodeView, ShardView, TreeView, VersionView, attention, shard_coverage,
};
use crate::{
    app::AppState,
    db::{
        DbError,
        rollouts::{Rollout, RolloutState},
        trees::VersionState,
    },
    error::AppError,
    health::Health,
};

/// Audit entries on the overview.
const AUDIT_SHOWN: i64 = 20;
/// How long a halted rollout stays on the overview.
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Versions on a tree's page.
const VERSIONS_SHOWN: i64 = 20;

/// What every dashboard answer carries: no scripts, frames, forms or caching.
const SECURITY_HEADERS: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// The dashboard's routes (none when it is disabled).
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    if !state.config.dashboard.enabled {
        return Router::new();
    }
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard", get(overview))
        .route("/dashboard/nodes/{id}", get(node_page))
        .route("/dashboard/trees/{name}", get(tree_page))
        .layer(middleware::from_fn_with_state(state, guard))
}

/// Logs the browser in (unless public) and adds the security headers.
async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let mut response = match login(&state, request.headers()).await {
        Ok(()) => next.run(request).await,
        Err(LoginError::Refused(why)) => {
            let mut response = error_page(StatusCode::UNAUTHORIZED, &why);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"wakufleet\", charset=\"UTF-8\""),
            );
            response
        }
        Err(LoginError::Failed(error)) => PageError(error).into_response(),
    };
    for (name, value) in SECURITY_HEADERS {
        response.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Why a login did not complete.
enum LoginError {
    /// Wrong or missing credentials: the browser asks again.
    Refused(String),
    /// The accounts could not be read.
    Failed(AppError),
}

impl From<&str> for LoginError {
    fn from(why: &str) -> Self {
        Self::Refused(why.to_owned())
    }
}

/// Checks an HTTP Basic login: the account's name as the user name, its access token (or, for
/// `admin`, the admin token) as the password. Every role may look.
async fn login(state: &AppState, headers: &HeaderMap) -> Result<(), LoginError> {
    if state.config.dashboard.public {
        return Ok(());
    }
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or("log in with your account's name and access token (admin: the admin token)")?;
    let decoded = data_encoding::BASE64
        .decode(credentials.trim().as_bytes())
        .map_err(|_| "the login is not valid Basic credentials")?;
    let text = std::str::from_utf8(&decoded).map_err(|_| "the login is not valid UTF-8")?;
    let (name, password) =
        text.split_once(':').ok_or("the login is not valid Basic credentials")?;
    let caller = crate::api::token_caller(state, password).await.map_err(LoginError::Failed)?;
    match caller {
        // The name must match too: what the audit log says is who logged in.
        Some(caller) if caller.name == name => Ok(()),
        _ => Err("wrong name or access token".into()),
    }
}

/// A failed page: the status and why, as HTML.
struct PageError(AppError);

impl From<AppError> for PageError {
    fn from(error: AppError) -> Self {
        Self(error)
    }
}

impl From<DbError> for PageError {
    fn from(error: DbError) -> Self {
        Self(AppError::Database(error))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        // The API's mapping of errors to statuses, with an HTML body instead of JSON.
        let message = self.0.to_string();
        let status = self.0.into_response().status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // The database's own words stay in the log.
            return error_page(status, "the database is unavailable; try again");
        }
        error_page(status, &message)
    }
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let page = ErrorPage {
        title: status.canonical_reason().unwrap_or("error").to_string(),
        status: status.as_u16(),
        message: message.to_string(),
        refresh_secs: 0,
    };
    (status, render(&page)).into_response()
}

fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(target: "ctl::dashboard", %error, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/error.html")]
struct ErrorPage {
    title: String,
    status: u16,
    message: String,
    refresh_secs: u32,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct Overview {
    title: String,
    refresh_secs: u32,
    generated: String,
    instance: String,
    publisher: bool,
    passing: usize,
    warning: usize,
    critical: usize,
    attention: Vec<Attention>,
    shards: Vec<ShardView>,
    nodes: Vec<NodeView>,
    trees: Vec<TreeView>,
    audit: Vec<AuditView>,
    min_relay_peers: u32,
}

async fn overview(State(state): State<Arc<AppState>>) -> Result<Response, PageError> {
    let now = state.db.now_ms();
    let mut rows = state.db.nodes().await?;
    // Worst first, then by label: what needs a look is at the top.
    rows.sort_by(|a, b| {
        health_rank(a.health).cmp(&health_rank(b.health)).then_with(|| a.label.cmp(&b.label))
    });
    let min_relay_peers = state.config.health.min_relay_peers;
    let nodes: Vec<NodeView> =
        rows.iter().map(|node| NodeView::new(node, now, min_relay_peers)).collect();
    let shards = shard_coverage(&rows);
    let mut trees = Vec::new();
    for tree in state.db.trees().await? {
        let versions = state.db.versions(&tree.name, 10).await?;
        trees.push(TreeView::new(&tree, &versions, now));
    }
    let audit = state.db.recent_audit_entries(AUDIT_SHOWN).await?;
    // Rollouts that halted in the last day: someone should look at the failed node.
    let halted: Vec<Rollout> = state
        .db
        .rollouts(false, 20)
        .await?
        .into_iter()
        .filter(|r| r.state == RolloutState::Halted && now - r.updated_at < DAY_MS)
        .collect();
    let count = |health| rows.iter().filter(|n| n.health == health).count();
    let page = Overview {
        title: "fleet".into(),
        refresh_secs: state.config.dashboard.refresh_secs,
        generated: view::utc(now),
        instance: state.instance.clone(),
        publisher: state.is_publisher(),
        passing: count(Health::Passing),
        warning: count(Health::Warning),
        critical: count(Health::Critical),
        attention: attention(&shards, &nodes, &trees, &halted),
        shards,
        nodes,
        trees,
        audit: audit.iter().map(AuditView::new).collect(),
        min_relay_peers,
    };
    Ok(render(&page))
}

fn health_rank(health: Health) -> u8 {
    match health {
        Health::Critical => 0,
        Health::Warning => 1,
        Health::Passing => 2,
    }
}

/// A name and a value, for the pages' detail lists.
struct Field {
    name: String,
    value: String,
}

impl Field {
    fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into() }
    }
}

#[derive(Template)]
#[template(path = "dashboard/node.html")]
struct NodePage {
    title: String,
    refresh_secs: u32,
    node: NodeView,
    enr: String,
    public_key: String,
    enrolled: String,
    figures: Vec<Field>,
    protocols: Vec<Field>,
    mesh: Vec<Field>,
    errors: Vec<String>,
    desired: String,
    history: Vec<Field>,
    trees: Vec<String>,
    report: String,
}

async fn node_page(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let now = state.db.now_ms();
    let row =
        state.db.node(&id).await?.ok_or_else(|| AppError::NotFound(format!("no node {id}")))?;
    let figures = row.figures().unwrap_or_default();
    let opt = |v: Option<String>| v.unwrap_or_else(|| view::NONE.into());
    let mut listed_in = Vec::new();
    for tree in state.db.trees().await? {
        let published = state.db.versions_in(&tree.name, VersionState::Published).await?;
        let lists = published.iter().flat_map(|v| &v.enrs).any(|enr| {
            enr.parse::<NodeRecord>().is_ok_and(|record| record.node_id_hex() == row.node_id)
        });
        if lists {
            listed_in.push(tree.name);
        }
    }
    let history = state
        .db
        .enr_history(&id)
        .await?
        .into_iter()
        .map(|(seq, enr, first_seen)| {
            Field::new(format!("seq {seq}, first seen {}", view::utc(first_seen)), enr)
        })
        .collect();
    let page = NodePage {
        title: format!("node {}", row.label),
        refresh_secs: 0,
        node: NodeView::new(&row, now, state.config.health.min_relay_peers),
        enr: row.enr.clone(),
        public_key: row.public_key.clone(),
        enrolled: view::utc(row.enrolled_at),
        figures: vec![
            Field::new("discv5 table", opt(figures.discv5_table.map(|n| n.to_string()))),
            Field::new(
                "inbound connections seen",
                opt(figures.inbound_seen.map(|seen| if seen { "yes" } else { "no" }.to_string())),
            ),
            Field::new(
                "messages in / out per second",
                format!(
                    "{} / {}",
                    opt(figures.messages_in_per_sec.map(|r| format!("{r:.2}"))),
                    opt(figures.messages_out_per_sec.map(|r| format!("{r:.2}")))
                ),
            ),
            Field::new(
                "measurements in this report",
                match (figures.merged, figures.measured_from) {
                    (Some(n), Some(from)) => format!("{n}, since {}", view::utc(from)),
                    (Some(n), None) => n.to_string(),
                    _ => "1".into(),
                },
            ),
            Field::new("report counter", row.last_counter.to_string()),
            Field::new("last sent", opt(row.last_sent_at.map(view::utc))),
            Field::new("reachability checked", opt(row.reachable_at.map(|at| view::ago(now, at)))),
        ],
        protocols: figures
            .peers_by_protocol
            .iter()
            .map(|(protocol, n)| Field::new(protocol.clone(), n.to_string()))
            .collect(),
        mesh: figures
            .mesh_per_shard
            .iter()
            .map(|(topic, n)| Field::new(topic.clone(), n.to_string()))
            .collect(),
        errors: figures.errors.clone(),
        desired: row.desired_config.as_ref().map_or_else(
            || "none set".into(),
            |desired| serde_json::to_string(desired).unwrap_or_default(),
        ),
        history,
        trees: listed_in,
        report: row
            .last_report
            .as_ref()
            .and_then(|r| serde_json::to_string_pretty(r).ok())
            .unwrap_or_default(),
    };
    Ok(render(&page))
}

/// A node a tree version lists.
struct Member {
    node_id: Option<String>,
    label: String,
    health: String,
    enr: String,
}

#[derive(Template)]
#[template(path = "dashboard/tree.html")]
struct TreePage {
    title: String,
    refresh_secs: u32,
    tree: TreeView,
    policy: Vec<Field>,
    links: Vec<String>,
    members: Vec<Member>,
    versions: Vec<VersionView>,
    pending_seq: Option<u64>,
}

async fn tree_page(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let now = state.db.now_ms();
    let tree =
        state.db.tree(&name).await?.ok_or_else(|| AppError::NotFound(format!("no tree {name}")))?;
    let versions = state.db.versions(&tree.name, VERSIONS_SHOWN).await?;
    let nodes = state.db.nodes().await?;
    let published = versions.iter().find(|v| v.state == VersionState::Published);
    let members = published
        .map(|version| {
            version
                .enrs
                .iter()
                .map(|enr| {
                    let id = enr.parse::<NodeRecord>().ok().map(|r| r.node_id_hex());
                    let node = id.as_ref().and_then(|id| nodes.iter().find(|n| &n.node_id == id));
                    Member {
                        node_id: node.map(|n| n.node_id.clone()),
                        label: node.map_or_else(|| "not enrolled".into(), |n| n.label.clone()),
                        health: node.map_or_else(String::new, |n| n.health.as_str().to_string()),
                        enr: enr.clone(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let policy = &tree.policy;
    let any = |list: String| if list.is_empty() { "any".to_string() } else { list };
    let page = TreePage {
        title: format!("tree {}", tree.name),
        refresh_secs: 0,
        tree: TreeView::new(&tree, &versions, now),
        policy: vec![
            Field::new("roles", any(policy.roles.join(", "))),
            Field::new(
                "shards",
                any(policy.shards.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")),
            ),
            Field::new(
                "cluster",
                policy.cluster_id.map_or_else(|| "any".into(), |c| c.to_string()),
            ),
            Field::new(
                "nodes listed",
                if policy.list_nodes {
                    format!("at most {}", policy.max_entries)
                } else {
                    "none (links only)".into()
                },
            ),
        ],
        links: published
            .map(|v| v.links.clone())
            .unwrap_or_else(|| policy.links.iter().map(ToString::to_string).collect()),
        members,
        versions: versions.iter().map(VersionView::new).collect(),
        pending_seq: versions.iter().find(|v| v.state == VersionState::Pending).map(|v| v.seq),
    };
    Ok(render(&page))
}
