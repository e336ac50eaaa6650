//! What `/v1` reads from the view's records in memory rather than from the
//! store: the live decisions counted ([`counts`], `/v1/counts`) and a page
//! of decisions ([`page`], `/v1/decisions`). Both judge each record as
//! `banmesh records` does (`Trust::check_record`: the cluster rules, kept
//! in the fact, and some certificate of its origin valid at its
//! `issued_at` with the role and prefix it needs, judged here against the
//! trust now, so a certificate learnt later makes its records valid), and
//! call a Ban (Allow) lifted when an Unban (Disallow) on its key is
//! greater, as `KeySlots` does over records.
//!
//! A page walks the keys in order after the cursor. With `since`, when few
//! keys hold a record issued since then, it walks only those, found in the
//! view's index by issue time (`Keys::issued_since`), so the dashboard's
//! recent activity costs what it lists, not the whole map. Newest first
//! (`order=newest`), a page walks that index from the latest entry down.

use std::collections::HashMap;
use std::sync::Arc;

use banmesh_crdt::{Key, Kind, Origin};
use banmesh_keys::time::format_rfc3339;
use banmesh_keys::{Certificate, PublicKey, record::role_for};

use super::fact::Fact;
use super::keys::Keys;
use crate::gateway::lifecycle::Said as _;
use crate::gateway::v1::counts::{Counter, Counts, Tally};
use crate::gateway::v1::decisions::{
    Decision, DecisionPage, Filter, OriginView, SCAN_BUDGET, StateFilter, encode_cursor,
    encode_newest_cursor,
};
use crate::mesh::Trust;

/// With `since`, the index is walked when at most this many of its entries
/// are that recent; past it, the keys are walked in order (the records
/// asked for are then dense enough to find a page quickly).
const INDEX_MAX: usize = 65_536;

/// What the trust says of one origin.
struct OriginInfo {
    /// Its key, hex.
    key: String,
    /// The name in its latest-ending certificate.
    name: Option<String>,
    /// Its certificates (none when revoked or not a valid key).
    certs: Vec<Certificate>,
}

/// Each origin seen, judged once per request.
struct Origins<'a> {
    trust: &'a Trust,
    seen: HashMap<Origin, OriginInfo>,
}

impl<'a> Origins<'a> {
    fn new(trust: &'a Trust) -> Origins<'a> {
        Origins { trust, seen: HashMap::new() }
    }

    fn get(&mut self, origin: &Origin) -> &OriginInfo {
        let trust = self.trust;
        self.seen.entry(*origin).or_insert_with(|| {
            let node = PublicKey::from_bytes(&origin.0).ok();
            let name = trust.cert_of_origin(origin).map(|c| c.name().to_owned());
            let certs = match &node {
                Some(n) if !trust.is_revoked(n) => trust.certs_of(n).to_vec(),
                _ => Vec::new(),
            };
            OriginInfo { key: origin.to_string(), name, certs }
        })
    }
}

/// Whether `fact` on `key` counts (`Trust::check_record`).
fn valid(key: Key, fact: &Fact, origin: &OriginInfo) -> bool {
    let issued = fact.issued_ms();
    fact.rule_ok
        && origin.certs.iter().any(|c| {
            c.check_time(issued).is_ok()
                && c.require_role(role_for(fact.kind)).is_ok()
                && c.allows_prefix(key.is_v4(), key.prefix_len())
        })
}

/// The greatest fact of `kind` among `facts`.
fn greatest(facts: &[Fact], kind: Kind) -> Option<&Fact> {
    facts.iter().filter(|f| f.kind == kind).max_by(|a, b| a.order_cmp(b))
}

/// Whether a greater Unban (Disallow) lifts `fact`, a Ban (Allow).
fn lifted(facts: &[Fact], fact: &Fact) -> bool {
    let off = if fact.kind == Kind::Ban { Kind::Unban } else { Kind::Disallow };
    greatest(facts, off).is_some_and(|floor| floor.order_cmp(fact).is_ge())
}

/// Where a Ban or Allow stands at `now`: `live`, `expired`, `lifted` or
/// `invalid`.
fn state(key: Key, facts: &[Fact], fact: &Fact, origin: &OriginInfo, now: u64) -> &'static str {
    if !valid(key, fact, origin) {
        "invalid"
    } else if lifted(facts, fact) {
        "lifted"
    } else if fact.expires_at.is_some_and(|end| end <= now) {
        "expired"
    } else {
        "live"
    }
}

/// The live Bans and Allows counted per jail and per origin, at `now`:
/// tallied by the shared text and origin each fact points to (one per
/// distinct value in the view), then added up by name once per pair, in
/// the order the walk first met each, so the cost per record is a pointer
/// lookup, not string compares.
pub fn counts(keys: &Keys, trust: &Trust, now: u64) -> Counts {
    let mut origins = Origins::new(trust);
    let mut pairs: HashMap<(usize, usize), usize> = HashMap::new();
    let mut tallies: Vec<(&Fact, Tally)> = Vec::new();
    for (key, facts) in keys.after(None) {
        let facts = facts.as_slice();
        for fact in facts.iter().filter(|f| matches!(f.kind, Kind::Ban | Kind::Allow)) {
            let origin = origins.get(&fact.origin);
            if state(key, facts, fact, origin, now) == "live" {
                let pair = (Arc::as_ptr(&fact.meta) as usize, Arc::as_ptr(&fact.origin) as usize);
                let at = *pairs.entry(pair).or_insert_with(|| {
                    tallies.push((fact, Tally::default()));
                    tallies.len() - 1
                });
                if let Some((_, tally)) = tallies.get_mut(at) {
                    tally.add(fact.kind);
                }
            }
        }
    }
    let mut counter = Counter::default();
    for (fact, tally) in &tallies {
        let origin = origins.get(&fact.origin);
        counter.add_tally(tally, &fact.meta.jail, &origin.key, origin.name.as_deref());
    }
    counter.finish(now)
}

