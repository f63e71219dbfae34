//! The HTML dashboard: what needs attention first (uncovered shards, critical nodes, trees
//! that failed or wait for a signature), then shard coverage, every node's connections and
//! health, the trees and the audit log; a page per node, tree and rollout; and the work
//! itself as forms, each shown only to the roles that may send it.
//!
//! Server-rendered with askama (templates in the workspace's `templates/dashboard/`), no
//! script at all, so the Content-Security-Policy forbids every script, and forms may post
//! only here. Unless configured public (then read-only), the browser logs in with HTTP Basic:
//! an account's name and its access token (the bootstrap admin: `admin` and the admin token);
//! every role may look, and an action needs its role, a same-origin request and the person's
//! CSRF token.
//!
//! - [`session`] — the login, the CSRF token, the same-origin check.
//! - [`form`] — form posts ([`form::Posted`]) and their fields.
//! - [`actions`] — what each form does (the JSON API's own functions, audited alike).
//! - [`manage`] — the pages for enrolment tokens, rollouts, accounts and new trees.
//! - [`view`] — rows turned into what the pages print.
//! - [`chart`] — the pictures: line charts as inline SVG.

mod actions;
mod chart;
mod form;
mod manage;
pub(crate) mod session;
pub(crate) mod view;

use std::sync::Arc;

