//! Wire conventions every Google REST API shares: JSON bodies with Google's error for bad input,
//! query parameters, `:verb` suffixes, timestamps, durations and int64-as-string numbers.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::ApiError;
use crate::state::page::PageRequest;

pub mod iam;

/// A JSON request body; malformed JSON or a wrong field is a 400 INVALID_ARGUMENT, and an
/// empty body reads as `{}` (clients omit empty request messages).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid(format!("The request body could not be read: {e}")))?;
        parse_json(&bytes).map(Body)
    }
}

/// Parses a JSON request message; an empty body reads as `{}`, anything malformed is a 400.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))
}

/// The query parameters of a request (the last value wins when one repeats).
#[derive(Debug, Default, Clone)]
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query)?;
        Ok(Params(pairs.into_iter().collect()))
    }
}

fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((percent_decode(key)?, percent_decode(value)?));
    }
    Ok(out)
}

fn percent_decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::invalid(format!("Malformed query string: {text}")))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::invalid("The query string is not UTF-8."))
}

impl Params {
    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A parameter that must be an integer when present.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::invalid(format!("Invalid value for [{key}]: {v} is not an integer."))
                })
            })
            .transpose()
    }

    /// `pageSize` and `pageToken`.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest {
            size: self.int("pageSize")?.or(self.int("page_size")?),
            token: self
                .get("pageToken")
                .or(self.get("page_token"))
                .map(str::to_string),
        })
    }

    /// A comma-separated field mask (`updateMask`).
    pub fn mask(&self) -> Vec<String> {
        split_mask(self.get("updateMask").or(self.get("update_mask")))
    }

    /// Whether the client asked for enums as numbers (`$alt=json;enum-encoding=int`).
    pub fn enum_ints(&self) -> bool {
        self.get("$alt")
            .is_some_and(|alt| alt.contains("enum-encoding=int"))
    }
}

/// Splits a field mask into paths.
pub fn split_mask(mask: Option<&str>) -> Vec<String> {
    mask.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits `name:verb` into the name and the custom method.
pub fn split_verb(segment: &str) -> (&str, Option<&str>) {
    match segment.split_once(':') {
        Some((name, verb)) => (name, Some(verb)),
        None => (segment, None),
    }
}

/// A timestamp as Google writes it (RFC 3339, UTC, `Z`).
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 timestamp field.
pub fn parse_timestamp(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid(format!(
                "Invalid value at '{field}' (type.googleapis.com/google.protobuf.Timestamp), \
                 Field '{field}', Illegal timestamp format; timestamps must end with 'Z' or have \
                 a valid timezone offset."
            ))
        })
}

/// A `google.protobuf.Duration` as JSON writes it: `"3600s"`, `"1.5s"`.
pub fn duration(value: Duration) -> String {
    if value.subsec_nanos() == 0 {
        format!("{}s", value.as_secs())
    } else {
        let text = format!("{}.{:09}", value.as_secs(), value.subsec_nanos());
        format!("{}s", text.trim_end_matches('0'))
    }
}

/// Parses a `google.protobuf.Duration` field.
pub fn parse_duration(field: &str, text: &str) -> Result<Duration, ApiError> {
    let invalid = || {
        ApiError::invalid(format!(
            "Invalid value at '{field}' (type.googleapis.com/google.protobuf.Duration), \
             Field '{field}', Illegal duration format; duration must end with 's'"
        ))
    };
    let number = text.strip_suffix('s').ok_or_else(invalid)?;
    let seconds: f64 = number.parse().map_err(|_| invalid())?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(invalid());
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

/// An int64 field, which JSON carries as a string but some clients send as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int64(pub i64);

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(i64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(Int64(n)),
            Either::Text(t) => t
                .parse()
                .map(Int64)
                .map_err(|_| serde::de::Error::custom(format!("invalid int64 value: \"{t}\""))),
        }
    }
}

impl serde::Serialize for Int64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        assert_eq!(duration(Duration::from_secs(3600)), "3600s");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(
            parse_duration("ttl", "1.5s").expect("valid"),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("ttl", "10").is_err());
        assert!(parse_duration("ttl", "-1s").is_err());
    }

    #[test]
    fn query_strings_decode() {
        let pairs = serde_urlencoded_pairs("filter=name%3Adb-&a=b+c&$alt=json;enum-encoding=int")
            .expect("valid");
        assert_eq!(pairs[0], ("filter".into(), "name:db-".into()));
        assert_eq!(pairs[1], ("a".into(), "b c".into()));
        assert!(serde_urlencoded_pairs("x=%zz").is_err());
    }
}
