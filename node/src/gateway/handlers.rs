//! The Fail2BanSync endpoints (SEED-API.md): `POST /add_ips`, the three
//! lists, `POST /allow_ip`. Reads answer from the view's snapshot; writes
//! become typed orders issued through the [`NodeHandle`](crate::api::NodeHandle)
//! and then wait for the view to show them. The node's errors become status
//! codes by variant (see [`ApiError`]'s `From<NodeError>`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use banmesh_crdt::record::{MAX_JAIL, MAX_REASON, MAX_SOURCE};
use banmesh_crdt::{Decision, Key, Kind, Metadata};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::Shared;
use super::body::{PIECE, accepts_gzip, json_response, kind_of, read_object, streamed_response};
use super::error::ApiError;
use super::lifecycle::Status;
use super::listener::Peer;
use super::snapshot::{Page, Search};
use super::view::KeyState;
use crate::api::{Lifetime, NodeError, Order, Outcome};
use crate::clock::now_ms;
use crate::control::protocol::MAX_ISSUE_BATCH;

/// Items per page when `page` is given without `per_page` / `page_size`.
pub const DEFAULT_PER_PAGE: usize = 50;
/// Most items per page; larger requests get this many.
pub const MAX_PER_PAGE: usize = 1_000;
/// Most searches rendered or being sent at once (each holds a piece of its
/// answer and, gzipped, a compressor: well under 1 MB, whatever the list's
/// length; the bound is for the CPU the scans take).
pub const HEAVY_RENDERS: usize = 4;
/// Longest `search_ip`.
const MAX_SEARCH: usize = 100;

/// A list's query pairs, or why they did not parse.
pub type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// `GET /get_ips`, `/get_allowed_ips`, `/get_known_ips`.
pub async fn list(
    shared: Arc<Shared>,
    status: Status,
    headers: HeaderMap,
    peer: Peer,
    params: Params,
) -> Result<Response, ApiError> {
    shared.authorize(&headers, &peer)?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest(format!("bad query: {e}")))?;
    let (search, page) = list_params(&params)?;
    let snapshot = shared.view.snapshot();
    let gzip = accepts_gzip(&headers);
    if search.is_empty() && page != Page::All {
        // A page renders a few hundred items: cheap enough to answer here.
        let body = snapshot.list(status).answer("", &page);
        return Ok(json_response(StatusCode::OK, body, gzip, false));
    }
    if search.is_empty() {
        // The whole list: made once per snapshot and shared, off the async
        // threads (the first request renders it).
        let body = tokio::task::spawn_blocking(move || snapshot.list(status).full(gzip))
            .await
            .map_err(|_| shutting_down())?;
        return Ok(json_response(StatusCode::OK, body, gzip, gzip));
    }
    // A search's answer is for this request alone (22.9 MB for `.` at
    // 100,000 records): it is rendered from the snapshot a piece at a time
    // as the client reads it, and at most HEAVY_RENDERS run at once.
    let permit = shared.heavy.clone().acquire_owned().await.map_err(|_| shutting_down())?;
    let mut search = Search::new(snapshot.shared_list(status), search, page);
    let (search, head) = tokio::task::spawn_blocking(move || {
        let mut head = Vec::with_capacity(PIECE + 1024);
        search.render(&mut head, PIECE);
        (search, head)
    })
    .await
    .map_err(|_| shutting_down())?;
    if search.is_done() {
        return Ok(json_response(StatusCode::OK, Bytes::from(head), gzip, false));
    }
    Ok(streamed_response(search, head, gzip, permit))
}

/// The first value of `name`, with empty values read as absent.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
}

/// A whole number of at least 1 (`+` and leading zeros allowed); one beyond
/// `usize` reads as `usize::MAX`, as the old server's Python read any size.
fn positive(name: &str, text: &str) -> Result<usize, ApiError> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    let whole = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if !whole || digits.bytes().all(|b| b == b'0') {
        return Err(ApiError::BadRequest(format!(
            "{name} must be a whole number of at least 1, not {text:?}"
        )));
    }
    Ok(digits.parse::<usize>().unwrap_or(usize::MAX))
}

