//! `POST /v1/bans`, `DELETE /v1/bans/{key}`, `POST /v1/allows`,
//! `DELETE /v1/allows/{key}`: records signed by this node, issued through
//! its [`NodeHandle`](crate::api::NodeHandle) like `banmesh ban`. Only
//! tokens with the `write` role may call them, and only `admin` tokens on
//! networks; this node's certificate still decides what it may issue.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use banmesh_crdt::duration::parse_duration;
use banmesh_crdt::record::{MAX_JAIL, MAX_REASON, MAX_SOURCE};
use banmesh_crdt::slots::KeySlots;
use banmesh_crdt::{Decision as Verdict, Key, Kind, Metadata};
use serde_json::{Map, Value, json};

use super::super::Shared;
use super::super::auth::Client;
use super::super::body::read_object;
use super::decisions::Decision;
use super::error::V1Error;
use crate::api::{Lifetime, Order};
use crate::clock::now_ms;
use crate::config::Role;
use crate::store::query;

/// The fields a write body may carry.
const FIELDS: [&str; 5] = ["key", "duration", "permanent", "jail", "reason"];

/// A `POST` body, read.
#[derive(Debug)]
struct WriteBody {
    key: Key,
    lifetime: Lifetime,
    jail: String,
    reason: String,
}

/// Reads a JSON object body: 415 unless `application/json`, 413 over the
/// limit, 400 when it is not a JSON object.
async fn read_json(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, V1Error> {
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(V1Error::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the body as Content-Type: application/json, not {content_type:?}"),
        ));
    }
    Ok(read_object(headers, body, shared.body_limit).await?)
}

fn text(object: &Map<String, Value>, name: &str, max: usize) -> Result<String, V1Error> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(t)) if t.len() <= max && !t.chars().any(char::is_control) => {
            Ok(t.clone())
        }
        Some(Value::String(_)) => Err(V1Error::invalid(format!(
            "{name} must be at most {max} bytes without control characters"
        ))),
        Some(_) => Err(V1Error::invalid(format!("{name} must be a string"))),
    }
}

/// Reads `{"key", "duration", "permanent", "jail", "reason"}`.
fn write_body(object: &Map<String, Value>, kind: Kind) -> Result<WriteBody, V1Error> {
    if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(V1Error::invalid(format!(
            "unknown field {unknown:?}: send key, duration, permanent, jail, reason"
        )));
    }
    let key = match object.get("key") {
        Some(Value::String(t)) => Key::parse(t).map_err(|e| V1Error::invalid(e.to_string()))?.key,
        Some(_) => return Err(V1Error::invalid("key must be a string: an address or a network")),
        None => return Err(V1Error::invalid("no key given: send {\"key\": \"192.0.2.7\"}")),
    };
    let duration_ms = match object.get("duration") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => {
            let d = parse_duration(t).map_err(|e| V1Error::invalid(format!("duration: {e}")))?;
            Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        }
        Some(_) => return Err(V1Error::invalid("duration must be a string like \"1h\" or \"7d\"")),
    };
    let permanent = match object.get("permanent") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(V1Error::invalid("permanent must be true or false")),
    };
    if permanent && duration_ms.is_some() {
        return Err(V1Error::invalid("give duration or permanent, not both"));
    }
    let jail = text(object, "jail", MAX_JAIL)?;
    if kind == Kind::Allow && !jail.is_empty() {
        return Err(V1Error::invalid("an allow has no jail"));
    }
    let reason = text(object, "reason", MAX_REASON)?;
    Ok(WriteBody { key, lifetime: Lifetime::of(duration_ms, permanent), jail, reason })
}

/// Only `admin` tokens write networks: a client token must not lock a
/// whole network (`0.0.0.0/0`) out of every node, as the old API ensures by
/// taking single addresses alone.
fn may_write_key(client: &Client, key: Key) -> Result<(), V1Error> {
    if key.is_address() || client.role == Role::Admin {
        return Ok(());
    }
    Err(V1Error::new(
        StatusCode::FORBIDDEN,
        "network_needs_admin",
        format!(
            "{key} is a network: the token of {} may write single addresses; networks need role \"admin\"",
            client.name
        ),
    ))
}

