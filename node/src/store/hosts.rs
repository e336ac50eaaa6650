//! The index's table for single IPv4 addresses, the bulk of a large set (a
//! blocklist is mostly /32s): each address as a `u32` with its summary
//! packed in a `u64`, 12 bytes an entry where a hash map of `Key` to
//! `KeySummary` takes about 100 (48-byte entries at half load).
//!
//! Layout: a sorted main table (`addrs` and `packed`, side by side) searched
//! by bisection, and a small hash map of addresses not in it (`fresh`) that
//! is merged into it when it grows past an eighth of the table, so an
//! insert costs a hash insert plus, amortised, a few copied entries. A
//! removed address in the main table is left as a tombstone (packed 0)
//! until the next merge. A lookup is one hash probe and one bisection.

use std::collections::HashMap;

use banmesh_crdt::KeySummary;

/// Bits of a packed summary holding the Ban's expiry (Unix ms, up to the
/// year 2527); the rest hold its strikes.
const UNTIL_BITS: u32 = 44;
const UNTIL_MASK: u64 = (1 << UNTIL_BITS) - 1;

/// The fresh map is merged once it holds more than this, or an eighth of
/// the main table, whichever is larger.
const MIN_FRESH: usize = 4096;

/// `summary` in 64 bits, when it is a Ban alone (no Allow) whose expiry and
/// strikes fit; never 0. Anything else stays in the index's general map.
pub fn pack(summary: KeySummary) -> Option<u64> {
    let fits = summary.allow_until_ms == 0
        && summary.ban_until_ms > 0
        && summary.ban_until_ms <= UNTIL_MASK
        && u64::from(summary.strikes) < (1 << (64 - UNTIL_BITS));
    fits.then(|| summary.ban_until_ms | (u64::from(summary.strikes) << UNTIL_BITS))
}

/// The summary [`pack`] packed.
pub fn unpack(packed: u64) -> KeySummary {
    KeySummary {
        ban_until_ms: packed & UNTIL_MASK,
        strikes: u32::try_from(packed >> UNTIL_BITS).unwrap_or(u32::MAX),
        allow_until_ms: 0,
    }
}

/// Packed summaries by IPv4 address (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    /// Sorted addresses of the main table.
    addrs: Vec<u32>,
    /// Their packed summaries; 0 marks a removed one.
    packed: Vec<u64>,
    /// Entries of the main table that are not removed.
    live: usize,
    /// Addresses not in the main table, with their packed summaries (never 0).
    fresh: HashMap<u32, u64>,
}

impl Hosts {
    /// A table holding `entries` (any order; a later duplicate wins; packed 0
    /// is left out).
    pub fn from_entries(mut entries: Vec<(u32, u64)>) -> Hosts {
        entries.retain(|(_, p)| *p != 0);
        entries.sort_by_key(|(a, _)| *a);
        entries.reverse();
        entries.dedup_by_key(|(a, _)| *a);
        entries.reverse();
        Hosts {
            addrs: entries.iter().map(|(a, _)| *a).collect(),
            packed: entries.iter().map(|(_, p)| *p).collect(),
            live: entries.len(),
            fresh: HashMap::new(),
        }
    }

    /// A table of `addrs` (strictly ascending) and their `packed` summaries
    /// (none 0), keeping those `keep` says; `None` when they are not so.
    pub fn from_sorted(
        addrs: Vec<u32>,
        packed: Vec<u64>,
        keep: impl Fn(u64) -> bool,
    ) -> Option<Hosts> {
        let valid = addrs.len() == packed.len()
            && addrs.windows(2).all(|w| w[0] < w[1])
            && packed.iter().all(|p| *p != 0);
        if !valid {
            return None;
        }
        let (addrs, packed): (Vec<u32>, Vec<u64>) = if packed.iter().all(|p| keep(*p)) {
            (addrs, packed)
        } else {
            addrs.into_iter().zip(packed).filter(|(_, p)| keep(*p)).unzip()
        };
        Some(Hosts { live: addrs.len(), addrs, packed, fresh: HashMap::new() })
    }

