//! List pagination as Google APIs do it: `pageSize`, an opaque `pageToken`, `nextPageToken`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{StateError, StateResult};

/// What the client asked for.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Items per page; `None` or 0 means the API's default.
    pub size: Option<i64>,
    /// The `nextPageToken` of the previous page.
    pub token: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
    /// How many items matched in all pages.
    pub total: usize,
}

/// Cuts one page out of `items` (already filtered and ordered, each with a unique key).
pub fn paginate<T>(
    items: Vec<(String, T)>,
    request: &PageRequest,
    default_size: usize,
    max_size: usize,
) -> StateResult<Page<T>> {
    let size = match request.size {
        None | Some(0) => default_size,
        Some(n) if n < 0 => {
            return Err(StateError::invalid("page_size must not be negative."));
        }
        Some(n) => usize::try_from(n).unwrap_or(max_size).min(max_size),
    };
    let after = match request.token.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => Some(decode_token(token)?),
    };
    let total = items.len();
    let start = match &after {
        None => 0,
        Some(key) => items
            .iter()
            .position(|(k, _)| k == key)
            .map(|i| i + 1)
            .unwrap_or(total),
    };
    let mut rest: Vec<(String, T)> = items.into_iter().skip(start).collect();
    let next_token = if rest.len() > size {
        rest.truncate(size);
        rest.last().map(|(key, _)| URL_SAFE_NO_PAD.encode(key))
    } else {
        None
    };
    Ok(Page {
        items: rest.into_iter().map(|(_, item)| item).collect(),
        next_token,
        total,
    })
}

fn decode_token(token: &str) -> StateResult<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| StateError::invalid(format!("The page token [{token}] is invalid.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<(String, usize)> {
        (0..n).map(|i| (format!("k{i:03}"), i)).collect()
    }

    #[test]
    fn pages_walk_every_item_once() {
        let mut request = PageRequest {
            size: Some(3),
            token: None,
        };
        let mut seen = Vec::new();
        loop {
            let page = paginate(keys(8), &request, 100, 100).expect("page");
            assert_eq!(page.total, 8);
            seen.extend(page.items);
            match page.next_token {
                Some(token) => request.token = Some(token),
                None => break,
            }
        }
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn garbage_token_is_invalid_argument() {
        let request = PageRequest {
            size: None,
            token: Some("!!!".into()),
        };
        assert!(matches!(
            paginate(keys(2), &request, 10, 10),
            Err(StateError::InvalidArgument(_))
        ));
    }
}
