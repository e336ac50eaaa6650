//! The text handed to `nft -f -`: the table's structure (table, sets,
//! counters, chains and their rules), laid again on every reconcile without
//! touching the sets' elements, and the element changes in batches, each
//! one transaction. Pure.

use std::fmt::Write as _;

use banmesh_crdt::Key;

use super::elements::{Change, MAX_TIMEOUT_MS, Set};
use super::kernel::{Kernel, MARK};
use crate::config::NftablesConfig;

/// The base chains banmesh may own, with their hooks.
pub const CHAINS: [&str; 2] = ["input", "forward"];

/// The structure: table, counters and sets created if missing (a set whose
/// type or flags are not banmesh's is deleted and made again, empty), the
/// chains made again if their hook or priority changed (the forward chain
/// deleted when not configured), and every chain's rules laid again, all
/// in one transaction. Allows are accepted before any drop.
pub fn structure(config: &NftablesConfig, kernel: &Kernel) -> String {
    let table = format!("inet {}", config.table);
    // A comment is set only when the table is made: never on one found.
    let mut out = format!("add table {table} {{ comment \"{MARK}\"; }}\n");
    let wanted: Vec<&str> =
        CHAINS.into_iter().filter(|c| *c == "input" || config.forward).collect();
    let mut kept = Vec::new();
    for chain in &kernel.chains {
        let keep = wanted.contains(&chain.name.as_str())
            && chain.hook.as_deref() == Some(chain.name.as_str())
            && chain.prio == Some(config.priority);
        if keep {
            kept.push(chain.name.as_str());
        } else {
            let name = &chain.name;
            let _ = writeln!(out, "flush chain {table} {name}\ndelete chain {table} {name}");
        }
    }
    for set in Set::ALL {
        if kernel.sets.get(&set).is_some_and(|s| !s.ours) {
            // No rule refers to it once the chains are flushed.
            for chain in &kept {
                let _ = writeln!(out, "flush chain {table} {chain}");
            }
            let _ = writeln!(out, "delete set {table} {}", set.name());
        }
        let flags = if set.timed() { "timeout" } else { "interval" };
        let _ = writeln!(
            out,
            "add set {table} {} {{ type {}; flags {flags}; }}",
            set.name(),
            set.addr_type()
        );
        if set.drops() {
            let _ = writeln!(out, "add counter {table} {}", set.name());
        }
    }
    for chain in wanted {
        let _ = writeln!(
            out,
            "add chain {table} {chain} {{ type filter hook {chain} priority {}; policy accept; }}",
            config.priority
        );
        let _ = writeln!(out, "flush chain {table} {chain}");
        for set in Set::ALL {
            let (family, name) = (set.family(), set.name());
            let verdict = if set.drops() {
                format!("counter name \"{name}\" drop")
            } else {
                "accept".to_owned()
            };
            let _ = writeln!(out, "add rule {table} {chain} {family} saddr @{name} {verdict}");
        }
    }
    out
}

/// The element changes as transactions of at most `batch` elements each:
/// every removal first, in transactions of their own (nft checks a new
/// interval against the set as the kernel holds it before the transaction,
/// so a network cannot replace one it overlaps in the same transaction),
/// then additions and renewals. A removal is an add then a delete (a
/// delete of an element the kernel already expired would fail the
/// transaction); a renewal is an add, a delete and an add with the new
/// timeout (older kernels keep the old timeout on a plain re-add).
pub fn batches(table: &str, changes: &[Change], batch: usize, now_ms: u64) -> Vec<String> {
    let table = format!("inet {table}");
    let (removals, rest): (Vec<Change>, Vec<Change>) =
        changes.iter().partition(|c| matches!(c, Change::Remove(..)));
    [removals, rest]
        .iter()
        .flat_map(|list| list.chunks(batch.max(1)))
        .map(|chunk| transaction(&table, chunk, now_ms))
        .collect()
}

fn transaction(table: &str, changes: &[Change], now_ms: u64) -> String {
    let mut out = String::new();
    for set in Set::ALL {
        let mut touched = Vec::new();
        let mut added = Vec::new();
        for change in changes {
            match *change {
                Change::Remove(s, key) if s == set => touched.push(key),
                Change::Renew(s, key, until) if s == set => {
                    touched.push(key);
                    added.push(element(key, Some(until), now_ms));
                }
                Change::Add(s, key, until) if s == set => added.push(element(key, until, now_ms)),
                _ => {}
            }
        }
        if !touched.is_empty() {
            let list = join(touched.iter().map(ToString::to_string));
            let _ = writeln!(out, "add element {table} {} {{ {list} }}", set.name());
            let _ = writeln!(out, "delete element {table} {} {{ {list} }}", set.name());
        }
        if !added.is_empty() {
            let _ = writeln!(
                out,
                "add element {table} {} {{ {} }}",
                set.name(),
                join(added.into_iter())
            );
        }
    }
    out
}

/// `KEY` or `KEY timeout NNNs` (the time left, rounded up, at least 1 s).
fn element(key: Key, until: Option<u64>, now_ms: u64) -> String {
    match until {
        None => key.to_string(),
        Some(until) => {
            let left = until.saturating_sub(now_ms).clamp(1_000, MAX_TIMEOUT_MS);
            format!("{key} timeout {}s", left.div_ceil(1000))
        }
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}
