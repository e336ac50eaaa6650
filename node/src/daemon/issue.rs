//! Turning an operator's order (ban, unban, allow, disallow) into a signed
//! record: `issued_at` by the clock rule, the expiry by
//! the configured policy, the cluster rules checked, then signed.

use banmesh_crdt::{BanPolicy, Decision, HlcClock, Key, KeySlots, Kind, Params, Record, Statement};
use banmesh_keys::{SecretKey, sign_record};

use crate::api::NodeError;
pub use crate::api::{Lifetime, Order};

/// The signed record for `order`. `greatest_on_key` is the greatest
/// `issued_at` stored on the key.
pub fn issue(
    order: &Order,
    secret: &SecretKey,
    clock: &mut HlcClock,
    now_ms: u64,
    greatest_on_key: impl FnOnce(Key) -> Option<banmesh_crdt::Hlc>,
    params: &Params,
    policy: &BanPolicy,
) -> Result<Record, NodeError> {
    let statement = statement(order, clock, now_ms, greatest_on_key, params, policy)?;
    Ok(sign_record(secret, statement))
}

/// The statement [`issue`] signs: `issued_at` by the clock rule, the
/// expiry by the policy, the cluster rules checked (its origin is set when
/// it is signed).
pub fn statement(
    order: &Order,
    clock: &mut HlcClock,
    now_ms: u64,
    greatest_on_key: impl FnOnce(Key) -> Option<banmesh_crdt::Hlc>,
    params: &Params,
    policy: &BanPolicy,
) -> Result<Statement, NodeError> {
    let key = order.key;
    let kind = order.kind;
    let issued_at = clock
        .issue(now_ms, greatest_on_key(key), params.skew_bound_ms)
        .map_err(|ahead| NodeError::ClockAhead { key, ahead })?;
    let ttl_ms = match (kind.expires(), order.lifetime) {
        (false, Lifetime::Default) => None,
        (false, _) => return Err(NodeError::NoExpiry(kind)),
        (true, Lifetime::For(ms)) => Some(ms),
        (true, Lifetime::Permanent) => Some(params.max_ttl_ms),
        (true, Lifetime::Default) if kind == Kind::Ban => {
            Some(u64::try_from(policy.bantime_for(order.strikes).as_millis()).unwrap_or(u64::MAX))
        }
        (true, Lifetime::Default) => Some(params.max_ttl_ms),
    };
    let statement = Statement {
        key,
        kind,
        issued_at,
        expires_at: ttl_ms.map(|ttl| issued_at.millis().saturating_add(ttl)),
        strikes: if kind == Kind::Ban { order.strikes.max(1) } else { 0 },
        meta: order.meta.clone(),
        origin: banmesh_crdt::Origin::default(),
    };
    statement.validate(params)?;
    Ok(statement)
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
