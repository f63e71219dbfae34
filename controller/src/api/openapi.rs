//! `GET /openapi.json`: the API described for operators' tooling (OpenAPI 3.1).

use axum::Json;
use serde_json::{Value, json};

/// One operation; `auth` is `none`, `agent`, or the permission a person's role must grant
/// (`read`, `operate`, `sign`, `administer`: see [`crate::access::Role::may`]).
fn op(summary: &str, auth: &str, body: Option<&str>, ok: &str, errors: &[&str]) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(ok.to_owned(), json!({ "description": "success" }));
    for code in errors {
        responses.insert(
            (*code).to_owned(),
            json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
        );
    }
    let mut out = json!({ "summary": summary, "responses": responses });
    match auth {
        "none" => {}
        "agent" => out["security"] = json!([{ "agentSignature": [] }]),
        // A person's route: a bearer token whose account's role grants it (403 otherwise).
        role => {
            out["security"] = json!([{ "accessToken": [] }]);
            out["x-wakufleet-permission"] = json!(role);
            out["responses"]["403"] = json!({ "description": "the token's role may not do this", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
        }
    }
    if let Some(schema) = body {
        out["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
    }
    out
}

/// The document.
pub async fn document() -> Json<Value> {
    Json(json!({
        "openapi": "3.1.0",
        "info": { "title": "wakufleet controller", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/health": { "get": op("Readiness for load balancers: 200 while the database answers (with whether this instance publishes), 503 when it does not", "none", None, "200", &["503"]) },
            "/fleets.json": { "get": op("The nodes the published trees list, in fleets.status.im's shape: per tree enr/p2p/waku, tcp/p2p/waku, wss/p2p/waku and their /boot and /store forms, by host", "none", None, "200", &[]) },
            "/metrics": { "get": op("Prometheus text: fleet health, shard coverage, trees, this instance's counters", "none", None, "200", &["503"]) },
            "/api/v1/enrol": { "post": op("Redeem a one-time token and bind the node's key", "agent", Some("Enrolment"), "201", &["400", "401", "409", "413"]) },
            "/api/v1/reports": { "post": op("Submit a signed health report", "agent", Some("Report"), "202", &["400", "401", "403", "409", "413"]) },
            "/api/v1/tokens": {
                "post": op("Create a one-time enrolment token (shown once)", "operate", Some("NewToken"), "201", &["400", "401"]),
                "get": op("List enrolment tokens (never the secrets): id (the token's SHA-256), label, roles, ceiling, created, expires, used (by which node), revoked", "operate", None, "200", &["401"])
            },
            "/api/v1/tokens/{id}": { "delete": op("Revoke an enrolment token not yet redeemed (id as listed)", "operate", None, "204", &["401", "404", "409"]) },
            "/api/v1/nodes": { "get": op("The registry with health states", "read", None, "200", &["401"]) },
            "/api/v1/nodes/{id}": {
                "get": op("One node, its newest report, its ENR history", "read", None, "200", &["401", "404"]),
                "delete": op("Decommission a node: out of every tree at the next pass, its reports and alerts gone, its agent's next report refused (audited)", "operate", None, "204", &["401", "404"])
            },
            "/api/v1/nodes/{id}/config": { "put": op("Set the configuration the node's agent applies (numbered by the controller; returned with every report answer)", "operate", Some("NodeConfig"), "200", &["400", "401", "404", "422"]) },
            "/api/v1/nodes/{id}/membership": { "put": op("Set the node's roles (and label): the operator's, never changed by reports", "operate", Some("Membership"), "200", &["400", "401", "404"]) },
            "/api/v1/nodes/{id}/maintenance": {
                "put": op("Start maintenance: the node leaves every tree at the next pass and raises no alerts", "operate", Some("Maintenance"), "200", &["400", "401", "404"]),
                "delete": op("End maintenance: the node may be listed again once healthy", "operate", None, "200", &["401", "404"])
            },
            "/api/v1/rollouts": {
                "post": op("Take a configuration to nodes a few at a time, each applying it and passing before the next; a failure halts the rest", "operate", Some("Rollout"), "201", &["400", "401", "404", "422"]),
                "get": op("The newest rollouts and each node's step", "read", None, "200", &["401"])
            },
            "/api/v1/rollouts/{id}": {
                "get": op("One rollout", "read", None, "200", &["401", "404"]),
                "delete": op("Cancel a running rollout", "operate", None, "200", &["401", "404", "409"])
            },
            "/api/v1/trees": { "get": op("Trees, URLs and recent versions", "read", None, "200", &["401"]) },
            "/api/v1/trees/{name}": {
                "put": op("Define or redefine a tree", "operate", Some("TreeDefinition"), "201", &["400", "401", "409", "422"]),
                "get": op("One tree", "read", None, "200", &["401", "404"])
            },
            "/api/v1/trees/{name}/sign-request": { "get": op("The signing request of the pending version (wakufleet tree sign-offline reads it)", "sign", None, "200", &["401", "404"]) },
            "/api/v1/trees/{name}/signature": { "post": op("Upload a key holder's detached signature", "sign", Some("DetachedSignature"), "200", &["400", "401", "403", "404", "409"]) },
            "/api/v1/trees/{name}/retire": {
                "post": op("Keep the tree published for an overlap window, then remove it (key rotation)", "sign", Some("Retirement"), "200", &["400", "401", "404", "409"]),
                "delete": op("Cancel a retirement whose window has not ended", "sign", None, "200", &["401", "404", "409"])
            },
            "/api/v1/audit": { "get": op("The append-only audit log (query: after, limit)", "read", None, "200", &["401"]) },
            "/api/v1/access-tokens": {
                "post": op("Create a named access token with a role (viewer, operator, key-holder, admin), shown once", "administer", Some("NewAccessToken"), "201", &["400", "401", "409"]),
                "get": op("List access tokens (never the secrets)", "administer", None, "200", &["401"])
            },
            "/api/v1/access-tokens/{name}": { "delete": op("Revoke an access token at once", "administer", None, "204", &["401", "404"]) }
        },
        "components": {
            "securitySchemes": {
                "accessToken": { "type": "http", "scheme": "bearer", "description": "a named access token (or the bootstrap admin token); the operation's x-wakufleet-permission says what its role must grant" },
                "agentSignature": { "type": "apiKey", "in": "header", "name": contract::signing::SIGNATURE_HEADER, "description": "hex r||s||v secp256k1 signature over keccak256(\"wakufleet-agent-request/1\\n\" || body) by the node key" }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
                "Enrolment": { "type": "object", "required": ["token", "enr", "sentAt"], "properties": { "token": { "type": "string" }, "enr": { "type": "string" }, "label": { "type": "string" }, "sentAt": { "type": "integer" } } },
                "Report": { "type": "object", "required": ["version", "nodeId", "counter", "sentAt", "measuredAt", "enr"], "properties": { "version": { "const": contract::report::REPORT_VERSION }, "nodeId": { "type": "string" }, "counter": { "type": "integer", "minimum": 1 }, "sentAt": { "type": "integer" }, "measuredAt": { "type": "integer" }, "enr": { "type": "string" }, "roles": { "type": "array", "items": { "type": "string" } }, "shards": { "type": "array", "items": { "type": "integer" } }, "clusterId": { "type": "integer" }, "figures": { "type": "object" } } },
                "NewToken": { "type": "object", "required": ["label"], "properties": { "label": { "type": "string" }, "roles": { "type": "array", "items": { "type": "string", "enum": crate::membership::ROLES } }, "shards": { "type": "array", "items": { "type": "integer" } }, "clusterId": { "type": "integer" }, "ttlSecs": { "type": "integer" } } },
                "NewAccessToken": { "type": "object", "required": ["name", "role"], "properties": { "name": { "type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$" }, "role": { "type": "string", "enum": ["viewer", "operator", "key-holder", "admin"] } } },
                "Membership": { "type": "object", "required": ["roles"], "properties": { "roles": { "type": "array", "items": { "type": "string", "enum": crate::membership::ROLES } }, "label": { "type": "string", "minLength": 1, "maxLength": 128 } } },
                "TreeDefinition": { "type": "object", "required": ["domain", "signer"], "properties": { "domain": { "type": "string" }, "signer": { "type": "string" }, "policy": { "type": "object", "properties": { "roles": { "type": "array" }, "services": { "type": "array" }, "shards": { "type": "array" }, "clusterId": { "type": "integer" }, "maxEntries": { "type": "integer" }, "links": { "type": "array" }, "listNodes": { "type": "boolean" } } } } },
                "NodeConfig": { "type": "object", "properties": { "roles": { "type": "array", "items": { "type": "string" } }, "shards": { "type": "array", "items": { "type": "integer" } }, "maxConnections": { "type": "integer" } } },
                "Rollout": { "type": "object", "required": ["nodes", "config"], "properties": { "nodes": { "type": "array", "items": { "type": "string" }, "minItems": 1, "maxItems": 1000 }, "config": { "$ref": "#/components/schemas/NodeConfig" }, "maxParallel": { "type": "integer", "minimum": 1 }, "healthySecs": { "type": "integer", "minimum": 0, "maximum": 3600 }, "deadlineSecs": { "type": "integer", "minimum": 10, "maximum": 86400 } } },
                "Maintenance": { "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string", "minLength": 1, "maxLength": 200 } } },
                "Retirement": { "type": "object", "required": ["overlapSecs"], "properties": { "overlapSecs": { "type": "integer", "minimum": 0 } } },
                "DetachedSignature": { "type": "object", "required": ["format", "domain", "seq", "rootContent", "publicKey", "signature"] }
            }
        }
    }))
}