    fn slot(&self, addr: u32) -> Option<usize> {
        self.addrs.binary_search(&addr).ok()
    }

    /// The packed summary of `addr`, if held.
    pub fn get(&self, addr: u32) -> Option<u64> {
        if let Some(p) = self.fresh.get(&addr) {
            return Some(*p);
        }
        self.slot(addr).map(|i| self.packed[i]).filter(|p| *p != 0)
    }

    /// Holds `packed` (not 0) for `addr`; returns whether it held one before.
    pub fn insert(&mut self, addr: u32, packed: u64) -> bool {
        debug_assert_ne!(packed, 0);
        if let Some(i) = self.slot(addr) {
            let was = self.packed[i] != 0;
            if !was {
                self.live += 1;
            }
            self.packed[i] = packed;
            return was;
        }
        let was = self.fresh.insert(addr, packed).is_some();
        if self.fresh.len() > MIN_FRESH.max(self.addrs.len() / 8) {
            self.merge();
        }
        was
    }

    /// Forgets `addr`; returns whether it was held.
    pub fn remove(&mut self, addr: u32) -> bool {
        if self.fresh.remove(&addr).is_some() {
            return true;
        }
        let Some(i) = self.slot(addr) else { return false };
        if self.packed[i] == 0 {
            return false;
        }
        self.packed[i] = 0;
        self.live -= 1;
        if self.addrs.len() - self.live > MIN_FRESH.max(self.addrs.len() / 2) {
            self.merge();
        }
        true
    }

    /// Rebuilds the main table from its live entries and the fresh map,
    /// sized exactly.
    fn merge(&mut self) {
        let mut fresh: Vec<(u32, u64)> = self.fresh.drain().collect();
        fresh.sort_unstable_by_key(|(a, _)| *a);
        let total = self.live + fresh.len();
        let mut addrs = Vec::with_capacity(total);
        let mut packed = Vec::with_capacity(total);
        let old = self.addrs.iter().copied().zip(self.packed.iter().copied());
        let mut old = old.filter(|(_, p)| *p != 0).peekable();
        let mut fresh = fresh.into_iter().peekable();
        loop {
            // Fresh addresses are never in the main table, so no ties.
            let next = match (old.peek(), fresh.peek()) {
                (Some(o), Some(f)) if o.0 < f.0 => old.next(),
                (Some(_), Some(_)) | (None, Some(_)) => fresh.next(),
                (Some(_), None) => old.next(),
                (None, None) => break,
            };
            if let Some((a, p)) = next {
                addrs.push(a);
                packed.push(p);
            }
        }
        self.addrs = addrs;
        self.packed = packed;
        self.live = total;
        if self.fresh.capacity() > 4 * MIN_FRESH {
            self.fresh = HashMap::new();
        }
    }

    /// Every held address with its packed summary.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        let main = self.addrs.iter().copied().zip(self.packed.iter().copied());
        main.filter(|(_, p)| *p != 0).chain(self.fresh.iter().map(|(a, p)| (*a, *p)))
    }

    /// Forgets every address whose summary `spent` says; returns how many.
    pub fn remove_where(&mut self, spent: impl Fn(u64) -> bool) -> usize {
        let before = self.len();
        self.fresh.retain(|_, p| !spent(*p));
        for p in self.packed.iter_mut().filter(|p| **p != 0 && spent(**p)) {
            *p = 0;
            self.live -= 1;
        }
        let removed = before - self.len();
        if removed > 0 {
            self.merge();
        }
        removed
    }

    /// How many addresses are held.
    pub fn len(&self) -> usize {
        self.live + self.fresh.len()
    }

    /// The heap the table takes, in bytes (with spare capacity).
    pub fn heap_bytes(&self) -> usize {
        self.addrs.capacity() * 4
            + self.packed.capacity() * 8
            + self.fresh.capacity() * (std::mem::size_of::<(u32, u64)>() + 1)
    }
}
