//! What the dashboard's forms do: each handler takes a [`Posted`] form (role and CSRF token
//! checked), calls the same function as the JSON API (so both validate, audit and wake the
//! publisher alike, under the person's name), then sends the browser back to the page that
//! shows the result (303), or shows a secret once.

use std::{collections::BTreeSet, sync::Arc};

use axum::{
    extract::{Multipart, Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
};

use super::{
    Notice, PageError,
    form::{Administer, Fields, Operate, Posted, Sign},
    render,
    session::Session,
};
use crate::{
    access::{Permission, Role},
    api::{
        access::{NewAccessToken, create_account, revoke_account},
        nodes::{
            NodeConfigRequest, begin_maintenance, decommission_node, finish_maintenance,
            set_membership, set_node_config,
        },
        rollouts::{NewRollout, start_rollout, stop_rollout},
        tokens::{NewToken, issue_token, revoke_enrolment_token},
        trees::{
            TreeDefinition, accept_signature, define_tree, keep_tree, pending_sign_request, retire,
        },
    },
    app::AppState,
    error::AppError,
    membership::ROLES,
    policy::TreePolicy,
};

/// Largest signature file a key holder uploads (a `request.sig.json` is well under 1 KiB).
const MAX_SIGNATURE_FILE: usize = 16 * 1024;

type Page = Result<Response, PageError>;

fn back_to(path: String) -> Page {
    Ok(Redirect::to(&path).into_response())
}

/// Membership roles from checkboxes, only the known ones kept in their canonical order.
fn role_boxes(fields: &Fields, name: &str) -> Result<Vec<String>, AppError> {
    let checked = fields.all(name);
    if let Some(unknown) = checked.iter().find(|r| !ROLES.contains(&r.as_str())) {
        return Err(AppError::BadRequest(format!("{name}: unknown role {unknown:?}")));
    }
    Ok(ROLES.iter().filter(|r| checked.iter().any(|c| c == *r)).map(|r| (*r).to_owned()).collect())
}

/// `POST /dashboard/tokens`: an enrolment token, shown once.
pub(super) async fn create_token(
    State(state): State<Arc<AppState>>,
    form: Posted<Operate>,
) -> Page {
    let fields = &form.fields;
    let hours: u64 = fields.number("ttl-hours")?.unwrap_or(24);
    let request = NewToken {
        label: fields.required("label")?,
        roles: role_boxes(fields, "roles")?,
        shards: fields.list("shards")?,
        cluster_id: fields.number("cluster-id")?,
        ttl_secs: hours.saturating_mul(3600),
    };
    let issued = issue_token(&state, &form.actor(), &request).await?;
    let notice = Notice::secret(
        &form.caller,
        "enrolment token",
        format!(
            "Enrolment token for {} ({}), valid until {}. It is shown only now: put it in the \
             agent's token-file.",
            request.label,
            if request.roles.is_empty() { "no roles".into() } else { request.roles.join(", ") },
            super::view::utc(issued.expires_at)
        ),
        issued.token,
        "/dashboard/tokens",
    );
    Ok(render(&notice))
}

/// `POST /dashboard/tokens/{id}/revoke`.
pub(super) async fn revoke_token(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    form: Posted<Operate>,
) -> Page {
    revoke_enrolment_token(&state, &form.actor(), &id).await?;
    back_to("/dashboard/tokens".into())
}

/// `POST /dashboard/nodes/{id}/maintenance`.
pub(super) async fn start_maintenance(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    form: Posted<Operate>,
) -> Page {
    begin_maintenance(&state, &form.actor(), &id, &form.fields.required("reason")?).await?;
    back_to(format!("/dashboard/nodes/{id}"))
}

/// `POST /dashboard/nodes/{id}/maintenance/end`.
pub(super) async fn end_maintenance(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    form: Posted<Operate>,
) -> Page {
    finish_maintenance(&state, &form.actor(), &id).await?;
    back_to(format!("/dashboard/nodes/{id}"))
}

/// What a node-configuration form sets (blank fields: leave as is).
fn config_request(fields: &Fields, prefix: &str) -> Result<NodeConfigRequest, AppError> {
    Ok(NodeConfigRequest {
        roles: fields.list(&format!("{prefix}roles"))?,
        shards: fields.list(&format!("{prefix}shards"))?,
        max_connections: fields.number(&format!("{prefix}max-connections"))?,
    })
}

/// `POST /dashboard/nodes/{id}/config`: the node's desired configuration.
pub(super) async fn node_config(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    form: Posted<Operate>,
) -> Page {
    let request = config_request(&form.fields, "")?;
    set_node_config(&state, &form.actor(), &id, request).await?;
    back_to(format!("/dashboard/nodes/{id}"))
}

/// `POST /dashboard/nodes/{id}/membership`: roles and label.
pub(super) async fn membership(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    form: Posted<Operate>,
) -> Page {
    let roles = role_boxes(&form.fields, "roles")?;
    set_membership(&state, &form.actor(), &id, &roles, form.fields.optional("label")).await?;
    back_to(format!("/dashboard/nodes/{id}"))
}

/// `POST /dashboard/nodes/{id}/decommission`: only with the node's label typed as confirmation
/// (no script may ask "are you sure?").
pub(super) async fn decommission(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    form: Posted<Operate>,
) -> Page {
    let node =
        state.db.node(&id).await?.ok_or_else(|| AppError::NotFound(format!("no node {id}")))?;
    if form.fields.optional("confirm").as_deref() != Some(node.label.as_str()) {
        return Err(AppError::BadRequest(format!(
            "type the node's label ({}) to confirm decommissioning it",
            node.label
        ))
        .into());
    }
    decommission_node(&state, &form.actor(), &id).await?;
    back_to("/dashboard".into())
}

/// `POST /dashboard/rollouts`: the nodes ticked one by one, plus every node that has one of
/// the ticked roles and serves the given shard; taken in the order of their labels.
pub(super) async fn create_rollout(
    State(state): State<Arc<AppState>>,
    form: Posted<Operate>,
) -> Page {
    let fields = &form.fields;
    let ticked: BTreeSet<String> = fields.all("node").into_iter().collect();
    let by_role = role_boxes(fields, "select-role")?;
    let by_shard: Option<u16> = fields.number("select-shard")?;
    let by_selector = !by_role.is_empty() || by_shard.is_some();
    let mut nodes = state.db.nodes().await?;
    nodes.sort_by(|a, b| a.label.cmp(&b.label).then_with(|| a.node_id.cmp(&b.node_id)));
    let known: BTreeSet<&str> = nodes.iter().map(|n| n.node_id.as_str()).collect();
    if let Some(unknown) = ticked.iter().find(|id| !known.contains(id.as_str())) {
        return Err(AppError::NotFound(format!("no node {unknown}")).into());
    }
    let selected: Vec<String> = nodes
        .iter()
        .filter(|node| {
            let matches = by_selector
                && (by_role.is_empty() || node.roles.iter().any(|r| by_role.contains(r)))
                && by_shard.is_none_or(|shard| node.shards.contains(&shard));
            ticked.contains(&node.node_id) || matches
        })
        .map(|node| node.node_id.clone())
        .collect();
    if selected.is_empty() {
        return Err(AppError::BadRequest(
            "no node selected: tick nodes, or choose a role or shard that some node has".into(),
        )
        .into());
    }
    let request = NewRollout {
        max_parallel: fields.number("max-parallel")?.unwrap_or(1),
        healthy_secs: fields.number("healthy-secs")?.unwrap_or(30),
        deadline_secs: fields.number("deadline-secs")?.unwrap_or(600),
        nodes: selected,
        config: config_request(fields, "config-")?,
    };
    let rollout = start_rollout(&state, &form.actor(), request).await?;
    back_to(format!("/dashboard/rollouts/{}", rollout.id))
}

/// `POST /dashboard/rollouts/{id}/cancel`.
pub(super) async fn cancel_rollout(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    form: Posted<Operate>,
) -> Page {
    stop_rollout(&state, &form.actor(), &id).await?;
    back_to(format!("/dashboard/rollouts/{id}"))
}

/// A tree definition from its form.
fn tree_definition(fields: &Fields) -> Result<TreeDefinition, AppError> {
    let signer = fields.required("signer")?.parse().map_err(AppError::BadRequest)?;
    let defaults = TreePolicy::default();
    let links = fields
        .optional("links")
        .map(|text| {
            text.split_whitespace()
                .map(|link| link.trim_end_matches(',').parse().map_err(AppError::BadRequest))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(TreeDefinition {
        domain: fields.required("domain")?,
        signer,
        policy: TreePolicy {
            roles: role_boxes(fields, "roles")?,
            services: fields.list("services")?.unwrap_or_default(),
            shards: fields.list("shards")?.unwrap_or_default(),
            cluster_id: fields.number("cluster-id")?,
            max_entries: fields.number("max-entries")?.unwrap_or(defaults.max_entries),
            links,
            list_nodes: fields.checked("list-nodes"),
        },
    })
}

/// `POST /dashboard/trees`: a new tree.
pub(super) async fn create_tree(State(state): State<Arc<AppState>>, form: Posted<Operate>) -> Page {
    let name = form.fields.required("name")?;
    if state.db.tree(&name).await?.is_some() {
        return Err(
            AppError::Conflict(format!("a tree named {name} exists: edit it on its page")).into()
        );
    }
    define_tree(&state, &form.actor(), &name, tree_definition(&form.fields)?).await?;
    back_to(format!("/dashboard/trees/{name}"))
}

/// `POST /dashboard/trees/{name}/definition`: an edited definition.
pub(super) async fn edit_tree(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    form: Posted<Operate>,
) -> Page {
    if state.db.tree(&name).await?.is_none() {
        return Err(AppError::NotFound(format!("no tree {name}")).into());
    }
    define_tree(&state, &form.actor(), &name, tree_definition(&form.fields)?).await?;
    back_to(format!("/dashboard/trees/{name}"))
}

/// `POST /dashboard/trees/{name}/retire`.
pub(super) async fn retire_tree(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    form: Posted<Sign>,
) -> Page {
    let hours: u64 = form
        .fields
        .number("overlap-hours")?
        .ok_or_else(|| AppError::BadRequest("overlap-hours: fill it in".into()))?;
    retire(&state, &form.actor(), &name, hours.saturating_mul(3600)).await?;
    back_to(format!("/dashboard/trees/{name}"))
}

/// `POST /dashboard/trees/{name}/keep`: the retirement cancelled.
pub(super) async fn keep(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    form: Posted<Sign>,
) -> Page {
    keep_tree(&state, &form.actor(), &name).await?;
    back_to(format!("/dashboard/trees/{name}"))
}

/// `GET /dashboard/trees/{name}/sign-request`: the pending version's sign request as a file
/// to save and sign offline (`wakufleet tree sign-offline`).
pub(super) async fn download_sign_request(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(name): Path<String>,
) -> Page {
    session.require(Permission::Sign)?;
    let request = pending_sign_request(&state, &name).await?;
    let body = serde_json::to_string_pretty(&request)
        .map_err(|e| AppError::Unprocessable(e.to_string()))?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Tree names are [A-Za-z0-9_-]: nothing to quote.
    let file = format!("attachment; filename=\"{name}-seq{}.request.json\"", request.seq);
    if let Ok(value) = HeaderValue::from_str(&file) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `POST /dashboard/trees/{name}/signature` (multipart: the CSRF token and the
/// `request.sig.json` file): verified against exactly the pending version, then published.
pub(super) async fn upload_signature(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(name): Path<String>,
    mut multipart: Multipart,
) -> Page {
    let caller = session.require(Permission::Sign)?.clone();
    let (mut csrf, mut file) = (None, None);
    let bad = |e: axum::extract::multipart::MultipartError| AppError::BadRequest(e.body_text());
    while let Some(mut part) = multipart.next_field().await.map_err(bad)? {
        let field = part.name().unwrap_or_default().to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = part.chunk().await.map_err(bad)? {
            if bytes.len() + chunk.len() > MAX_SIGNATURE_FILE {
                return Err(AppError::PayloadTooLarge(format!(
                    "{field}: over {MAX_SIGNATURE_FILE} bytes; upload the request.sig.json that \
                     `wakufleet tree sign-offline` wrote"
                ))
                .into());
            }
            bytes.extend_from_slice(&chunk);
        }
        match field.as_str() {
            "csrf" => csrf = Some(String::from_utf8_lossy(&bytes).into_owned()),
            "signature" => file = Some(bytes),
            _ => {}
        }
    }
    session.check_csrf(csrf.as_deref())?;
    let file = file
        .filter(|f| !f.is_empty())
        .ok_or_else(|| AppError::BadRequest("choose the request.sig.json file".into()))?;
    let text = std::str::from_utf8(&file)
        .map_err(|_| AppError::BadRequest("the signature file is not UTF-8 text".into()))?;
    let accepted = accept_signature(&state, &caller.actor(), &name, text).await?;
    let notice = Notice::message(
        &caller,
        "signature accepted",
        format!(
            "The signature verifies: seq {} of tree {name} is signed and goes out at the next \
             publication. Clients use {}",
            accepted.seq, accepted.url
        ),
        format!("/dashboard/trees/{name}"),
    );
    Ok(render(&notice))
}

/// `POST /dashboard/access`: an account, its access token shown once.
pub(super) async fn create_access(
    State(state): State<Arc<AppState>>,
    form: Posted<Administer>,
) -> Page {
    let role: Role =
        form.fields.required("role")?.parse().map_err(|e| AppError::BadRequest(format!("{e}")))?;
    let request = NewAccessToken { name: form.fields.required("name")?, role };
    let token = create_account(&state, &form.actor(), &request).await?;
    let notice = Notice::secret(
        &form.caller,
        "access token",
        format!(
            "Access token for {} ({}). It is shown only now: hand it to them; they log in with \
             the name {} and this token.",
            request.name, request.role, request.name
        ),
        token,
        "/dashboard/access",
    );
    Ok(render(&notice))
}

/// `POST /dashboard/access/{name}/revoke`.
pub(super) async fn revoke_access(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    form: Posted<Administer>,
) -> Page {
    revoke_account(&state, &form.actor(), &name).await?;
    back_to("/dashboard/access".into())
}
