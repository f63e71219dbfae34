//! Extractors every operators' handler takes, so none can forget them: [`Operator`]
//! authenticates the caller before anything else runs, [`JsonBody`] reads a JSON body with an
//! error that says what is wrong and where.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;

use crate::{app::AppState, error::AppError};

/// The authenticated operator behind a request; the name goes into the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator(pub String);

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        super::operator(state, &parts.headers).map(Self)
    }
}

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
