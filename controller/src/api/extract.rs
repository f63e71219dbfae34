//! Extractors every people's handler takes, so none can forget them: [`Viewer`],
//! [`Operator`], [`KeyHolder`] and [`Admin`] authenticate the caller and check its role before
//! anything else runs (they read only headers, so they run before the body is read);
//! [`JsonBody`] reads a JSON body with an error that says what is wrong and where.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;

use crate::{
    access::{Caller, Permission},
    app::AppState,
    error::AppError,
};

/// Authenticates the caller and checks that its role grants `permission`: 401 without a valid
/// token, 403 with one whose role does not allow the route.
async fn caller_with(
    parts: &Parts,
    state: &AppState,
    permission: Permission,
) -> Result<Caller, AppError> {
    let caller = super::authenticate(state, &parts.headers).await?;
    caller.check(permission).map_err(AppError::Forbidden)?;
    Ok(caller)
}

/// One extractor per permission; each holds the caller's audit name (`person:<name>`).
macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $permission:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl FromRequestParts<Arc<AppState>> for $name {
            type Rejection = AppError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &Arc<AppState>,
            ) -> Result<Self, Self::Rejection> {
                caller_with(parts, state, $permission).await.map(|caller| Self(caller.actor()))
            }
        }
    };
}

role_extractor!(
    /// Someone who may read fleet state (every role).
    Viewer,
    Permission::Read
);
role_extractor!(
    /// Someone who may run the fleet (operator, admin).
    Operator,
    Permission::Operate
);
role_extractor!(
    /// Someone who may sign and rotate keys (key-holder, admin).
    KeyHolder,
    Permission::Sign
);
role_extractor!(
    /// Someone who may manage accounts (admin).
    Admin,
    Permission::Administer
);

/// A JSON request body. Unknown fields, wrong types and bad JSON are 400 with serde's message;
/// a body over the limit is 413 before any of it is parsed.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body =
            Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        crate::error::parse_json(&body).map(Self).map_err(IntoResponse::into_response)
    }
}