use askama::Template;
use axum::{
    Extension, Router,
    extract::{Path, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use node::enrtree::NodeRecord;

use self::view::{
    Attention, AuditView, NodeView, ShardView, TreeView, VersionView, attention, shard_coverage,
};
use self::{
    manage::DefinitionForm,
    session::{LoginError, Nav, Session, check_same_origin, login},
};
use crate::{
    access::Caller,
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

/// What every dashboard answer carries: no scripts, frames or caching; forms post only here.
const SECURITY_HEADERS: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::CACHE_CONTROL, "no-store"),
    // Not `no-referrer`: with it Chromium sends `Origin: null` with the dashboard's own forms,
    // which the same-origin check must refuse. Other sites still learn nothing.
    (header::REFERRER_POLICY, "same-origin"),
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
        .route("/dashboard/nodes/{id}/maintenance", post(actions::start_maintenance))
        .route("/dashboard/nodes/{id}/maintenance/end", post(actions::end_maintenance))
        .route("/dashboard/nodes/{id}/config", post(actions::node_config))
        .route("/dashboard/nodes/{id}/membership", post(actions::membership))
        .route("/dashboard/nodes/{id}/decommission", post(actions::decommission))
        .route("/dashboard/new-tree", get(manage::new_tree))
        .route("/dashboard/trees", post(actions::create_tree))
        .route("/dashboard/trees/{name}", get(tree_page))
        .route("/dashboard/trees/{name}/definition", post(actions::edit_tree))
        .route("/dashboard/trees/{name}/retire", post(actions::retire_tree))
        .route("/dashboard/trees/{name}/keep", post(actions::keep))
        .route("/dashboard/trees/{name}/sign-request", get(actions::download_sign_request))
        .route("/dashboard/trees/{name}/signature", post(actions::upload_signature))
        .route("/dashboard/tokens", get(manage::tokens).post(actions::create_token))
        .route("/dashboard/tokens/{id}/revoke", post(actions::revoke_token))
        .route("/dashboard/rollouts", get(manage::rollouts).post(actions::create_rollout))
        .route("/dashboard/rollouts/{id}", get(manage::rollout))
        .route("/dashboard/rollouts/{id}/cancel", post(actions::cancel_rollout))
        .route("/dashboard/access", get(manage::access).post(actions::create_access))
        .route("/dashboard/access/{name}/revoke", post(actions::revoke_access))
        .layer(middleware::from_fn_with_state(state, guard))
}

/// Logs the browser in (unless public), refuses actions another site sent, hands the pages
/// the [`Session`] and adds the security headers.
async fn guard(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let mut response = match login(&state, request.headers()).await {
        Ok(session) => match check_same_origin(request.method(), request.headers()) {
            Ok(()) => {
                request.extensions_mut().insert(session);
                next.run(request).await
            }
            Err(error) => PageError(error).into_response(),
        },
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

/// A failed page: the status and why, as HTML.
pub(crate) struct PageError(AppError);

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
        nav: Nav::default(),
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
    nav: Nav,
}

/// What an action did, or a secret shown once.
#[derive(Template)]
#[template(path = "dashboard/notice.html")]
pub(crate) struct Notice {
    title: String,
    refresh_secs: u32,
    nav: Nav,
    message: String,
    secret: Option<String>,
    back: String,
}

impl Notice {
    /// What an action did.
    fn message(caller: &Caller, title: &str, message: String, back: String) -> Self {
        let nav = Session { caller: Some(caller.clone()), csrf: String::new() }.nav();
        Self { title: title.into(), refresh_secs: 0, nav, message, secret: None, back }
    }

    /// A secret the controller keeps only a digest of: shown now, never again.
    fn secret(caller: &Caller, title: &str, message: String, secret: String, back: &str) -> Self {
        Self { secret: Some(secret), ..Self::message(caller, title, message, back.into()) }
    }
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct Overview {
    title: String,
    refresh_secs: u32,
    nav: Nav,
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
    /// The fleet's bootstrap latencies as a distribution (inline SVG), when any node has one.
    bootstrap_chart: Option<String>,
    /// Passing nodes per shard over the last day (inline SVG), once the publisher sampled.
    coverage_chart: Option<String>,
}

async fn overview(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Result<Response, PageError> {
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
    let bootstrap_chart = bootstrap_distribution(&nodes);
    let page = Overview {
        title: "fleet".into(),
        refresh_secs: state.config.dashboard.refresh_secs,
        nav: session.nav(),
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
        bootstrap_chart,
        coverage_chart: coverage_over_time(&state.db.shard_samples(now - DAY_MS).await?),
    };
    Ok(render(&page))
}

/// Shards drawn at most in the coverage picture (the table above lists every shard).
const COVERAGE_SERIES: usize = 8;

/// Passing nodes per shard over time, from the publisher's samples: one line per shard (the
/// first [`COVERAGE_SERIES`]), with one node as the line where a shard has no spare.
fn coverage_over_time(samples: &[(i64, crate::db::nodes::ShardSample)]) -> Option<String> {
    type ShardKey = (Option<u16>, u16);
    let mut series: std::collections::BTreeMap<ShardKey, Vec<(i64, f64)>> = Default::default();
    for (at, sample) in samples {
        let key = (sample.cluster_id, sample.shard);
        if series.len() < COVERAGE_SERIES || series.contains_key(&key) {
            series.entry(key).or_default().push((*at, sample.passing as f64));
        }
    }
    if series.is_empty() {
        return None;
    }
    let chart = chart::LineChart {
        title: "Passing nodes per shard".into(),
        series: series
            .into_iter()
            .map(|((cluster, shard), points)| {
                let cluster = cluster.map_or_else(|| "?".into(), |c| c.to_string());
                (format!("shard {cluster}/{shard}"), points)
            })
            .collect(),
        threshold: Some(("one node: no spare".into(), 1.0)),
        ..Default::default()
    };
    Some(chart.to_string())
}

/// Each node's bootstrap latency (start to the target relay peers, as its agent measured it)
/// as a cumulative distribution: the share of nodes bootstrapped within x seconds.
fn bootstrap_distribution(nodes: &[NodeView]) -> Option<String> {
    let mut seconds: Vec<f64> = nodes
        .iter()
        .filter_map(|node| node.bootstrap_seconds)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .collect();
    if seconds.is_empty() {
        return None;
    }
    seconds.sort_by(f64::total_cmp);
    let n = seconds.len() as f64;
    let points = seconds
        .iter()
        .enumerate()
        .map(|(i, s)| ((s * 1000.0) as i64, (i + 1) as f64 / n))
        .collect();
    let chart = chart::LineChart {
        title: "Bootstrap latency: share of nodes within x seconds".into(),
        series: vec![("nodes bootstrapped".into(), points)],
        y_floor_max: 1.0,
        x_seconds: true,
        ..Default::default()
    };
    Some(chart.to_string())
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
    nav: Nav,
    /// Each membership role and whether the node has it.
    role_choices: Vec<(&'static str, bool)>,
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
    /// Each chart's caption and inline SVG over the kept reports ([`chart::LineChart`],
    /// escaped there).
    charts: Vec<(String, String)>,
}

/// The node's pictures over its kept reports: relay peers against the minimum, fleet share,
/// how old each report was on arrival, restarts by the agent.
fn node_charts(
    points: &[crate::db::nodes::ReportPoint],
    min_relay_peers: u32,
) -> Vec<(String, String)> {
    let series = |name: &str, value: &dyn Fn(&crate::db::nodes::ReportPoint) -> Option<f64>| {
        let values = points.iter().filter_map(|p| Some((p.measured_at, value(p)?))).collect();
        vec![(name.to_owned(), values)]
    };
    let min = f64::from(min_relay_peers);
    [
        chart::LineChart {
            title: "Relay peers against the minimum".into(),
            series: series("relay peers", &|p| p.figures.relay_peers.map(f64::from)),
            threshold: Some((format!("minimum {min_relay_peers}"), min)),
            ..Default::default()
        },
        chart::LineChart {
            title: "Fleet share of relay peers".into(),
            series: series("fleet share", &|p| p.figures.fleet_share),
            y_floor_max: 1.0,
            ..Default::default()
        },
        chart::LineChart {
            title: "Report age on arrival".into(),
            unit: " s".into(),
            series: series("seconds from measurement to arrival", &|p| {
                Some((p.received_at - p.measured_at).max(0) as f64 / 1000.0)
            }),
            ..Default::default()
        },
        chart::LineChart {
            title: "Restarts by the agent".into(),
            series: series("restarts", &|p| p.figures.restarts.map(|r| r as f64)),
            ..Default::default()
        },
    ]
    .iter()
    .map(|chart| (chart.title.clone(), chart.to_string()))
    .collect()
}

async fn node_page(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
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
        nav: session.nav(),
        role_choices: crate::membership::ROLES
            .iter()
            .map(|role| (*role, row.roles.iter().any(|r| r == role)))
            .collect(),
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
        charts: node_charts(
            &state.db.report_history(&id).await?,
            state.config.health.min_relay_peers,
        ),
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
    nav: Nav,
    /// The definition as an editable form (operators).
    definition: DefinitionForm,
    retiring: bool,
    tree: TreeView,
    policy: Vec<Field>,
    links: Vec<String>,
    members: Vec<Member>,
    versions: Vec<VersionView>,
    pending_seq: Option<u64>,
    /// Caption and inline SVG: the tree's records per version and its signing state over time.
    charts: Vec<(String, String)>,
}

/// A tree's versions over time: how many records each listed, split by how far it got
/// (published, or built and waiting for a signature, or overtaken unsigned).
fn tree_charts(versions: &[crate::db::trees::VersionRow]) -> Vec<(String, String)> {
    let of = |states: &[VersionState]| -> Vec<(i64, f64)> {
        versions
            .iter()
            .filter(|v| states.contains(&v.state))
            .map(|v| (v.created_at, v.enrs.len() as f64))
            .collect()
    };
    let records = chart::LineChart {
        title: "Records per version, by signing state".into(),
        series: vec![
            (
                "published (now or before)".into(),
                of(&[VersionState::Published, VersionState::Superseded, VersionState::Retired]),
            ),
            ("awaiting a signature".into(), of(&[VersionState::Pending, VersionState::Signed])),
            ("abandoned unsigned".into(), of(&[VersionState::Abandoned])),
        ],
        ..Default::default()
    };
    let seq = chart::LineChart {
        title: "seq of each version".into(),
        series: vec![(
            "seq".into(),
            versions.iter().map(|v| (v.created_at, v.seq as f64)).collect(),
        )],
        ..Default::default()
    };
    [records, seq].iter().map(|chart| (chart.title.clone(), chart.to_string())).collect()
}

async fn tree_page(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
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
        nav: session.nav(),
        definition: DefinitionForm::new(Some(&tree)),
        retiring: tree.retire_at.is_some(),
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
        charts: tree_charts(&versions),
    };
    Ok(render(&page))
}
