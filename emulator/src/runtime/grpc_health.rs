//! The check behind gRPC probes: one `grpc.health.v1.Health/Check` call, as the kubelet and
//! Cloud Run make it, over HTTP/2 cleartext with prior knowledge (no TLS, no upgrade).
//!
//! It passes only on HTTP 200, `grpc-status` 0 and a `HealthCheckResponse` whose status is
//! `SERVING`. Both messages have a single field, so they are encoded and decoded here by hand
//! rather than through a protobuf library.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::HeaderMap;
use hyper::header::{CONTENT_TYPE, TE};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::probes::AbortOnDrop;

/// The method every gRPC probe calls.
const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// Most response body bytes read; a `HealthCheckResponse` is a handful of bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: i32 = 1;

/// Calls `grpc.health.v1.Health/Check` for `service` (`None` or `""`: the whole server) on
/// `addr` and passes only on `SERVING`, within `timeout`; the error says what the call saw.
pub async fn check_grpc_health(
    addr: SocketAddr,
    service: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let service = service.unwrap_or("");
    match tokio::time::timeout(timeout, check(addr, addr.port(), service)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// One health check against `addr` (a published host port); `port` is the container port, for
/// the request's authority. The caller bounds it with the probe's timeout.
pub(crate) async fn check(addr: SocketAddr, port: u16, service: &str) -> Result<(), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connection failed: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/2 handshake failed: {}", chain(&e)))?;
    // Aborted however this returns, a timeout included, so no connection outlives its attempt.
    let _connection = AbortOnDrop(tokio::spawn(connection));
    sender
        .ready()
        .await
        .map_err(|e| format!("HTTP/2 connection failed: {}", chain(&e)))?;
    let request = hyper::Request::post(format!("http://localhost:{port}{CHECK_PATH}"))
        .header(CONTENT_TYPE, "application/grpc")
        .header(TE, "trailers")
        .body(Full::new(encode_request(service)))
        .map_err(|e| format!("invalid probe request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("gRPC request failed: {}", chain(&e)))?;
    let (head, mut body) = response.into_parts();
    if head.status != hyper::StatusCode::OK {
        return Err(format!("HTTP status {}", head.status.as_u16()));
    }
    let content_type = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/grpc") {
        return Err(format!(
            "not a gRPC response: content-type {content_type:?}"
        ));
    }
    // A trailers-only response (an error, typically) carries grpc-status in its headers.
    if let Some(status) = grpc_status(&head.headers)? {
        return Err(match status {
            0 => "gRPC health response has no message".to_string(),
            _ => describe_status(status, &head.headers),
        });
    }
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| format!("reading the gRPC response failed: {}", chain(&e)))?;
        match frame.into_data() {
            Ok(chunk) => {
                if data.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(format!(
                        "gRPC response larger than {MAX_RESPONSE_BYTES} bytes"
                    ));
                }
                data.extend_from_slice(&chunk);
            }
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    trailers = Some(map);
                }
            }
        }
    }
    let trailers = trailers.unwrap_or_default();
    match grpc_status(&trailers)? {
        None => return Err("no grpc-status in the gRPC response".into()),
        Some(0) => {}
        Some(status) => return Err(describe_status(status, &trailers)),
    }
    match decode_response(data.freeze())? {
        SERVING => Ok(()),
        status => Err(format!(
            "gRPC health status {}",
            serving_status_name(status)
        )),
    }
}

/// An error with its sources, e.g. `connection error: broken pipe`: hyper's own text alone
/// rarely says what went wrong.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.ends_with(&message) {
            text = format!("{text}: {message}");
        }
        source = cause.source();
    }
    text
}

