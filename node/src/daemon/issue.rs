//! Turning an operator's order (ban, unban, allow, disallow) into a signed
//! record: the key normalised, `issued_at` by the clock rule, the expiry by
//! the configured policy, the cluster rules checked, then signed.

use std::time::Duration;

use banmesh_crdt::duration::format_duration;
use banmesh_crdt::{
    BanPolicy, Decision, HlcClock, Key, KeyAhead, KeySlots, Kind, Metadata, Params, Record,
    Statement,
};
use banmesh_keys::time::format_rfc3339;
use banmesh_keys::{SecretKey, sign_record};

/// How long an order lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// The default: the configured bantime for a ban, `max_ttl` for an allow.
    Default,
    /// This many milliseconds.
    For(u64),
    /// Until lifted: the record lasts `max_ttl` and the node renews it.
    Permanent,
}

/// One order from an operator, the gateway or Fail2Ban.
#[derive(Debug, Clone)]
pub struct Order {
    /// What to say.
    pub kind: Kind,
    /// The address or network as given.
    pub key: String,
    /// How long (Ban and Allow only).
    pub lifetime: Lifetime,
    /// Which repeat a ban is.
    pub strikes: u32,
    /// Context.
    pub meta: Metadata,
}

/// Why an order was refused.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The key is not an address or network.
    #[error(transparent)]
    Key(#[from] banmesh_crdt::KeyError),
    /// The record would break a cluster rule.
    #[error(transparent)]
    Record(#[from] banmesh_crdt::RecordError),
    /// A duration was given for an order that does not expire.
    #[error("a {0} acts at once and does not expire: leave out --for")]
    NoExpiry(Kind),
    /// The key's greatest record is future-dated beyond the skew bound.
    #[error(
        "{key} holds a record issued {} ahead of the wall clock (this node's clock was ahead when \
         it issued it): a new record on {key} would come after it, future-dated, and every peer \
         would ignore it; refused until {}",
        format_duration(Duration::from_millis(.ahead.ahead_ms())),
        format_rfc3339(.ahead.until_ms())
    )]
    KeyAhead {
        /// The key.
        key: Key,
        /// How far ahead.
        ahead: KeyAhead,
    },
}

/// The signed record for `order`, and notes for the operator (normalised
/// key). `greatest_on_key` is the greatest `issued_at` stored on the key.
pub fn issue(
    order: &Order,
    secret: &SecretKey,
    clock: &mut HlcClock,
    now_ms: u64,
    greatest_on_key: impl FnOnce(Key) -> Option<banmesh_crdt::Hlc>,
    params: &Params,
    policy: &BanPolicy,
) -> Result<(Record, Vec<String>), IssueError> {
    let parsed = Key::parse(&order.key)?;
    let notes: Vec<String> = parsed.note(&order.key).into_iter().collect();
    let kind = order.kind;
    let issued_at = clock
        .issue(now_ms, greatest_on_key(parsed.key), params.skew_bound_ms)
        .map_err(|ahead| IssueError::KeyAhead { key: parsed.key, ahead })?;
    let ttl_ms = match (kind.expires(), order.lifetime) {
        (false, Lifetime::Default) => None,
        (false, _) => return Err(IssueError::NoExpiry(kind)),
        (true, Lifetime::For(ms)) => Some(ms),
        (true, Lifetime::Permanent) => Some(params.max_ttl_ms),
        (true, Lifetime::Default) if kind == Kind::Ban => {
            Some(u64::try_from(policy.bantime_for(order.strikes).as_millis()).unwrap_or(u64::MAX))
        }
        (true, Lifetime::Default) => Some(params.max_ttl_ms),
    };
    let statement = Statement {
        key: parsed.key,
        kind,
        issued_at,
        expires_at: ttl_ms.map(|ttl| issued_at.millis().saturating_add(ttl)),
        strikes: if kind == Kind::Ban { order.strikes.max(1) } else { 0 },
        meta: order.meta.clone(),
        origin: banmesh_crdt::Origin::default(),
    };
    statement.validate(params)?;
    Ok((sign_record(secret, statement), notes))
}

/// `origin`'s Ban among `records` (those on one key), unless an Unban
/// from any node lifted it: the ban of this node's that a new Ban on the
/// key would replace.
pub fn standing_ban(records: &[Record], origin: banmesh_crdt::Origin) -> Option<&Record> {
    let slots = KeySlots::new(records);
    slots.greatest_of(origin, Kind::Ban).filter(|b| !slots.is_lifted(b))
}

/// A note when an Unban or Disallow leaves the address decided by a wider
/// key, which it cannot touch (it acts on its exact key only).
pub fn covering_note(kind: Kind, key: Key, after: Decision) -> Option<String> {
    match (kind, after) {
        (Kind::Unban, Decision::Banned { key: by, .. }) if by != key => Some(format!(
            "{key} is still banned by a ban on {by}: an unban acts on its exact key; run `banmesh allow {key}` to free it"
        )),
        (Kind::Disallow, Decision::Allowed { key: by, .. }) if by != key => Some(format!(
            "{key} is still allowed by an allow on {by}: a disallow acts on its exact key"
        )),
        _ => None,
    }
}