fn source(client: &Client) -> String {
    let mut source = client.reported_by();
    while source.len() > MAX_SOURCE {
        source.pop();
    }
    source
}

/// `POST /v1/bans` (`kind` Ban) and `POST /v1/allows` (`kind` Allow).
pub async fn create(
    shared: Arc<Shared>,
    client: Client,
    kind: Kind,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Value), V1Error> {
    client.may_write()?;
    let object = read_json(&shared, &headers, body).await?;
    let body = write_body(&object, kind)?;
    may_write_key(&client, body.key)?;
    if kind == Kind::Ban {
        let at = body.key.net().network();
        let verdict = shared.store.with_index(|index| index.decision(at, now_ms()));
        if let Verdict::Allowed { key, .. } = verdict
            && key.prefix_len() <= body.key.prefix_len()
        {
            return Err(V1Error::conflict(format!(
                "the allow on {key} covers {} and wins over a ban: lift it first (DELETE /v1/allows/{key})",
                body.key
            )));
        }
    }
    let order = Order {
        lifetime: body.lifetime,
        meta: Metadata { jail: body.jail, reason: body.reason, source: source(&client) },
        ..Order::new(kind, body.key)
    };
    let written = shared.node.write(order).await?;
    shared.view.flush().await;
    tracing::info!(target: "banmesh::events::gateway_v1_write", client = %client.reported_by(), %kind, key = %body.key, "v1 write");
    let decision = Decision::of(&written.record, "live");
    Ok((StatusCode::CREATED, json!({ "decision": decision, "notes": written.notes })))
}

/// `DELETE /v1/bans/{key}` (`kind` Ban: an Unban) and
/// `DELETE /v1/allows/{key}` (`kind` Allow: a Disallow); 404 when no live
/// record of `kind` is on exactly that key.
pub async fn lift(
    shared: Arc<Shared>,
    client: Client,
    kind: Kind,
    text: &str,
) -> Result<(StatusCode, Value), V1Error> {
    client.may_write()?;
    let key = Key::parse(text)
        .map_err(|e| V1Error::bad_request(format!("{text:?} in the path: {e}")))?
        .key;
    may_write_key(&client, key)?;
    let records = shared
        .store
        .read(move |c, p| query::counted_records_on_keys(c, p, &[key]))
        .await
        .map_err(crate::api::NodeError::from)?;
    let now = now_ms();
    if KeySlots::new(&records).live(kind, now).next().is_none() {
        return Err(V1Error::not_found(format!("no live {kind} on {key}")));
    }
    let lifting = if kind == Kind::Ban { Kind::Unban } else { Kind::Disallow };
    let order = Order {
        meta: Metadata { source: source(&client), ..Metadata::default() },
        ..Order::new(lifting, key)
    };
    let written = shared.node.write(order).await?;
    shared.view.flush().await;
    tracing::info!(target: "banmesh::events::gateway_v1_write", client = %client.reported_by(), kind = %lifting, %key, "v1 write");
    let record = Decision::of(&written.record, "live");
    Ok((
        StatusCode::OK,
        json!({ "lifted": key.to_string(), "record": record, "notes": written.notes }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Result<WriteBody, V1Error> {
        let Value::Object(map) = value else { panic!() };
        write_body(&map, Kind::Ban)
    }

    #[test]
    fn bodies_read_or_give_422() {
        let read = body(json!({"key": "2001:db8::/48", "duration": "2h", "jail": "sshd"})).unwrap();
        assert_eq!(read.key.to_string(), "2001:db8::/48");
        assert_eq!(read.lifetime, Lifetime::For(7_200_000));
        assert_eq!(
            body(json!({"key": "192.0.2.1", "permanent": true})).unwrap().lifetime,
            Lifetime::Permanent
        );
        for bad in [
            json!({}),
            json!({"key": 7}),
            json!({"key": "nope"}),
            json!({"key": "192.0.2.1", "duration": "soon"}),
            json!({"key": "192.0.2.1", "duration": "1h", "permanent": true}),
            json!({"key": "192.0.2.1", "extra": 1}),
            json!({"key": "192.0.2.1", "jail": "a\nb"}),
        ] {
            let error = body(bad.clone()).unwrap_err();
            assert_eq!(error.status.as_u16(), 422, "{bad}");
        }
    }
}
