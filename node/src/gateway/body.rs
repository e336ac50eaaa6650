//! Request and response bodies: reading a body within the limit (counted
//! again after gzip decompression) and [`BODY_TIMEOUT`], parsing it as a
//! JSON object whatever its content type, and gzip-compressing responses
//! for clients that ask.

use std::io::Read as _;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use futures_util::StreamExt as _;
use serde_json::{Map, Value};
use tokio::sync::OwnedSemaphorePermit;

use super::error::ApiError;
use super::snapshot::Search;

/// Longest a request body may take to arrive (408 after that).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Responses smaller than this are sent uncompressed.
pub const GZIP_MIN: usize = 1024;

/// Compresses `data` with gzip (fast level: lists are large and repetitive).
pub fn gzip(data: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 8), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// Whether the client accepts gzip (`Accept-Encoding: gzip`, not `q=0`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|part| {
            let mut fields = part.split(';').map(str::trim);
            let coding = fields.next().unwrap_or("");
            let zero = fields.any(|f| f.replace(' ', "") == "q=0" || f.replace(' ', "") == "q=0.0");
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
        })
    })
}

/// A JSON response, gzip-compressed when the client accepts it and it is
/// worth it. `compressed` says `body` is already gzip.
pub fn json_response(status: StatusCode, body: Bytes, gzip_ok: bool, compressed: bool) -> Response {
    let (body, gzipped) = if compressed {
        (body, true)
    } else if gzip_ok && body.len() >= GZIP_MIN {
        (gzip(&body), true)
    } else {
        (body, false)
    };
    let mut response = (status, Body::from(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// Bytes of a search's answer rendered at a time.
pub const PIECE: usize = 64 * 1024;

/// A search's answer sent as it is rendered: `head` (plain) first, then the
/// pieces `search` renders on the blocking threads one at a time, each when
/// the client has taken the one before (chunked, no length; gzipped when
/// `gzip`). `permit` is held until the last piece is sent or the client
/// goes away, so at most the semaphore's size of these are in flight.
pub fn streamed_response(
    mut search: Search,
    head: Vec<u8>,
    gzip: bool,
    permit: OwnedSemaphorePermit,
) -> Response {
    let first = if gzip { search.start_gzip(&head) } else { Bytes::from(head) };
    let state = Some((search, permit));
    let rest = futures_util::stream::unfold(state, |state| async move {
        let (mut search, permit) = state?;
        let rendered = tokio::task::spawn_blocking(move || {
            let piece = search.next_piece(PIECE);
            (piece, search)
        })
        .await;
        match rendered {
            Ok((Some(piece), search)) => Some((Ok(piece), Some((search, permit)))),
            Ok((None, _)) => None,
            // The runtime is going away: break the answer off, never end it
            // as if it were whole.
            Err(_) => Some((Err(std::io::Error::other("the node is shutting down")), None)),
        }
    });
    let stream = futures_util::stream::iter([Ok(first)]).chain(rest);
    let mut response = json_response(StatusCode::OK, Bytes::new(), false, gzip);
    *response.body_mut() = Body::from_stream(stream);
    response
}

/// Reads the body (at most `limit` bytes, before and after decompression)
/// and parses it as a JSON object. The content type is not checked: the old
/// server's 415 for a missing `application/json` is a fault, not a feature.
pub async fn read_object(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Map<String, Value>, ApiError> {
    read_object_within(headers, body, limit, BODY_TIMEOUT).await
}

/// [`read_object`], with the body due within `timeout`.
async fn read_object_within(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Map<String, Value>, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge(limit));
    }
    let raw = tokio::time::timeout(timeout, collect(body, limit))
        .await
        .map_err(|_| ApiError::Timeout(timeout))??;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let data = match encoding.as_deref() {
        None | Some("") | Some("identity") => raw,
        Some("gzip") | Some("x-gzip") => gunzip(&raw, limit)?,
        Some(other) => return Err(ApiError::Encoding(other.to_owned())),
    };
    match serde_json::from_slice::<Value>(&data) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::BadRequest(format!(
            "the body must be a JSON object, not {}",
            kind_of(&other)
        ))),
        Err(e) => Err(ApiError::BadRequest(format!("the body is not valid JSON: {e}"))),
    }
}

