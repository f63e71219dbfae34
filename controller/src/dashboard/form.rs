//! Form posts: [`Posted`] takes a dashboard action's body only from someone whose role allows
//! the action and whose form carries their CSRF token; [`Fields`] reads the fields with errors
//! that name the field.

use std::{marker::PhantomData, str::FromStr, sync::Arc};

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::header,
};

use super::{PageError, session::Session};
use crate::{
    access::{Caller, Permission},
    app::AppState,
    error::AppError,
};

/// Most fields in one form (a rollout lists at most 1,000 nodes).
const MAX_FIELDS: usize = 2_048;

/// The permission an action needs, as a type, so a handler's signature says it.
pub(crate) trait Needs: Send + Sync {
    /// What the role must grant.
    const PERMISSION: Permission;
}

/// Enrolment, membership, maintenance, configurations, rollouts, tree definitions.
pub(crate) struct Operate;
/// Signature uploads, retirement.
pub(crate) struct Sign;
/// Accounts.
pub(crate) struct Administer;

impl Needs for Operate {
    const PERMISSION: Permission = Permission::Operate;
}
impl Needs for Sign {
    const PERMISSION: Permission = Permission::Sign;
}
impl Needs for Administer {
    const PERMISSION: Permission = Permission::Administer;
}

/// An action's form, from a person whose role grants `P`, with their CSRF token checked.
pub(crate) struct Posted<P: Needs> {
    pub caller: Caller,
    pub fields: Fields,
    needs: PhantomData<P>,
}

impl<P: Needs> Posted<P> {
    /// How the audit log names the person.
    pub(crate) fn actor(&self) -> String {
        self.caller.actor()
    }
}

impl<P: Needs> FromRequest<Arc<AppState>> for Posted<P> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, PageError> {
        let session = request.extensions().get::<Session>().cloned().unwrap_or_default();
        // The role first: a viewer learns nothing from a form they could not send.
        let caller = session.require(P::PERMISSION)?.clone();
        let form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(AppError::UnsupportedMediaType(
                "send the dashboard's form (application/x-www-form-urlencoded)".into(),
            )
            .into());
        }
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge(rejection.body_text())
            } else {
                AppError::BadRequest(rejection.body_text())
            }
        })?;
        let fields = Fields::parse(&body)?;
        session.check_csrf(fields.first("csrf"))?;
        Ok(Self { caller, fields, needs: PhantomData })
    }
}

/// A form's fields in the order sent; a name may come more than once (checkboxes).
#[derive(Debug, Default)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    /// Parses `application/x-www-form-urlencoded`.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, AppError> {
        let mut fields = Vec::new();
        for (name, value) in form_urlencoded::parse(body) {
            if fields.len() == MAX_FIELDS {
                return Err(AppError::BadRequest(format!("more than {MAX_FIELDS} form fields")));
            }
            fields.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self(fields))
    }

    /// A field as sent, if it was.
    pub(crate) fn first(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A field, trimmed; `None` when missing or blank.
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        self.first(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    /// A field that must be filled in.
    pub(crate) fn required(&self, name: &str) -> Result<String, AppError> {
        self.optional(name).ok_or_else(|| AppError::BadRequest(format!("{name}: fill it in")))
    }

    /// Every value of a repeated field (checked checkboxes), in order.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
    }

    /// Whether a checkbox was checked.
    pub(crate) fn checked(&self, name: &str) -> bool {
        self.first(name).is_some()
    }

    /// A number, if filled in.
    pub(crate) fn number<T: FromStr>(&self, name: &str) -> Result<Option<T>, AppError> {
        self.optional(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| AppError::BadRequest(format!("{name}: {v:?} is not a number")))
            })
            .transpose()
    }

    /// A list written with commas or spaces ("0, 1 2"), if filled in.
    pub(crate) fn list<T: FromStr>(&self, name: &str) -> Result<Option<Vec<T>>, AppError> {
        self.optional(name)
            .map(|v| {
                v.split([',', ' '])
                    .filter(|item| !item.is_empty())
                    .map(|item| {
                        item.parse().map_err(|_| {
                            AppError::BadRequest(format!("{name}: {item:?} is not valid here"))
                        })
                    })
                    .collect()
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_as_forms_send_them() {
        let fields =
            Fields::parse(b"csrf=abc&roles=boot&roles=store&shards=0%2C+1+2&reason=+disk+&n=x&e=")
                .unwrap();
        assert_eq!(fields.first("csrf"), Some("abc"));
        assert_eq!(fields.all("roles"), ["boot", "store"]);
        assert_eq!(fields.list::<u16>("shards").unwrap(), Some(vec![0, 1, 2]));
        assert_eq!(fields.required("reason").unwrap(), "disk");
        assert!(fields.required("e").unwrap_err().to_string().contains("e: fill it in"));
        assert_eq!(fields.optional("e"), None);
        assert!(
            fields.number::<u32>("n").unwrap_err().to_string().contains("\"x\" is not a number")
        );
        assert_eq!(fields.number::<u32>("missing").unwrap(), None);
        assert!(fields.list::<u16>("reason").is_err());
        assert!(fields.checked("e") && !fields.checked("missing"));
        let many = "a=1&".repeat(MAX_FIELDS + 1);
        assert!(Fields::parse(many.as_bytes()).is_err());
    }
}
