//! [`Target`]: what this host enforces at one time, an immutable snapshot the
//! enforce task publishes; and what a backend makes of it once it adds
//! exclusions of its own ([`Target::excluding`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use banmesh_crdt::Key;
use ipnet::IpNet;

use super::MAX_PIECES;
use super::split::{TooManyPieces, outermost, split_excluding};

/// What this host enforces: every banned key that applies, split around
/// what it must not cover; the allows, which every backend lifts wherever
/// it holds them; the never-ban list it was computed with; what was left
/// out and why; and when it changes next without any new record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// `[safety] enforce`: false (observe only) enforces nothing, so both
    /// `bans` and `allows` are empty.
    pub enforce: bool,
    /// Banned keys that apply, with their pieces.
    pub bans: BTreeMap<Key, Banned>,
    /// What a backend holds: every piece of every ban, without the entries
    /// inside another (an nftables set with `flags interval` refuses
    /// overlaps, and the wider entry blocks both).
    pub entries: BTreeSet<Key>,
    /// Keys allowed now, with until when (Unix ms).
    pub allows: BTreeMap<Key, u64>,
    /// The never-ban list used.
    pub never_ban: Arc<[Key]>,
    /// Banned keys not enforced, and why.
    pub left_out: BTreeMap<Key, Why>,
    /// When the target changes next with no new record (a ban or allow
    /// ends, or a ban from an applied jail does), Unix ms.
    pub next_change_ms: Option<u64>,
}

/// A banned key this host enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banned {
    /// Until when (Unix ms).
    pub until_ms: u64,
    /// What to hold for it: the key itself, or the largest sub-networks of
    /// it that leave out the allowed and never-ban addresses inside it.
    pub pieces: Vec<Key>,
}

/// Why a banned key is not enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// `apply_jails`: no standing ban on it names an applied jail (or none).
    JailNotApplied,
    /// This allowed key covers it: allow wins.
    Allowed(Key),
    /// This never-ban entry covers it.
    NeverBan(Key),
    /// Splitting it around what it must not cover takes too many pieces.
    TooWide(TooManyPieces),
}

/// What a backend holds once it added its own exclusions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Excluded {
    /// The entries, none inside another.
    pub entries: BTreeSet<Key>,
    /// Banned networks left out: splitting takes too many pieces.
    pub too_wide: Vec<TooManyPieces>,
}

impl Target {
    /// Whether an allow covers the whole of `key`.
    pub fn allows_all_of(&self, key: Key) -> bool {
        Key::covering(key.net().network())
            .filter(|k| k.prefix_len() <= key.prefix_len())
            .any(|k| self.allows.contains_key(&k))
    }

    /// Until when each entry (each piece of every ban) is banned, Unix ms:
    /// the latest end of the bans it is a piece of.
    pub fn ends(&self) -> BTreeMap<Key, u64> {
        let mut out: BTreeMap<Key, u64> = BTreeMap::new();
        for banned in self.bans.values() {
            for piece in &banned.pieces {
                let at = out.entry(*piece).or_insert(banned.until_ms);
                *at = (*at).max(banned.until_ms);
            }
        }
        out
    }

    /// Banned networks left out because splitting them takes too many pieces.
    pub fn too_wide(&self) -> impl Iterator<Item = &TooManyPieces> {
        self.left_out.values().filter_map(|why| match why {
            Why::TooWide(e) => Some(e),
            _ => None,
        })
    }

    /// The entries once `extra` (a backend's own never-ban entries, such as
    /// Fail2Ban's `ignoreip`) is left out too, by the same rule as the
    /// never-ban list: a ban inside an entry goes, a ban around one is
    /// split around it.
    pub fn excluding(&self, extra: &[Key]) -> Excluded {
        let extra: Vec<IpNet> = extra
            .iter()
            .filter(|x| !self.never_ban.iter().any(|n| n.net().contains(&x.net())))
            .map(Key::net)
            .collect();
        let too_wide: Vec<TooManyPieces> = self.too_wide().copied().collect();
        if extra.is_empty() {
            return Excluded { entries: self.entries.clone(), too_wide };
        }
        let mut out = Excluded { entries: BTreeSet::new(), too_wide };
        for (key, banned) in &self.bans {
            let net = key.net();
            let holes: Vec<IpNet> =
                extra.iter().filter(|h| h.contains(&net) || net.contains(*h)).copied().collect();
            if holes.is_empty() {
                out.entries.extend(banned.pieces.iter().copied());
                continue;
            }
            match split_pieces(&banned.pieces, &holes) {
                Some(pieces) => out.entries.extend(pieces),
                None => out.too_wide.push(TooManyPieces { net, cap: MAX_PIECES }),
            }
        }
        out.entries = outermost(out.entries);
        out
    }
}

/// Every piece split around `holes`; `None` beyond [`MAX_PIECES`] in all.
/// Splitting the pieces again gives what splitting the key around every
/// hole at once would: the largest blocks that overlap no hole.
fn split_pieces(pieces: &[Key], holes: &[IpNet]) -> Option<Vec<Key>> {
    let mut out = Vec::new();
    for piece in pieces {
        let left = MAX_PIECES.checked_sub(out.len())?;
        let split = split_excluding(piece.net(), holes, left).ok()?;
        out.extend(split.into_iter().map(Key::from_net));
    }
    Some(out)
}