/// The body's bytes: more than `limit` is a 413, a body that breaks off
/// (the client went away, bad chunked encoding) a 400.
async fn collect(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody as _;
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            ApiError::BadRequest(format!("the request body could not be read: {e}"))
        })?;
        let Ok(data) = frame.into_data() else { continue };
        if data.len() > limit.saturating_sub(out.len()) {
            return Err(ApiError::TooLarge(limit));
        }
        out.extend_from_slice(&data);
    }
    Ok(Bytes::from(out))
}

/// Decompresses at most `limit` bytes; more is a 413, a broken stream a 400.
fn gunzip(data: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(data)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("the gzip body does not decompress: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

/// `an array`, `a string`, ... for error messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;

    #[tokio::test]
    async fn a_streamed_answer_keeps_its_permit_until_sent_or_dropped() {
        use crate::gateway::lifecycle::Status;
        use crate::gateway::snapshot::{List, Page};
        let permits = Arc::new(Semaphore::new(2));
        let list = Arc::new(List::new(Status::Blocked));
        let permit = || permits.clone().try_acquire_owned().unwrap();
        let start = |gzip| {
            let mut search = Search::new(list.clone(), ".".to_owned(), Page::All);
            let mut head = Vec::new();
            search.render(&mut head, 0);
            streamed_response(search, head, gzip, permit())
        };
        let mut held = vec![start(false), start(true)];
        assert!(permits.clone().try_acquire_owned().is_err(), "a third render could start");
        let gzipped = held.pop().unwrap();
        assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
        drop(gzipped);
        assert_eq!(permits.available_permits(), 1, "a dropped answer frees its permit");
        let sent = held.pop().unwrap();
        assert!(sent.headers().get(header::CONTENT_ENCODING).is_none());
        let read = axum::body::to_bytes(sent.into_body(), usize::MAX).await.unwrap();
        assert_eq!(read, list.answer(".", &Page::All));
        assert_eq!(permits.available_permits(), 2, "a sent answer frees its permit");
    }

    #[test]
    fn gzip_round_trips_and_bombs_stop_at_the_limit() {
        let data = vec![b'x'; 100_000];
        let packed = gzip(&data);
        assert!(packed.len() < 1_000);
        assert_eq!(gunzip(&packed, 100_000).unwrap().len(), 100_000);
        assert!(matches!(gunzip(&packed, 99_999), Err(ApiError::TooLarge(_))));
        assert!(matches!(gunzip(b"not gzip", 1_000), Err(ApiError::BadRequest(_))));
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_gets_408() {
        use futures_util::StreamExt as _;
        let first = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from("{\"ip"))]);
        let body = Body::from_stream(first.chain(futures_util::stream::pending()));
        let timeout = Duration::from_millis(100);
        let error = read_object_within(&HeaderMap::new(), body, 1_000, timeout).await.unwrap_err();
        assert!(matches!(error, ApiError::Timeout(_)), "{error:?}");
        assert_eq!(error.status(), StatusCode::REQUEST_TIMEOUT);
        let response = error.into_response();
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }

    #[tokio::test]
    async fn only_the_limit_is_413_and_a_broken_body_is_400() {
        let chunks = |items: Vec<Result<&'static str, std::io::Error>>| {
            Body::from_stream(futures_util::stream::iter(items))
        };
        let headers = HeaderMap::new();
        let whole = chunks(vec![Ok("{\"ip\":"), Ok(" \"192.0.2.1\"}")]);
        assert_eq!(read_object(&headers, whole, 100).await.unwrap().len(), 1);
        let long = chunks(vec![Ok("{\"ip\":"), Ok(" \"192.0.2.1\"}")]);
        let error = read_object(&headers, long, 10).await.unwrap_err();
        assert_eq!(error.status(), StatusCode::PAYLOAD_TOO_LARGE, "{error}");
        let gone = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let broken = chunks(vec![Ok("{\"ip\":"), Err(gone)]);
        let error = read_object(&headers, broken, 100).await.unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{error}");
    }

    #[test]
    fn accept_encoding_is_read_with_q_values() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts_gzip(&h)
        };
        assert!(with("gzip"));
        assert!(with("deflate, gzip;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
