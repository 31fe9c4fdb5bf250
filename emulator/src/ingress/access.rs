//! Who may invoke a service, and the answers Google's front end gives to those who may not.

use std::collections::BTreeSet;
use std::sync::Arc;

use hyper::HeaderMap;
use hyper::StatusCode;
use hyper::header::AUTHORIZATION;

use crate::state::identity::{ALL_AUTHENTICATED_USERS, TokenIssuer};

/// Who may invoke a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone: `allUsers` holds `roles/run.invoker`, or the invoker IAM check is disabled.
    Public,
    /// Only callers with a valid ID token for the service whose principal may invoke it.
    Private(Arc<Invokers>),
}

impl Default for Access {
    /// Cloud Run's default: private, and nobody holds the invoker role.
    fn default() -> Self {
        Access::Private(Arc::default())
    }
}

/// Who may invoke a private service, and the audiences its ID tokens may name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invokers {
    /// IAM members (`serviceAccount:…`, `user:…`, `allAuthenticatedUsers`) granted the role.
    pub members: BTreeSet<String>,
    /// Accepted `aud` values: the service's URLs and its custom audiences.
    pub audiences: BTreeSet<String>,
}

impl Invokers {
    /// Whether a token for `audience` may be used here; a URL may carry a trailing slash.
    fn accepts_audience(&self, audience: &str) -> bool {
        self.audiences.contains(audience)
            || audience
                .strip_suffix('/')
                .is_some_and(|bare| self.audiences.contains(bare))
    }

    /// Whether the IAM member may invoke.
    fn admits(&self, member: &str) -> bool {
        self.members.contains(member) || self.members.contains(ALL_AUTHENTICATED_USERS)
    }
}

/// Why a request to a private service was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denial {
    /// No credentials at all: 403 with Google front end's HTML page.
    Unauthenticated,
    /// Credentials that are not a valid ID token for this service: 401.
    Unauthorized,
    /// A valid ID token whose principal lacks the invoker permission: 403.
    Forbidden,
}

/// The header Cloud Run reads a token from when the `Authorization` header is the app's own.
const SERVERLESS_AUTHORIZATION: &str = "x-serverless-authorization";

/// Whether a request may reach the service; `issuer` verifies ID tokens (`None`: it could not
/// be made, so no token verifies).
pub(crate) fn check(
    access: &Access,
    headers: &HeaderMap,
    issuer: impl FnOnce() -> Option<Arc<TokenIssuer>>,
) -> Result<(), Denial> {
    let Access::Private(invokers) = access else {
        return Ok(());
    };
    let credentials = headers
        .get(SERVERLESS_AUTHORIZATION)
        .or_else(|| headers.get(AUTHORIZATION));
    let Some(value) = credentials else {
        return Err(Denial::Unauthenticated);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(Denial::Unauthorized)?;
    let issuer = issuer().ok_or(Denial::Unauthorized)?;
    let verified = issuer.verify(token).map_err(|_| Denial::Unauthorized)?;
    if !invokers.accepts_audience(&verified.audience) {
        return Err(Denial::Unauthorized);
    }
    if invokers.admits(&verified.member()) {
        Ok(())
    } else {
        Err(Denial::Forbidden)
    }
}

impl Denial {
    /// The HTTP status of the answer.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Denial::Unauthenticated | Denial::Forbidden => StatusCode::FORBIDDEN,
            Denial::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    /// The content type and body of the answer to a request for `path`.
    pub(crate) fn body(self, path: &str) -> (&'static str, String) {
        match self {
            Denial::Unauthenticated | Denial::Forbidden => (
                "text/html; charset=UTF-8",
                format!(
                    "<html><head>\n<meta http-equiv=\"content-type\" \
                     content=\"text/html;charset=utf-8\">\n<title>403 Forbidden</title>\n\
                     </head>\n<body text=#000000 bgcolor=#ffffff>\n<h1>Error: Forbidden</h1>\n\
                     <h2>Your client does not have permission to get URL <code>{}</code> from \
                     this server.</h2>\n<h2></h2>\n</body></html>",
                    escape_html(path)
                ),
            ),
            Denial::Unauthorized => (
                "text/plain; charset=utf-8",
                "The request was not authorized to invoke this service.\n".to_string(),
            ),
        }
    }

    /// What the request log says about the refusal.
    pub(crate) fn log_message(self) -> &'static str {
        match self {
            Denial::Unauthenticated => {
                "The request was not authenticated. Either allow unauthenticated invocations or \
                 set the proper Authorization header. Read more at \
                 https://cloud.google.com/run/docs/securing/authenticating"
            }
            Denial::Unauthorized => {
                "The request was not authorized to invoke this service. Read more at \
                 https://cloud.google.com/run/docs/securing/authenticating The access token \
                 could not be verified."
            }
            Denial::Forbidden => {
                "The request was not authorized to invoke this service. Read more at \
                 https://cloud.google.com/run/docs/securing/authenticating"
            }
        }
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Store;
    use hyper::header::HeaderValue;

    const URL: &str = "http://127.0.0.1:41000";

    fn private(members: &[&str]) -> Access {
        Access::Private(Arc::new(Invokers {
            members: members.iter().map(|m| m.to_string()).collect(),
            audiences: [URL.to_string()].into(),
        }))
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        headers
    }

    #[test]
    fn private_services_refuse_anonymous_and_unverified_callers() {
        let store = Store::in_memory();
        let issuer = || store.token_issuer().ok();
        let mut headers = HeaderMap::new();
        assert_eq!(check(&Access::Public, &headers, issuer), Ok(()));
        assert_eq!(
            check(&Access::default(), &headers, issuer),
            Err(Denial::Unauthenticated)
        );
        headers.insert(
            SERVERLESS_AUTHORIZATION,
            HeaderValue::from_static("Bearer x"),
        );
        assert_eq!(
            check(&Access::default(), &headers, issuer),
            Err(Denial::Unauthorized)
        );
    }

    #[test]
    fn a_valid_token_is_admitted_only_with_the_binding_and_the_right_audience() {
        let store = Store::in_memory();
        let issuer = store.token_issuer().expect("issuer");
        let email = "caller@demo.iam.gserviceaccount.com";
        let member = "serviceAccount:caller@demo.iam.gserviceaccount.com";
        let token = issuer.id_token(email, URL, None).expect("token");
        let with = || Some(Arc::clone(&issuer));
        assert_eq!(check(&private(&[member]), &bearer(&token), with), Ok(()));
        assert_eq!(
            check(&private(&[ALL_AUTHENTICATED_USERS]), &bearer(&token), with),
            Ok(())
        );
        assert_eq!(
            check(
                &private(&["user:someone@example.com"]),
                &bearer(&token),
                with
            ),
            Err(Denial::Forbidden)
        );
        let elsewhere = issuer
            .id_token(email, "http://127.0.0.1:1", None)
            .expect("token");
        assert_eq!(
            check(&private(&[member]), &bearer(&elsewhere), with),
            Err(Denial::Unauthorized)
        );
        let slash = issuer
            .id_token(email, &format!("{URL}/"), None)
            .expect("token");
        assert_eq!(check(&private(&[member]), &bearer(&slash), with), Ok(()));
    }

    #[test]
    fn the_403_page_names_the_path_escaped() {
        let (_, body) = Denial::Unauthenticated.body("/a<b>");
        assert!(body.contains("<code>/a&lt;b&gt;</code>"));
    }
}
