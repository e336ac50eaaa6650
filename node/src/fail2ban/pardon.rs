//! Manual unbans in the mesh jail: an entry banmesh put in the `banmesh`
//! jail that is gone from it at the next round, while its ban still runs,
//! was unbanned by an operator (`fail2ban-client set banmesh unbanip IP`):
//! the shipped jail never expires entries itself (`bantime = -1`). It
//! becomes a local pardon ([`crate::enforce::pardon`]) for the rest of its
//! ban instead of being banned again; never published. Entries gone
//! because Fail2Ban restarted (its database lost, a reload) are not
//! pardoned but put back: a restart is told by the jail's lifetime ban
//! count (`status banmesh short`: `Total banned`), which only a restart
//! makes fall below what it was after the last round; when it cannot be
//! read, by a jail found empty that should hold two or more entries.

use std::collections::{BTreeMap, BTreeSet};

use banmesh_crdt::Key;

use crate::enforce::pardon::{Pardons, SLACK_MS};

/// What the applier remembers of the mesh jail between rounds.
#[derive(Debug, Default)]
pub struct Memory {
    /// What the jail held for the mesh after the last round that went
    /// through; `None` at start and after a failed round.
    pub expected: Option<BTreeSet<Key>>,
    /// Standing local pardons.
    pub pardons: Pardons<Key>,
    /// The jail's lifetime ban count after the last round, when read.
    pub total: Option<u64>,
}

/// `Total banned` from a jail's `status JAIL short`.
pub fn total_banned(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.contains("Total banned:"))?;
    line.rsplit(':').next()?.trim().parse().ok()
}

impl Memory {
    /// Notes the entries of `send` (what the mesh wants in the jail) that
    /// were in the jail after the last round and are gone from `have` (the
    /// jail now) as pardons; drops the pardons whose ban ended or changed
    /// (`ends`); leaves the pardoned entries out of `send`.
    pub fn pardon(
        &mut self,
        send: &mut BTreeSet<Key>,
        have: &BTreeSet<Key>,
        ends: &BTreeMap<Key, u64>,
        jail: &str,
        now_ms: u64,
        total: Option<u64>,
    ) {
        if let Some(expected) = &self.expected {
            let gone: Vec<Key> = expected
                .iter()
                .filter(|k| send.contains(k) && !have.contains(k))
                .copied()
                .collect();
            let restarted = match (self.total, total) {
                (Some(then), Some(now)) => now < then,
                _ => have.is_empty() && gone.len() >= 2,
            };
            if restarted && !gone.is_empty() {
                tracing::info!(
                    jail,
                    entries = gone.len(),
                    "entries gone from the mesh jail with a Fail2Ban restart or reload: banning again, not pardoning"
                );
            } else {
                for key in gone {
                    let Some(&end) = ends.get(&key) else { continue };
                    if end > now_ms.saturating_add(SLACK_MS) {
                        tracing::warn!(target: "banmesh::events::fail2ban_pardoned", jail, key = %key, until_ms = end, "an operator unbanned a mesh ban in the jail: pardoned on this host until its ban ends (banmesh unban lifts a ban mesh-wide)");
                        self.pardons.pardon(key, end);
                    }
                }
            }
        }
        self.pardons.keep(now_ms, |k| ends.get(k).copied());
        if !self.pardons.is_empty() {
            send.retain(|k| !self.pardons.contains(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use banmesh_crdt::Key;

    use super::Memory;

    fn keys(list: &[&str]) -> BTreeSet<Key> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn an_entry_unbanned_by_hand_is_pardoned_an_emptied_jail_is_not() {
        let ends: BTreeMap<Key, u64> = keys(&["192.0.2.1", "192.0.2.2", "192.0.2.3"])
            .into_iter()
            .map(|k| (k, 90_000))
            .collect();
        let mut memory = Memory::default();
        // First round: nothing remembered, nothing pardoned.
        let mut send = keys(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
        memory.pardon(&mut send, &BTreeSet::new(), &ends, "banmesh", 1_000, None);
        assert_eq!(send.len(), 3);
        memory.expected = Some(send.clone());
        // Emptied: a restart, everything back.
        memory.pardon(&mut send, &BTreeSet::new(), &ends, "banmesh", 2_000, None);
        assert_eq!((send.len(), memory.pardons.len()), (3, 0));
        // One lost with a restart (the lifetime count fell): put back.
        memory.total = Some(3);
        let have = keys(&["192.0.2.1", "192.0.2.3"]);
        memory.pardon(&mut send, &have, &ends, "banmesh", 3_000, Some(2));
        assert_eq!((send.len(), memory.pardons.len()), (3, 0));
        // One unbanned by hand: pardoned, left out.
        memory.pardon(&mut send, &have, &ends, "banmesh", 3_000, Some(3));
        assert_eq!(send, have);
        assert_eq!(memory.pardons.len(), 1);
        assert_eq!(super::total_banned("|- Currently banned:\t2\n`- Total banned:\t7\n"), Some(7));
    }
}
