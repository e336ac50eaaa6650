//! Which elements an operator deleted by hand: those banmesh put in a drop
//! set (the shadow copy) that the kernel no longer holds although nothing
//! else can explain it. The table and the set are still there and banmesh's
//! own (a missing or remade table or set is a flush: made again, nothing
//! pardoned), and a timed element's time had not run out (the kernel
//! expires elements itself; a ban longer than [`MAX_TIMEOUT_MS`] had its
//! timeout capped, so only while the last reconcile, which re-asserts it,
//! is recent enough). Each becomes a local pardon
//! ([`crate::enforce::pardon`]) for the rest of its ban. Pure.

use std::collections::BTreeMap;

use banmesh_crdt::Key;

use super::elements::{Elements, MAX_TIMEOUT_MS, SLACK_MS, Set};
use super::kernel::Kernel;

/// The elements of `shadow` deleted by hand from `kernel` at `now_ms`,
/// with their ban's end (`ends`); `reconciled_ms` is when the kernel was
/// last brought in line (timeouts capped since then have not run out).
pub fn removed_by_hand(
    shadow: &Elements,
    kernel: &Kernel,
    ends: &BTreeMap<Key, u64>,
    now_ms: u64,
    reconciled_ms: u64,
) -> Vec<((Set, Key), u64)> {
    if !kernel.exists || !kernel.owned {
        return Vec::new();
    }
    let held = kernel.elements(now_ms);
    let capped_alive = reconciled_ms.saturating_add(MAX_TIMEOUT_MS) > now_ms + SLACK_MS;
    shadow
        .0
        .iter()
        .filter(|((set, _), _)| set.drops() && kernel.sets.get(set).is_some_and(|s| s.ours))
        .filter(|(element, _)| !held.0.contains_key(element))
        .filter_map(|(&(set, key), &until)| {
            let end = *ends.get(&key)?;
            let running = match until {
                Some(until) => until > now_ms + SLACK_MS && capped_alive,
                None => end > now_ms + SLACK_MS,
            };
            running.then_some(((set, key), end))
        })
        .collect()
}

/// Counts the held timed elements of long bans as right while more than
/// half of [`MAX_TIMEOUT_MS`] is left: a ban longer than the cap is not
/// re-added on every reconcile, only once it is half through its timeout.
pub fn settle_long(held: &mut Elements, want: &Elements, now_ms: u64) {
    let far = now_ms.saturating_add(MAX_TIMEOUT_MS);
    let half = now_ms.saturating_add(MAX_TIMEOUT_MS / 2);
    for (element, until) in &mut held.0 {
        if let (Some(have), Some(Some(wanted))) = (until.as_mut(), want.0.get(element))
            && *wanted > far
            && *have >= half
        {
            *have = *wanted;
        }
    }
}