/// `search_ip`, and the page asked for (`page` with `per_page` or the
/// earlier client's `page_size`; an empty `page` is page 1).
fn list_params(params: &[(String, String)]) -> Result<(String, Page), ApiError> {
    // Counted as sent: trimming or lowercasing (`İ` is two characters
    // lowercased) must not change what the limit means.
    let sent = params.iter().find(|(k, _)| k == "search_ip").map_or("", |(_, v)| v.as_str());
    if sent.chars().count() > MAX_SEARCH {
        return Err(ApiError::BadRequest(format!(
            "search_ip is longer than {MAX_SEARCH} characters"
        )));
    }
    let search = param(params, "search_ip").unwrap_or("").to_lowercase();
    // Both are read, so a bad one is a 400 even beside a good one.
    let mut per_page = DEFAULT_PER_PAGE;
    for name in ["page_size", "per_page"] {
        if let Some(text) = param(params, name) {
            per_page = positive(name, text)?.min(MAX_PER_PAGE);
        }
    }
    // `page` given empty (`?page=`) is page 1: only a query without `page`
    // asks for the whole list (the old server read it as absent, and so
    // sent every record to a client that meant to page).
    let page = match param(params, "page") {
        Some(text) => Page::Number { page: positive("page", text)?, per_page },
        None if params.iter().any(|(k, _)| k == "page") => Page::Number { page: 1, per_page },
        None => Page::All,
    };
    Ok((search, page))
}

/// `POST /add_ips`.
pub async fn add_ips(
    shared: Arc<Shared>,
    headers: HeaderMap,
    peer: Peer,
    body: Body,
) -> Result<Response, ApiError> {
    let client = shared.authorize(&headers, &peer)?;
    client.may_write()?;
    let object = read_object(&headers, body, shared.body_limit).await?;
    let (keys, mut invalid) = parse_ips(ips_of(&object)?);
    let meta = Metadata {
        jail: text_field(&object, "jail", MAX_JAIL)?,
        reason: text_field(&object, "description", MAX_REASON)?,
        source: clean(&client.reported_by(), MAX_SOURCE),
    };
    let states = shared.view.lookup(keys.clone()).await.ok_or_else(shutting_down)?;
    let orders = plan(&shared, keys.into_iter().zip(states), &meta);
    let mut added = Vec::new();
    for (n, chunk) in orders.chunks(MAX_ISSUE_BATCH).enumerate() {
        let results = match shared.node.issue(chunk.to_vec()).await {
            Ok(results) => results.into_iter().map(|r| r.map_err(|e| e.to_string())).collect(),
            Err(error) if n == 0 => return Err(error.into()),
            // Earlier batches are committed: report the rest per address.
            Err(error) => vec![Err(ApiError::from(error).to_string()); chunk.len()],
        };
        for (order, result) in chunk.iter().zip(results) {
            let key = order.key.to_string();
            match result {
                Ok(Outcome::Issued(_) | Outcome::Skipped(_)) => added.push(Value::String(key)),
                Err(error) => invalid.push(json!({"ip": key, "error": error})),
            }
        }
    }
    shared.view.flush().await;
    tracing::info!(
        target: "banmesh::events::gateway_add_ips",
        client = %meta.source,
        added = added.len(),
        invalid = invalid.len(),
        "add_ips"
    );
    let body = json!({
        "message": format!("{} addresses added", added.len()),
        "added_ips": added,
        "invalid_ips": invalid,
    });
    let gzip = accepts_gzip(&headers);
    Ok(json_response(StatusCode::CREATED, Bytes::from(body.to_string()), gzip, false))
}

