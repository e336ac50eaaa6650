//! Local pardons: an operator removed by hand, on this host, something a
//! backend put there for the mesh (an element deleted from banmesh's nft
//! set, `fail2ban-client set banmesh unbanip IP`). The backend leaves it
//! out for the rest of that ban's time instead of putting it back; the
//! pardon is this host's alone, never published (`banmesh unban` is the
//! mesh-wide way).
//!
//! A pardon is tied to the ban's end as it was when the operator removed
//! it: it lasts until then, and ends early when the ban's end moves (a
//! renewal or a different ban on the key: a new ban is enforced again),
//! or when the key is no longer banned at all. A record that leaves the
//! ban's end where it was does not end it. Pure.

use std::collections::BTreeMap;

/// Ends this close to each other are the same ban's (rounding, ticks).
pub const SLACK_MS: u64 = 2_500;

/// The pardons a backend holds, by its own key (an address or network,
/// with its set for nftables): the ban end each was made for (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pardons<K: Ord>(BTreeMap<K, u64>);

impl<K: Ord> Default for Pardons<K> {
    fn default() -> Self {
        Pardons(BTreeMap::new())
    }
}

impl<K: Ord + Copy> Pardons<K> {
    /// Pardons `key`, banned until `end_ms`, for the rest of that ban.
    pub fn pardon(&mut self, key: K, end_ms: u64) {
        self.0.insert(key, end_ms);
    }

    /// Keeps the pardons still standing at `now_ms`, given each key's
    /// ban end now (`end_of`, `None` when no longer banned): a pardon ends
    /// with its ban, or when the ban's end moved (a new ban).
    pub fn keep(&mut self, now_ms: u64, end_of: impl Fn(&K) -> Option<u64>) {
        self.0.retain(|key, pardoned| {
            *pardoned > now_ms && end_of(key).is_some_and(|end| end.abs_diff(*pardoned) <= SLACK_MS)
        });
    }

    /// Whether `key` is pardoned.
    pub fn contains(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }

    /// How many pardons stand.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none stands.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each pardon and the ban end it lasts until.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &u64)> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::Pardons;

    #[test]
    fn a_pardon_lasts_until_its_ban_ends_or_the_ban_changes() {
        let mut p = Pardons::default();
        p.pardon(1u8, 10_000);
        p.pardon(2u8, 10_000);
        p.pardon(3u8, 10_000);
        // 1: same ban (within the slack); 2: renewed; 3: no longer banned.
        p.keep(5_000, |k| match k {
            1 => Some(10_500),
            2 => Some(70_000),
            _ => None,
        });
        assert!(p.contains(&1) && !p.contains(&2) && !p.contains(&3));
        p.keep(10_000, |_| Some(10_000));
        assert!(p.is_empty(), "a pardon outlived its ban");
    }
}
