//! The pages where people do the work (each shows its forms only to the roles that may send
//! them): enrolment tokens, rollouts and accounts.

use std::sync::Arc;

use askama::Template;
use axum::{
    Extension,
    extract::{Path, State},
    response::Response,
};

use super::{
    PageError, render,
    session::{Nav, Session},
    view::{self, NONE},
};
use crate::{
    access::{Permission, Role},
    app::AppState,
    db::rollouts::RolloutState,
    error::AppError,
    membership::ROLES,
};

/// Rollouts listed.
const ROLLOUTS_SHOWN: i64 = 50;

/// One enrolment token as a row.
struct TokenRow {
    id: String,
    label: String,
    roles: String,
    ceiling: String,
    created: String,
    expires: String,
    /// "active", "used by …", "revoked by …", "expired".
    state: String,
    revocable: bool,
    node_id: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/tokens.html")]
struct TokensPage {
    title: String,
    refresh_secs: u32,
    nav: Nav,
    roles: Vec<&'static str>,
    tokens: Vec<TokenRow>,
}

/// `GET /dashboard/tokens`: enrolment tokens (operators and admins).
pub(super) async fn tokens(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Result<Response, PageError> {
    session.require(Permission::Operate)?;
    let now = state.db.now_ms();
    let tokens = state
        .db
        .tokens()
        .await?
        .into_iter()
        .map(|t| {
            let (state, revocable) = match (&t.used_at, &t.revoked_by) {
                (Some(at), _) => (format!("used {}", view::ago(now, *at)), false),
                (None, Some(by)) => (format!("revoked by {by}"), false),
                (None, None) if t.expires_at <= now => ("expired".to_owned(), false),
                (None, None) => ("active".to_owned(), true),
            };
            TokenRow {
                id: t.id,
                label: t.label,
                roles: if t.roles.is_empty() { NONE.into() } else { t.roles.join(", ") },
                ceiling: view::shards_text(
                    t.ceiling.cluster_id,
                    t.ceiling.shards.as_deref().unwrap_or(&[]),
                ),
                created: format!("{} by {}", view::ago(now, t.created_at), t.created_by),
                expires: view::utc(t.expires_at),
                state,
                revocable,
                node_id: t.node_id,
            }
        })
        .collect();
    let page = TokensPage {
        title: "enrolment tokens".into(),
        refresh_secs: 0,
        nav: session.nav(),
        roles: ROLES.to_vec(),
        tokens,
    };
    Ok(render(&page))
}

/// One account as a row.
struct AccountRow {
    name: String,
    role: String,
    created: String,
    last_used: String,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/access.html")]
struct AccessPage {
    title: String,
    refresh_secs: u32,
    nav: Nav,
    roles: Vec<&'static str>,
    accounts: Vec<AccountRow>,
}

/// `GET /dashboard/access`: people's accounts (admins).
pub(super) async fn access(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Result<Response, PageError> {
    session.require(Permission::Administer)?;
    let now = state.db.now_ms();
    let accounts = state
        .db
        .access_tokens()
        .await?
        .into_iter()
        .map(|a| AccountRow {
            name: a.name,
            role: a.role.to_string(),
            created: format!("{} by {}", view::ago(now, a.created_at), a.created_by),
            last_used: a.last_used_at.map_or_else(|| "never".into(), |at| view::ago(now, at)),
            revoked: a.revoked_at.map(|at| {
                format!("revoked {} by {}", view::ago(now, at), a.revoked_by.unwrap_or_default())
            }),
        })
        .collect();
    let page = AccessPage {
        title: "accounts".into(),
        refresh_secs: 0,
        nav: session.nav(),
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        accounts,
    };
    Ok(render(&page))
}

/// One rollout as a row.
struct RolloutRow {
    id: String,
    created: String,
    config: String,
    state: &'static str,
    progress: String,
    reason: String,
}

/// A node a rollout form offers.
struct Choice {
    node_id: String,
    label: String,
    roles: String,
    shards: String,
    health: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard/rollouts.html")]
struct RolloutsPage {
    title: String,
    refresh_secs: u32,
    nav: Nav,
    roles: Vec<&'static str>,
    rollouts: Vec<RolloutRow>,
    choices: Vec<Choice>,
}

fn config_text(config: &contract::desired::DesiredConfig) -> String {
    let mut parts = Vec::new();
    if let Some(roles) = &config.roles {
        parts.push(format!("roles {}", roles.join(", ")));
    }
    if let Some(shards) = &config.shards {
        let shards: Vec<String> = shards.iter().map(u16::to_string).collect();
        parts.push(format!("shards {}", shards.join(", ")));
    }
    if let Some(max) = config.max_connections {
        parts.push(format!("max connections {max}"));
    }
    parts.join("; ")
}

/// `GET /dashboard/rollouts`: recent rollouts, and a form to start one (operators).
pub(super) async fn rollouts(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Result<Response, PageError> {
    let now = state.db.now_ms();
    let rollouts = state
        .db
        .rollouts(false, ROLLOUTS_SHOWN)
        .await?
        .into_iter()
        .map(|r| {
            let done = r.steps.iter().filter(|s| s.state == crate::db::rollouts::StepState::Done);
            RolloutRow {
                progress: format!("{} of {} nodes done", done.count(), r.steps.len()),
                created: format!("{} by {}", view::ago(now, r.created_at), r.created_by),
                config: config_text(&r.config),
                state: r.state.as_str(),
                reason: r.reason.unwrap_or_default(),
                id: r.id,
            }
        })
        .collect();
    let mut choices: Vec<Choice> = if session.may(Permission::Operate) {
        state
            .db
            .nodes()
            .await?
            .into_iter()
            .map(|n| Choice {
                shards: view::shards_text(n.cluster_id, &n.shards),
                roles: n.roles.join(", "),
                health: n.health.as_str(),
                label: n.label,
                node_id: n.node_id,
            })
            .collect()
    } else {
        Vec::new()
    };
    choices.sort_by(|a, b| a.label.cmp(&b.label));
    let page = RolloutsPage {
        title: "rollouts".into(),
        refresh_secs: 0,
        nav: session.nav(),
        roles: ROLES.to_vec(),
        rollouts,
        choices,
    };
    Ok(render(&page))
}

/// One node's step as a row.
struct StepRow {
    node_id: String,
    label: String,
    state: &'static str,
    version: String,
    started: String,
    applied: String,
}

#[derive(Template)]
#[template(path = "dashboard/rollout.html")]
struct RolloutPage {
    title: String,
    refresh_secs: u32,
    nav: Nav,
    id: String,
    state: &'static str,
    running: bool,
    created: String,
    config: String,
    pacing: String,
    reason: String,
    steps: Vec<StepRow>,
}

/// `GET /dashboard/rollouts/{id}`: each node's step; reloads itself while running.
pub(super) async fn rollout(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let now = state.db.now_ms();
    let rollout = state
        .db
        .rollout(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no rollout {id}")))?;
    let labels: std::collections::HashMap<String, String> =
        state.db.nodes().await?.into_iter().map(|n| (n.node_id, n.label)).collect();
    let label =
        |node_id: &str| labels.get(node_id).cloned().unwrap_or_else(|| "decommissioned".into());
    let running = rollout.state == RolloutState::Running;
    let page = RolloutPage {
        title: format!("rollout {id}"),
        refresh_secs: if running { 5 } else { 0 },
        nav: session.nav(),
        state: rollout.state.as_str(),
        running,
        created: format!("{} by {}", view::utc(rollout.created_at), rollout.created_by),
        config: config_text(&rollout.config),
        pacing: format!(
            "{} at a time; each must pass {} s after applying, within {} s",
            rollout.max_parallel, rollout.healthy_secs, rollout.deadline_secs
        ),
        reason: rollout.reason.clone().unwrap_or_default(),
        steps: rollout
            .steps
            .iter()
            .map(|s| StepRow {
                label: label(&s.node_id),
                node_id: s.node_id.clone(),
                state: s.state.as_str(),
                version: s.version.map_or_else(|| NONE.into(), |v| v.to_string()),
                started: s.started_at.map_or_else(|| NONE.into(), |at| view::ago(now, at)),
                applied: s.applied_at.map_or_else(|| NONE.into(), |at| view::ago(now, at)),
            })
            .collect(),
        id,
    };
    Ok(render(&page))
}

/// A tree definition's form, filled in with the tree's current definition (or the defaults).
pub(super) struct DefinitionForm {
    pub action: String,
    pub button: &'static str,
    /// A new tree: the form asks for a name.
    pub new: bool,
    pub domain: String,
    pub signer: String,
    pub roles: Vec<(&'static str, bool)>,
    pub services: String,
    pub shards: String,
    pub cluster_id: String,
    pub max_entries: usize,
    pub links: String,
    pub list_nodes: bool,
}

impl DefinitionForm {
    /// The form for editing `tree`, or for a new tree.
    pub(super) fn new(tree: Option<&crate::db::trees::TreeRow>) -> Self {
        let policy = tree.map(|t| t.policy.clone()).unwrap_or_default();
        Self {
            action: tree.map_or_else(
                || "/dashboard/trees".into(),
                |t| format!("/dashboard/trees/{}/definition", t.name),
            ),
            button: if tree.is_some() { "Save definition" } else { "Define tree" },
            new: tree.is_none(),
            domain: tree.map(|t| t.domain.clone()).unwrap_or_default(),
            signer: tree.map_or_else(|| "offline".into(), |t| t.signer.to_string()),
            roles: ROLES.iter().map(|r| (*r, policy.roles.iter().any(|p| p == r))).collect(),
            services: policy.services.join(", "),
            shards: policy.shards.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
            cluster_id: policy.cluster_id.map(|c| c.to_string()).unwrap_or_default(),
            max_entries: policy.max_entries,
            links: policy.links.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
            list_nodes: policy.list_nodes,
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/tree_new.html")]
struct NewTreePage {
    title: String,
    refresh_secs: u32,
    nav: Nav,
    definition: DefinitionForm,
}

/// `GET /dashboard/new-tree`: the form for a new tree (operators).
pub(super) async fn new_tree(
    Extension(session): Extension<Session>,
) -> Result<Response, PageError> {
    session.require(Permission::Operate)?;
    let page = NewTreePage {
        title: "new tree".into(),
        refresh_secs: 0,
        nav: session.nav(),
        definition: DefinitionForm::new(None),
    };
    Ok(render(&page))
}