/// The gRPC frame of `HealthCheckRequest { string service = 1; }`: compression flag 0, length
/// (4 bytes, big-endian), message; an empty service is the default value, so no field at all.
fn encode_request(service: &str) -> Bytes {
    let mut message = Vec::with_capacity(service.len() + 11);
    if !service.is_empty() {
        message.push(0x0A); // field 1, wire type 2 (length-delimited)
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    Bytes::from(frame)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The status of the single gRPC frame holding `HealthCheckResponse { ServingStatus status = 1;
/// }`; fields this probe does not know are skipped, as protobuf requires.
fn decode_response(mut data: Bytes) -> Result<i32, String> {
    if data.len() < 5 {
        return Err(match data.len() {
            0 => "gRPC health response has no message".to_string(),
            _ => "gRPC health response truncated".to_string(),
        });
    }
    let compressed = data.get_u8();
    let length = data.get_u32() as usize;
    if compressed != 0 {
        return Err("gRPC health response is compressed, which the probe did not accept".into());
    }
    if data.len() < length {
        return Err("gRPC health response truncated".into());
    }
    if data.len() > length {
        return Err("gRPC health response holds more than one message".into());
    }
    let invalid = || "gRPC health response is not a valid HealthCheckResponse".to_string();
    let mut status = 0;
    while data.has_remaining() {
        let key = get_varint(&mut data).ok_or_else(invalid)?;
        let skip = match (key >> 3, key & 7) {
            // Enums are int32 varints: keep the low 32 bits, as protobuf does.
            (1, 0) => {
                status = get_varint(&mut data).ok_or_else(invalid)? as i32;
                0
            }
            (_, 0) => {
                get_varint(&mut data).ok_or_else(invalid)?;
                0
            }
            (_, 1) => 8,
            (_, 2) => get_varint(&mut data).ok_or_else(invalid)?,
            (_, 5) => 4,
            _ => return Err(invalid()),
        };
        let skip = usize::try_from(skip).map_err(|_| invalid())?;
        if data.remaining() < skip {
            return Err(invalid());
        }
        data.advance(skip);
    }
    Ok(status)
}

/// A protobuf varint, or `None` when truncated or longer than 10 bytes.
fn get_varint(data: &mut Bytes) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        if !data.has_remaining() {
            return None;
        }
        let byte = data.get_u8();
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The `grpc-status` in `headers`, if any.
fn grpc_status(headers: &HeaderMap) -> Result<Option<u32>, String> {
    let Some(value) = headers.get("grpc-status") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| format!("invalid grpc-status {value:?}"))
}

/// `grpc-status 12 (UNIMPLEMENTED): message`, the message being `grpc-message` when present.
fn describe_status(status: u32, headers: &HeaderMap) -> String {
    let message = headers
        .get("grpc-message")
        .map(|value| percent_decode(value.as_bytes()))
        .filter(|message| !message.is_empty())
        .map(|message| format!(": {message}"))
        .unwrap_or_default();
    format!("grpc-status {status} ({}){message}", code_name(status))
}

/// `grpc-message` is percent-encoded UTF-8.
fn percent_decode(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let escaped = match value.get(i..i + 3) {
            Some([b'%', high, low]) => std::str::from_utf8(&[*high, *low])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(value[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn code_name(status: u32) -> &'static str {
    match status {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "unknown code",
    }
}

fn serving_status_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_request_frame() {
        assert_eq!(&encode_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &encode_request("api")[..],
            &[0, 0, 0, 0, 5, 0x0A, 3, b'a', b'p', b'i']
        );
        let long = "s".repeat(200);
        let frame = encode_request(&long);
        assert_eq!(&frame[..8], &[0, 0, 0, 0, 203, 0x0A, 0xC8, 0x01]);
    }

    #[test]
    fn decodes_the_response_status() {
        let frame = |message: &[u8]| {
            let mut frame = vec![0];
            frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
            frame.extend_from_slice(message);
            Bytes::from(frame)
        };
        assert_eq!(decode_response(frame(&[0x08, 1])), Ok(1));
        assert_eq!(decode_response(frame(&[0x08, 2])), Ok(2));
        // The default value is not on the wire.
        assert_eq!(decode_response(frame(&[])), Ok(0));
        // Unknown fields of every wire type are skipped.
        let message = [
            0x10, 0x96, 0x01, // field 2 varint
            0x19, 1, 2, 3, 4, 5, 6, 7, 8, // field 3 fixed64
            0x22, 2, b'h', b'i', // field 4 bytes
            0x2D, 1, 2, 3, 4, // field 5 fixed32
            0x08, 1,
        ];
        assert_eq!(decode_response(frame(&message)), Ok(1));
        assert!(decode_response(frame(&[0x08])).is_err());
        assert!(decode_response(frame(&[0x22, 5, b'h'])).is_err());
        assert!(decode_response(Bytes::from_static(&[0, 0, 0, 0, 2, 0x08])).is_err());
        assert!(decode_response(Bytes::from_static(&[1, 0, 0, 0, 2, 0x08, 1])).is_err());
        assert!(decode_response(Bytes::new()).is_err());
    }

    #[test]
    fn describes_grpc_status() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            describe_status(12, &headers),
            "grpc-status 12 (UNIMPLEMENTED)"
        );
        headers.insert(
            "grpc-message",
            hyper::header::HeaderValue::from_static("unknown service %C3%A9x%2"),
        );
        assert_eq!(
            describe_status(5, &headers),
            "grpc-status 5 (NOT_FOUND): unknown service éx%2"
        );
    }
}
