//! Who may invoke a service, and the answers Google's front end gives to those who may not.

use hyper::HeaderMap;
use hyper::StatusCode;
use hyper::header::AUTHORIZATION;

/// Who may invoke a service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Access {
    /// Anyone: `allUsers` holds `roles/run.invoker`, or the invoker IAM check is disabled.
    Public,
    /// Only callers with a valid ID token and the invoker permission (Cloud Run's default).
    #[default]
    Private,
}

/// Why a request to a private service was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denial {
    /// No credentials at all: 403 with Google front end's HTML page.
    Unauthenticated,
    /// Credentials that do not prove the right to invoke: 401.
    Unauthorized,
}

/// The header Cloud Run reads a token from when the `Authorization` header is the app's own.
const SERVERLESS_AUTHORIZATION: &str = "x-serverless-authorization";

/// Whether a request may reach the service.
pub(crate) fn check(access: Access, headers: &HeaderMap) -> Result<(), Denial> {
    if access == Access::Public {
        return Ok(());
    }
    let credentials = headers
        .get(SERVERLESS_AUTHORIZATION)
        .or_else(|| headers.get(AUTHORIZATION));
    match credentials {
        None => Err(Denial::Unauthenticated),
        Some(value) => verify(value.to_str().unwrap_or("")),
    }
}

/// Verifies the credentials of a request to a private service.
///
/// Token verification (Google-signed ID tokens, `aud`, the invoker binding) is not done yet, so
/// every token is refused as Cloud Run refuses one it cannot verify.
fn verify(_credentials: &str) -> Result<(), Denial> {
    Err(Denial::Unauthorized)
}

impl Denial {
    /// The HTTP status of the answer.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Denial::Unauthenticated => StatusCode::FORBIDDEN,
            Denial::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    /// The content type and body of the answer to a request for `path`.
    pub(crate) fn body(self, path: &str) -> (&'static str, String) {
        match self {
            Denial::Unauthenticated => (
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
    use hyper::header::HeaderValue;

    #[test]
    fn private_services_refuse_anonymous_and_unverified_callers() {
        let mut headers = HeaderMap::new();
        assert_eq!(check(Access::Public, &headers), Ok(()));
        assert_eq!(
            check(Access::Private, &headers),
            Err(Denial::Unauthenticated)
        );
        headers.insert(
            SERVERLESS_AUTHORIZATION,
            HeaderValue::from_static("Bearer x"),
        );
        assert_eq!(check(Access::Private, &headers), Err(Denial::Unauthorized));
    }

    #[test]
    fn the_403_page_names_the_path_escaped() {
        let (_, body) = Denial::Unauthenticated.body("/a<b>");
        assert!(body.contains("<code>/a&lt;b&gt;</code>"));
    }
}
