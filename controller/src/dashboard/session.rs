//! Who is at the browser, and what protects their forms.
//!
//! The browser logs in with HTTP Basic: an account's name and its access token (the bootstrap
//! admin: `admin` and the admin token). A browser sends those credentials with every request
//! to the controller's origin, also with a form another site makes it submit, so every action
//! needs two more things: the request must not come from another site (`Origin`,
//! `Sec-Fetch-Site`), and the form must carry the account's CSRF token. That token is an HMAC
//! keyed with the account's own access token over its name: no state on the server (every
//! controller replica computes the same one), nothing another site can compute without the
//! access token, and it dies with the token when an admin revokes the account.

use axum::http::{HeaderMap, Method, header};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::{
    access::{Caller, Permission},
    app::AppState,
    error::AppError,
};

/// The logged-in person (none on a public dashboard) and their forms' CSRF token.
#[derive(Clone, Default)]
pub(crate) struct Session {
    /// Who logged in; `None` on a public dashboard, which is read-only.
    pub caller: Option<Caller>,
    /// What every form of this person carries (empty without a login).
    pub csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is as good as a password for forms: never in a log.
        f.debug_struct("Session").field("caller", &self.caller).finish_non_exhaustive()
    }
}

impl Session {
    /// Whether this person may do what `permission` covers.
    pub(crate) fn may(&self, permission: Permission) -> bool {
        self.caller.as_ref().is_some_and(|caller| caller.role.may(permission))
    }

    /// What the pages' header and forms need.
    pub(crate) fn nav(&self) -> Nav {
        Nav {
            name: self.caller.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
            role: self.caller.as_ref().map(|c| c.role.as_str()).unwrap_or("public").to_owned(),
            csrf: self.csrf.clone(),
            operate: self.may(Permission::Operate),
            sign: self.may(Permission::Sign),
            administer: self.may(Permission::Administer),
        }
    }

    /// The person, if they may do what `permission` covers: 403 otherwise (also on a public
    /// dashboard, where nobody logged in).
    pub(crate) fn require(&self, permission: Permission) -> Result<&Caller, AppError> {
        let caller = self.caller.as_ref().ok_or_else(|| {
            AppError::Forbidden(
                "this dashboard is public and read-only: set [dashboard] public = false to log \
                 in and act"
                    .into(),
            )
        })?;
        caller.check(permission).map_err(AppError::Forbidden)?;
        Ok(caller)
    }

    /// Checks a form's CSRF token: 403 when it is missing or not this person's.
    pub(crate) fn check_csrf(&self, given: Option<&str>) -> Result<(), AppError> {
        let given = given.unwrap_or_default();
        // Digests compared, so the time taken says nothing about how much matched.
        if self.csrf.is_empty() || Sha256::digest(given) != Sha256::digest(&self.csrf) {
            return Err(AppError::Forbidden(
                "the form's CSRF token is missing or not yours: reload the page and send it again"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The logged-in person as the pages show them: the header's name and role, which actions
/// their forms offer, and the token those forms carry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Nav {
    pub name: String,
    pub role: String,
    pub csrf: String,
    pub operate: bool,
    pub sign: bool,
    pub administer: bool,
}

/// Why a login did not complete.
pub(crate) enum LoginError {
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
pub(crate) async fn login(state: &AppState, headers: &HeaderMap) -> Result<Session, LoginError> {
    if state.config.dashboard.public {
        return Ok(Session::default());
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
        Some(caller) if caller.name == name => {
            let csrf = csrf_token(password, name);
            Ok(Session { caller: Some(caller), csrf })
        }
        _ => Err("wrong name or access token".into()),
    }
}

/// The CSRF token of the account `name` whose access token is `credential`.
fn csrf_token(credential: &str, name: &str) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(credential.as_bytes()) else {
        // HMAC takes keys of any length; nothing to sign with otherwise.
        return String::new();
    };
    mac.update(b"wakufleet dashboard forms\0");
    mac.update(name.as_bytes());
    data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
}

/// Refuses a request that changes something when the browser says another site made it:
/// `Sec-Fetch-Site` other than `same-origin` (or `none`, typed by the person), or an `Origin`
/// whose host is not the one asked. Browsers that send neither still need the CSRF token.
pub(crate) fn check_same_origin(method: &Method, headers: &HeaderMap) -> Result<(), AppError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let refused = |why: String| Err(AppError::Forbidden(why));
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return refused(format!("the browser says another site sent this form ({site})"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return refused(format!("the form came from {origin}, not from this dashboard"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;

    fn session(csrf: &str) -> Session {
        Session {
            caller: Some(Caller { name: "olga".into(), role: Role::Operator }),
            csrf: csrf.into(),
        }
    }

    #[test]
    fn csrf_tokens_depend_on_the_credential_and_the_name() {
        let a = csrf_token("wfa_one", "olga");
        assert_eq!(a.len(), 64);
        assert_eq!(a, csrf_token("wfa_one", "olga"));
        assert_ne!(a, csrf_token("wfa_two", "olga"));
        assert_ne!(a, csrf_token("wfa_one", "olgb"));
        let s = session(&a);
        assert!(s.check_csrf(Some(&a)).is_ok());
        assert!(s.check_csrf(None).is_err());
        assert!(s.check_csrf(Some("")).is_err());
        assert!(s.check_csrf(Some(&a[1..])).is_err());
        // A public dashboard has no token, and an empty one matches nothing.
        assert!(Session::default().check_csrf(Some("")).is_err());
    }

    #[test]
    fn roles_are_required_and_a_public_dashboard_acts_for_nobody() {
        let s = session("f00dfeed");
        assert!(s.require(Permission::Operate).is_ok());
        let refused = s.require(Permission::Sign).unwrap_err().to_string();
        assert!(refused.contains("olga has the role operator, which may not sign"), "{refused}");
        let public = Session::default().require(Permission::Read).unwrap_err().to_string();
        assert!(public.contains("public and read-only"), "{public}");
        let nav = s.nav();
        assert!(nav.operate && !nav.sign && !nav.administer);
        // The token is as good as a password for forms: never in a log line.
        let shown = format!("{s:?}");
        assert!(shown.contains("olga") && !shown.contains("f00dfeed"), "{shown}");
    }

    #[test]
    fn cross_site_posts_are_refused_and_same_origin_ones_pass() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().unwrap());
            }
            map
        };
        let post = Method::POST;
        let same = headers(&[
            ("host", "ctl.example:8080"),
            ("origin", "https://ctl.example:8080"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert!(check_same_origin(&post, &same).is_ok());
        assert!(check_same_origin(&post, &headers(&[("host", "a")])).is_ok(), "curl-like");
        for bad in [
            headers(&[("host", "ctl.example"), ("sec-fetch-site", "cross-site")]),
            headers(&[("host", "ctl.example"), ("sec-fetch-site", "same-site")]),
            headers(&[("host", "ctl.example"), ("origin", "https://evil.example")]),
            headers(&[("host", "ctl.example"), ("origin", "null")]),
        ] {
            assert!(check_same_origin(&post, &bad).is_err(), "{bad:?}");
            assert!(check_same_origin(&Method::GET, &bad).is_ok());
        }
    }
}
