//! `GET /v1/decisions`: bans and allows with their networks, expiry in RFC
//! 3339, origin (certificate name and key), jail and reason, filtered and
//! paged by cursor: the query ([`Filter`]) and the answer's shape. The
//! gateway's view reads a page from the records it holds in memory
//! (`view::native`) in key order (IPv4 before IPv6, then address, then
//! prefix length); the cursor is the last key a page covered, so records
//! added or removed between pages never shift the next one: a key present
//! throughout is listed exactly once. `order=newest` lists by issue time,
//! latest first, the cursor then the last (issue time, key) covered.

use std::collections::HashMap;

use banmesh_crdt::{Key, Kind};
use banmesh_keys::time::format_rfc3339;
use serde::Serialize;

use super::error::V1Error;
use crate::control::views::RecordView;

/// Decisions per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// Most decisions per page.
pub const MAX_LIMIT: usize = 1_000;
/// Most keys one request reads; a page that filters out more ends short
/// with a cursor to go on from.
pub const SCAN_BUDGET: usize = 50_000;

/// Which decisions by where they stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// In force now: not expired, not lifted, from a valid certificate.
    Live,
    /// Expired, lifted by an unban (disallow), or from an origin whose
    /// certificate does not allow it; kept until the store collects them.
    Ended,
    /// Both.
    All,
}

/// The query, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Only this jail.
    pub jail: Option<String>,
    /// Only this origin: certificate name or public key (hex).
    pub origin: Option<String>,
    /// Only decisions issued at or after this time (Unix ms).
    pub since_ms: Option<u64>,
    /// Only bans or only allows.
    pub kind: Option<Kind>,
    /// Which states.
    pub state: StateFilter,
    /// Most decisions on the page.
    pub limit: usize,
    /// Start after this key (key order).
    pub after: Option<Key>,
    /// Newest first (`order=newest`): by issue time, latest first.
    pub newest: bool,
    /// Newest first, start after this index entry (issued ms, key).
    pub before: Option<(u64, Key)>,
}

impl Filter {
    /// Reads `?jail=&origin=&since=&kind=&state=&order=&limit=&cursor=`; any other
    /// parameter, or a value that does not read, is a 400.
    pub fn parse(params: &[(String, String)]) -> Result<Filter, V1Error> {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (name, value) in params {
            if seen.insert(name.as_str(), value.as_str()).is_some() {
                return Err(V1Error::bad_request(format!("{name} is given twice")));
            }
        }
        let mut filter = Filter {
            jail: None,
            origin: None,
            since_ms: None,
            kind: None,
            state: StateFilter::Live,
            limit: DEFAULT_LIMIT,
            after: None,
            newest: false,
            before: None,
        };
        let cursor = seen.remove("cursor").filter(|c| !c.is_empty());
        for (name, value) in seen {
            filter.set(name, value)?;
        }
        match cursor {
            Some(text) if filter.newest => filter.before = Some(decode_newest_cursor(text)?),
            Some(text) => filter.after = Some(decode_cursor(text)?),
            None => {}
        }
        Ok(filter)
    }
}

impl Filter {
    /// Sets one parameter.
    fn set(&mut self, name: &str, value: &str) -> Result<(), V1Error> {
        match name {
            "jail" => self.jail = Some(value.to_owned()),
            "origin" => self.origin = Some(value.to_owned()),
            "since" => self.since_ms = Some(parse_time(value)?),
            "kind" => {
                self.kind = Some(match value {
                    "ban" => Kind::Ban,
                    "allow" => Kind::Allow,
                    _ => {
                        return Err(V1Error::bad_request(format!(
                            "kind {value:?} is not ban or allow"
                        )));
                    }
                });
            }
            "state" => {
                self.state = match value {
                    "live" => StateFilter::Live,
                    "ended" => StateFilter::Ended,
                    "all" => StateFilter::All,
                    _ => {
                        return Err(V1Error::bad_request(format!(
                            "state {value:?} is not live, ended or all"
                        )));
                    }
                };
            }
            "limit" => self.limit = parse_limit(value)?,
            "order" => {
                self.newest = match value {
                    "key" => false,
                    "newest" => true,
                    _ => {
                        return Err(V1Error::bad_request(format!(
                            "order {value:?} is not key or newest"
                        )));
                    }
                };
            }
            other => {
                return Err(V1Error::bad_request(format!(
                    "unknown parameter {other:?}: use jail, origin, since, kind, state, order, limit, cursor"
                )));
            }
        }
        Ok(())
    }
}

fn parse_limit(value: &str) -> Result<usize, V1Error> {
    value.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
        V1Error::bad_request(format!("limit {value:?} is not a whole number from 1 to {MAX_LIMIT}"))
    })
}

/// An RFC 3339 time as Unix ms; a time before 1970 is 1970 (no record is
/// older), not a 400.
fn parse_time(text: &str) -> Result<u64, V1Error> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis().max(0)).ok())
        .ok_or_else(|| {
            V1Error::bad_request(format!(
                "since {text:?} is not an RFC 3339 time like 2026-12-01T10:00:00Z"
            ))
        })
}