/// The `ips` list of an `add_ips` body.
fn ips_of(object: &Map<String, Value>) -> Result<&[Value], ApiError> {
    match object.get("ips") {
        None | Some(Value::Null) => {
            Err(ApiError::BadRequest("no ips given: send {\"ips\": [addresses]}".into()))
        }
        Some(Value::Array(ips)) if ips.is_empty() => {
            Err(ApiError::BadRequest("ips is empty: send at least one address".into()))
        }
        Some(Value::Array(ips)) => Ok(ips),
        Some(other) => Err(ApiError::BadRequest(format!(
            "ips must be a list of addresses, not {}",
            kind_of(other)
        ))),
    }
}

/// The error for a network given where the old API takes one address: a
/// client token must not be able to ban (or free) whole networks, which the
/// old server never did either; operators do that with `banmesh ban NET`.
fn network_refused(key: Key) -> String {
    format!(
        "{key} is a network: the gateway takes single addresses; ban a network with `banmesh ban {key}` on a node"
    )
}

/// The distinct addresses named in `ips`, in order, and an `{"ip",
/// "error"}` for each entry that is not one address.
fn parse_ips(ips: &[Value]) -> (Vec<Key>, Vec<Value>) {
    let mut invalid = Vec::new();
    let mut keys = Vec::new();
    let mut seen = HashSet::new();
    for ip in ips {
        match ip {
            Value::String(text) => match Key::parse(text) {
                Ok(parsed) if !parsed.key.is_address() => {
                    invalid.push(json!({"ip": text, "error": network_refused(parsed.key)}));
                }
                Ok(parsed) if seen.insert(parsed.key) => keys.push(parsed.key),
                Ok(_) => {}
                Err(e) => invalid.push(json!({"ip": text, "error": e.to_string()})),
            },
            other => invalid.push(
                json!({"ip": other, "error": format!("{} is not an address", kind_of(other))}),
            ),
        }
    }
    (keys, invalid)
}

/// The ban orders for keys where they stand: blocked keys and keys a live
/// Allow decides are left alone; allowed-by-window and known keys are
/// banned again one strike up; unknown keys get a first ban. `meta` gives
/// the jail, reason and source.
fn plan(
    shared: &Shared,
    states: impl Iterator<Item = (Key, Option<KeyState>)>,
    meta: &Metadata,
) -> Vec<Order> {
    let now = now_ms();
    let mut orders = Vec::new();
    for (key, state) in states {
        let strikes = match state {
            Some(s) if s.explicit_allow || s.status == Status::Blocked => continue,
            Some(s) => s.block_count.saturating_add(1).max(1),
            None => 1,
        };
        if covered_by_allow(shared, key, now) {
            continue;
        }
        orders.push(Order {
            lifetime: Lifetime::For(millis(shared.policy.bantime_for(strikes))),
            strikes,
            meta: meta.clone(),
            ..Order::new(Kind::Ban, key)
        });
    }
    orders
}

/// Whether a live Allow on a network covering this address already wins
/// (only addresses; a network's own allow is in its lifecycle).
fn covered_by_allow(shared: &Shared, key: Key, now: u64) -> bool {
    if key.prefix_len() != key.net().max_prefix_len() {
        return false;
    }
    let decision = shared.store.with_index(|index| index.decision(key.net().addr(), now));
    matches!(decision, Decision::Allowed { .. })
}