/// Whether `filter` wants `fact`, in `state`.
fn wanted(filter: &Filter, fact: &Fact, origin: &OriginInfo, state: &str) -> bool {
    let state_ok = match filter.state {
        StateFilter::Live => state == "live",
        StateFilter::Ended => state != "live",
        StateFilter::All => true,
    };
    state_ok
        && filter.kind.is_none_or(|k| fact.kind == k)
        && filter.jail.as_deref().is_none_or(|j| *fact.meta.jail == *j)
        && filter
            .origin
            .as_deref()
            .is_none_or(|o| origin.key.eq_ignore_ascii_case(o) || origin.name.as_deref() == Some(o))
        && filter.since_ms.is_none_or(|s| fact.issued_ms() >= s)
}

/// One decision as `/v1` shows it.
fn decision(key: Key, fact: &Fact, origin: &OriginInfo, state: &'static str) -> Decision {
    let key_text = key.to_string();
    Decision {
        network: !key.is_address(),
        family: if key.is_v4() { "ipv4" } else { "ipv6" },
        key: key_text,
        kind: fact.kind.to_string(),
        state,
        origin: OriginView { name: origin.name.clone(), key: origin.key.clone() },
        issued_at: format_rfc3339(fact.issued_ms()),
        expires_at: fact.expires_at.map(format_rfc3339),
        strikes: fact.strikes,
        jail: fact.meta.jail.to_string(),
        reason: fact.meta.reason.to_string(),
        source: fact.meta.source.to_string(),
        id: fact.id.to_string(),
    }
}

/// Appends the decisions on `key` that `filter` wants (only those issued
/// at `at_ms` when given), by origin and kind.
fn add_key(
    key: Key,
    facts: &[Fact],
    at_ms: Option<u64>,
    filter: &Filter,
    origins: &mut Origins<'_>,
    now: u64,
    out: &mut Vec<Decision>,
) {
    let mut listed: Vec<&Fact> = facts
        .iter()
        .filter(|f| matches!(f.kind, Kind::Ban | Kind::Allow))
        .filter(|f| at_ms.is_none_or(|at| f.issued_ms() == at))
        .collect();
    listed.sort_by(|a, b| (&*a.origin, a.kind).cmp(&(&*b.origin, b.kind)));
    for fact in listed {
        let origin = origins.get(&fact.origin);
        let state = state(key, facts, fact, origin, now);
        if wanted(filter, fact, origin, state) {
            out.push(decision(key, fact, origin, state));
        }
    }
}

/// The keys after the cursor holding a record issued at or after
/// `since_ms`, in order, when there are at most [`INDEX_MAX`] of them.
fn recent_keys(keys: &Keys, since_ms: u64, after: Option<Key>) -> Option<Vec<Key>> {
    let mut found = Vec::new();
    for key in keys.issued_since(since_ms) {
        if after.is_none_or(|a| key > a) {
            if found.len() == INDEX_MAX {
                return None;
            }
            found.push(key);
        }
    }
    found.sort_unstable();
    found.dedup();
    Some(found)
}

/// The page `filter` asks for, at `now`: a key's decisions are never split,
/// and at most [`SCAN_BUDGET`] keys are read (a page that filters out more
/// ends short, with a cursor to go on from).
pub fn page(keys: &Keys, trust: &Trust, filter: &Filter, now: u64) -> DecisionPage {
    if filter.newest {
        return newest_page(keys, trust, filter, now);
    }
    let mut origins = Origins::new(trust);
    let mut decisions = Vec::new();
    let recent = filter.since_ms.and_then(|since| recent_keys(keys, since, filter.after));
    let walk: Box<dyn Iterator<Item = (Key, &[Fact])>> = match &recent {
        Some(found) => {
            Box::new(found.iter().filter_map(|key| Some((*key, keys.facts(*key)?.as_slice()))))
        }
        None => Box::new(keys.after(filter.after).map(|(key, facts)| (key, facts.as_slice()))),
    };
    for (read, (key, facts)) in walk.enumerate() {
        add_key(key, facts, None, filter, &mut origins, now, &mut decisions);
        if decisions.len() >= filter.limit || read + 1 >= SCAN_BUDGET {
            return DecisionPage { decisions, next_cursor: Some(encode_cursor(key)) };
        }
    }
    DecisionPage { decisions, next_cursor: None }
}

/// [`page`] newest first: the issue-time index walked from the latest
/// entry (or the cursor's) down to `since`, each entry giving its key's
/// decisions issued then; the same budget of entries read.
fn newest_page(keys: &Keys, trust: &Trust, filter: &Filter, now: u64) -> DecisionPage {
    let mut origins = Origins::new(trust);
    let mut decisions = Vec::new();
    for (read, (issued_ms, key)) in keys.issued_before(filter.before).enumerate() {
        if filter.since_ms.is_some_and(|since| issued_ms < since) {
            break;
        }
        if let Some(facts) = keys.facts(key) {
            add_key(
                key,
                facts.as_slice(),
                Some(issued_ms),
                filter,
                &mut origins,
                now,
                &mut decisions,
            );
        }
        if decisions.len() >= filter.limit || read + 1 >= SCAN_BUDGET {
            let next_cursor = Some(encode_newest_cursor(issued_ms, key));
            return DecisionPage { decisions, next_cursor };
        }
    }
    DecisionPage { decisions, next_cursor: None }
}

#[cfg(test)]
mod tests;