/// The cursor for a page that ended on `key`: its canonical bytes, hex.
pub fn encode_cursor(key: Key) -> String {
    hex::encode(key.to_bytes())
}

/// The cursor for a newest-first page that ended on the index entry
/// (`issued_ms`, `key`): `n`, then the time's 8 bytes and the key's, hex.
pub fn encode_newest_cursor(issued_ms: u64, key: Key) -> String {
    format!("n{}{}", hex::encode(issued_ms.to_be_bytes()), hex::encode(key.to_bytes()))
}

fn decode_newest_cursor(text: &str) -> Result<(u64, Key), V1Error> {
    let bytes = text.strip_prefix('n').and_then(|hex_text| hex::decode(hex_text).ok());
    let read = bytes.as_deref().and_then(|b| {
        let (time, key) = b.split_first_chunk::<8>()?;
        Some((u64::from_be_bytes(*time), Key::from_bytes(key).ok()?))
    });
    read.ok_or_else(|| {
        V1Error::bad_request(
            "cursor is not one this API gave for order=newest: pass next_cursor as it came",
        )
    })
}

fn decode_cursor(text: &str) -> Result<Key, V1Error> {
    hex::decode(text).ok().and_then(|bytes| Key::from_bytes(&bytes).ok()).ok_or_else(|| {
        V1Error::bad_request("cursor is not one this API gave: pass next_cursor as it came")
    })
}

/// One decision as the native API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    /// The address or network (`192.0.2.7`, `2001:db8::/48`).
    pub key: String,
    /// Whether `key` is a network rather than one address.
    pub network: bool,
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
    /// `ban` or `allow`.
    pub kind: String,
    /// `live`, `expired`, `lifted` or `invalid`.
    pub state: &'static str,
    /// Who signed it.
    pub origin: OriginView,
    /// When it was issued, RFC 3339.
    pub issued_at: String,
    /// When it ends, RFC 3339 (`null` only for records without an end).
    pub expires_at: Option<String>,
    /// For a ban, which repeat it is.
    pub strikes: u32,
    /// The Fail2Ban jail, or empty.
    pub jail: String,
    /// Why, or empty.
    pub reason: String,
    /// Who asked (`fail2ban`, `cli`, `NAME@ADDRESS` for a gateway client).
    pub source: String,
    /// The record's id (SHA-256 of its signed bytes), hex.
    pub id: String,
}

/// A record's signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OriginView {
    /// The name in its certificate, when this node holds it.
    pub name: Option<String>,
    /// Its public key, hex.
    pub key: String,
}

impl Decision {
    /// The decision `view` shows, in `state`.
    pub fn of(view: &RecordView, state: &'static str) -> Decision {
        Decision {
            network: view.key.contains('/'),
            family: if view.key.contains(':') { "ipv6" } else { "ipv4" },
            key: view.key.clone(),
            kind: view.kind.clone(),
            state,
            origin: OriginView { name: view.origin_name.clone(), key: view.origin_key.clone() },
            issued_at: format_rfc3339(view.issued_at_ms),
            expires_at: view.expires_at_ms.map(format_rfc3339),
            strikes: view.strikes,
            jail: view.jail.clone(),
            reason: view.reason.clone(),
            source: view.source.clone(),
            id: view.id.clone(),
        }
    }
}

/// One page of decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DecisionPage {
    /// The decisions, by key (the store's order) or, with `order=newest`,
    /// by issue time, latest first; at most `limit` unless one key holds
    /// more (a key's decisions issued at one time are never split).
    pub decisions: Vec<Decision>,
    /// Pass as `cursor` for the next page; `null` after the last.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn filters_read_or_refuse() {
        let f =
            Filter::parse(&params(&[("kind", "ban"), ("since", "2026-01-01T00:00:00Z")])).unwrap();
        assert_eq!(f.kind, Some(Kind::Ban));
        assert_eq!(f.since_ms, Some(1_767_225_600_000));
        assert_eq!(f.state, StateFilter::Live);
        let key: Key = "2001:db8::/48".parse().unwrap();
        let f = Filter::parse(&params(&[("cursor", &encode_cursor(key))])).unwrap();
        assert_eq!(f.after, Some(key));
        let newest = encode_newest_cursor(7, key);
        let f = Filter::parse(&params(&[("cursor", &newest), ("order", "newest")])).unwrap();
        assert_eq!((f.newest, f.before, f.after), (true, Some((7, key)), None));
        let wrong = [("cursor", &*newest), ("order", "key")];
        assert_eq!(Filter::parse(&params(&wrong)).unwrap_err().status.as_u16(), 400);
        for bad in [
            &[("kind", "unban")][..],
            &[("state", "dead")],
            &[("limit", "0")],
            &[("limit", "1001")],
            &[("since", "yesterday")],
            &[("cursor", "zz")],
            &[("cursor", "00"), ("order", "newest")],
            &[("order", "oldest")],
            &[("nope", "1")],
            &[("jail", "a"), ("jail", "b")],
        ] {
            let error = Filter::parse(&params(bad)).unwrap_err();
            assert_eq!(error.status.as_u16(), 400, "{bad:?}");
        }
    }
}
