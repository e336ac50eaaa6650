//! Shared generators for the crdt property tests and the simulation: records
//! over a small pool of keys, origins and instants, so that collisions,
//! covering networks and ties in the order happen often.
#![allow(dead_code)]

use std::net::IpAddr;

use banmesh_crdt::{Hlc, Kind, Metadata, Origin, Params, Record, State, Statement};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// Keys records are issued on: addresses and networks that nest.
pub const KEYS: [&str; 8] = [
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.0/31",
    "10.0.0.0/24",
    "10.0.0.0/16",
    "2001:db8::1",
    "2001:db8::/64",
    "2001:db8::/48",
];

/// Addresses decisions are checked for (inside and outside the keys).
pub const ADDRS: [&str; 7] =
    ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.9.9", "2001:db8::1", "2001:db8::2", "192.0.2.1"];

/// Small cluster parameters, so GC happens inside the tested time range.
pub const PARAMS: Params = Params { max_ttl_ms: 40, retention_ms: 5, skew_bound_ms: 3 };

/// The last instant decisions are checked at.
pub const HORIZON_MS: u64 = 140;

/// A record as an honest node signs it: the signature is a function of the
/// statement (ed25519 is deterministic), faked here since crdt checks none.
pub fn record(
    kind: Kind,
    key: usize,
    origin: u8,
    issued_at: Hlc,
    ttl_ms: u64,
    strikes: u32,
) -> Record {
    let statement = Statement {
        key: KEYS[key % KEYS.len()].parse().expect("pool key"),
        kind,
        issued_at,
        expires_at: kind.expires().then(|| issued_at.millis() + ttl_ms.clamp(1, PARAMS.max_ttl_ms)),
        strikes: if kind == Kind::Ban { strikes.max(1) } else { 0 },
        meta: Metadata { jail: "sshd".into(), reason: String::new(), source: "test".into() },
        origin: Origin([origin; 32]),
    };
    let h: [u8; 32] = Sha256::digest(statement.signed_bytes()).into();
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&h);
    signature[32..].copy_from_slice(&h);
    let record = Record::new(statement, signature);
    debug_assert!(record.statement().validate(&PARAMS).is_ok());
    record
}

/// Any record over the pools.
pub fn arb_record() -> impl Strategy<Value = Record> {
    (0..4usize, 0..KEYS.len(), 0..3u8, 0..100u64, 0..3u64, 1..=40u64, 1..4u32).prop_map(
        |(kind, key, origin, ms, counter, ttl, strikes)| {
            let at = Hlc(Hlc::from_millis(ms).0 + counter);
            record(Kind::ALL[kind], key, origin, at, ttl, strikes)
        },
    )
}

/// A state holding `records`, inserted in order.
pub fn state_of<'a>(records: impl IntoIterator<Item = &'a Record>) -> State {
    let mut s = State::new();
    for r in records {
        s.insert(r.clone());
    }
    s
}

/// Every address of [`ADDRS`].
pub fn addrs() -> Vec<IpAddr> {
    ADDRS.iter().map(|a| a.parse().expect("pool address")).collect()
}
