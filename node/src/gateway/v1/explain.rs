//! `GET /v1/explain/{ip}`, `GET /v1/status`, `GET /v1/peers`: what
//! `banmesh trace`, `status` and `peers` show, as JSON.

use std::collections::HashMap;
use std::net::IpAddr;

use banmesh_crdt::slots::KeySlots;
use banmesh_crdt::{Decision as Verdict, Key, Record};
use banmesh_keys::time::format_rfc3339;
use serde::Serialize;
use serde_json::{Value, json};

use super::decisions::Decision;
use super::error::V1Error;
use crate::api::NodeError;
use crate::clock::now_ms;
use crate::daemon::queries::Queries;
use crate::daemon::queries::native::Enforcement;
use crate::store::{Store, query};

/// One record in an explanation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Explained {
    /// The record.
    #[serde(flatten)]
    pub record: Decision,
    /// Whether this record decides the address now.
    pub decides: bool,
}

/// The whole explanation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    /// The address, canonical.
    pub address: String,
    /// `banned`, `allowed` or `free`.
    pub verdict: &'static str,
    /// The decision in words, as `banmesh trace` gives it.
    pub decision: String,
    /// Until when it holds, RFC 3339.
    pub until: Option<String>,
    /// The key whose record decides, when one does.
    pub decided_by: Option<String>,
    /// Every record on the address and the networks covering it, narrowest
    /// key first.
    pub records: Vec<Explained>,
    /// What this node's enforcement holds for the address.
    pub enforcement: Enforcement,
}

/// `GET /v1/explain/{ip}`.
pub async fn explain(queries: &Queries, store: &Store, text: &str) -> Result<Value, V1Error> {
    let addr: IpAddr = match Key::parse(text) {
        Ok(parsed) if parsed.key.is_address() => parsed.key.net().addr(),
        Ok(parsed) => {
            return Err(V1Error::bad_request(format!(
                "{} is a network: explain takes one address",
                parsed.key
            )));
        }
        Err(e) => return Err(V1Error::bad_request(format!("{text:?} in the path: {e}"))),
    };
    let trace = queries.trace(addr).await?;
    let key = Key::from_addr(addr);
    let records = store
        .read(move |c, p| query::records_on_keys(c, p, &query::covering_keys(key)))
        .await
        .map_err(NodeError::from)?;
    let now = now_ms();
    let states = record_states(&records, now);
    let explained = trace
        .records
        .iter()
        .map(|entry| {
            let state = match states.get(&entry.record.id).copied() {
                _ if !entry.record.valid => "invalid",
                Some(state) => state,
                None => "live",
            };
            Explained { record: Decision::of(&entry.record, state), decides: entry.decides }
        })
        .collect();
    let (verdict, decided_by) = match store.with_index(|i| i.decision(addr, now)) {
        Verdict::Allowed { key, .. } => ("allowed", Some(key.to_string())),
        Verdict::Banned { key, .. } => ("banned", Some(key.to_string())),
        Verdict::Free => ("free", None),
    };
    let explanation = Explanation {
        address: trace.address,
        verdict,
        decision: trace.decision,
        until: trace.until_ms.map(format_rfc3339),
        decided_by,
        records: explained,
        enforcement: queries.enforcement(addr),
    };
    Ok(serde_json::to_value(explanation).unwrap_or(Value::Null))
}

/// Where each record stands at `now` (`live`, `expired`, `lifted`), by id,
/// judged among the records on its key.
fn record_states(records: &[Record], now: u64) -> HashMap<String, &'static str> {
    let mut by_key: HashMap<Key, Vec<&Record>> = HashMap::new();
    for record in records {
        by_key.entry(record.key()).or_default().push(record);
    }
    let mut states = HashMap::new();
    for on_key in by_key.values() {
        let slots = KeySlots::new(on_key.iter().copied());
        for record in on_key {
            let state = if slots.is_lifted(record) {
                "lifted"
            } else if record.statement().expires_at.is_some_and(|end| end <= now) {
                "expired"
            } else {
                "live"
            };
            states.insert(record.id().to_string(), state);
        }
    }
    states
}

/// `GET /v1/status`.
pub async fn status(queries: &Queries) -> Result<Value, V1Error> {
    let status = queries.status().await?;
    Ok(serde_json::to_value(status).unwrap_or(Value::Null))
}

/// `GET /v1/peers`.
pub async fn peers(queries: &Queries) -> Value {
    let peers = queries.peers().await;
    let shown: Vec<Value> = peers
        .into_iter()
        .map(|p| {
            let last_sync = p.last_sync_ms.map(format_rfc3339);
            let mut value = serde_json::to_value(p).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut value {
                map.insert("last_sync".into(), json!(last_sync));
            }
            value
        })
        .collect();
    json!({ "peers": shown })
}