/// `POST /allow_ip`.
pub async fn allow_ip(
    shared: Arc<Shared>,
    headers: HeaderMap,
    peer: Peer,
    body: Body,
) -> Result<Response, ApiError> {
    let client = shared.authorize(&headers, &peer)?;
    client.may_write()?;
    let object = read_object(&headers, body, shared.body_limit).await?;
    let text = match object.get("ip") {
        None | Some(Value::Null) => {
            return Err(ApiError::BadRequest("no ip given: send {\"ip\": address}".into()));
        }
        Some(Value::String(text)) => text.clone(),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "ip must be a string, not {}",
                kind_of(other)
            )));
        }
    };
    let key = Key::parse(&text).map_err(|e| ApiError::BadRequest(e.to_string()))?.key;
    if !key.is_address() {
        return Err(ApiError::BadRequest(network_refused(key)));
    }
    let state = shared.view.lookup(vec![key]).await.ok_or_else(shutting_down)?;
    let Some(state) = state.into_iter().next().flatten() else {
        return Err(ApiError::NotFound(format!("{key} is not in the lists")));
    };
    if state.status != Status::Blocked {
        return Err(ApiError::BadRequest(format!(
            "{key} is {}, not blocked",
            state.status.as_str()
        )));
    }
    let source = clean(&client.reported_by(), MAX_SOURCE);
    let order = |kind, lifetime| Order {
        lifetime,
        meta: Metadata { reason: "allow_ip".into(), source: source.clone(), ..Metadata::default() },
        ..Order::new(kind, key)
    };
    // The Allow first, alone: if the node may not issue it (no allow role),
    // nothing changes, rather than an Unban without its Allow.
    let allowed = millis(shared.policy.allowed_duration);
    let steps = [
        (allowed > 0).then(|| order(Kind::Allow, Lifetime::For(allowed))),
        Some(order(Kind::Unban, Lifetime::Default)),
    ];
    for step in steps.into_iter().flatten() {
        shared.node.write(step).await?;
    }
    shared.view.flush().await;
    tracing::info!(target: "banmesh::events::gateway_allow_ip", client = %source, %key, "allow_ip");
    let body =
        json!({"message": format!("{key} is allowed"), "ip": key.to_string(), "status": "allowed"});
    Ok(json_response(StatusCode::OK, Bytes::from(body.to_string()), false, false))
}

fn shutting_down() -> ApiError {
    NodeError::ShuttingDown.into()
}

/// An optional text field, cleaned to fit a record.
fn text_field(object: &Map<String, Value>, name: &str, max: usize) -> Result<String, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(clean(text, max)),
        Some(other) => {
            Err(ApiError::BadRequest(format!("{name} must be a string, not {}", kind_of(other))))
        }
    }
}

/// `text` with control characters as spaces, cut to `max` bytes on a
/// character boundary.
fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The 404 for any other path.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

/// The 405 for a known path with another method.
pub async fn wrong_method() -> ApiError {
    ApiError::Method
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn list_params_refuse_what_is_not_a_page() {
        assert_eq!(list_params(&params("")).unwrap(), (String::new(), Page::All));
        assert_eq!(
            list_params(&params("page=2&page_size=200")).unwrap().1,
            Page::Number { page: 2, per_page: 200 }
        );
        assert_eq!(
            list_params(&params("page=1")).unwrap().1,
            Page::Number { page: 1, per_page: 50 }
        );
        assert_eq!(
            list_params(&params("page=1&per_page=99999")).unwrap().1,
            Page::Number { page: 1, per_page: MAX_PER_PAGE }
        );
        // Beyond any integer type: the last page there could be, not a 400.
        assert_eq!(
            list_params(&params("page=99999999999999999999999&per_page=9223372036854775808"))
                .unwrap()
                .1,
            Page::Number { page: usize::MAX, per_page: MAX_PER_PAGE }
        );
        assert_eq!(list_params(&params("search_ip=2001:DB8")).unwrap().0, "2001:db8");
        // A `page` given empty is page 1, never the whole list.
        for first in ["page=", "page=%20", "page=&per_page=", "search_ip=1&page="] {
            let first = first.replace("%20", " ");
            assert_eq!(
                list_params(&params(&first)).unwrap().1,
                Page::Number { page: 1, per_page: DEFAULT_PER_PAGE },
                "{first}"
            );
        }
        for bad in [
            "page=0",
            "page=abc",
            "page=-1",
            "page=1&per_page=0",
            "page=1&per_page=-1",
            "page=1.5",
            "page=+",
            "page=00",
        ] {
            assert!(matches!(list_params(&params(bad)), Err(ApiError::BadRequest(_))), "{bad}");
        }
    }

    #[test]
    fn clean_fits_records() {
        assert_eq!(clean("a\nb\u{7}c", 10), "a b c");
        assert_eq!(clean("ééé", 5), "éé");
    }
}
