//! The bounds on what the swarm task keeps per blocked or striking peer. A
//! peer that opens each connection with a fresh libp2p identity is refused
//! and blocked every time (no valid hello), and each block is kept ten
//! minutes: without a cap, a loop of fresh identities grows the block list,
//! the addresses kept for `peers unblock ADDR` and the strike counts without
//! end. At the cap the oldest block is lifted early.
//!
//! Lifting a block early costs nothing but work: a block only spares the
//! node judging that peer again. A stranger whose block was lifted is
//! refused at its next hello, a revoked node too, and a peer blocked for
//! repeated rejects must earn [`super::REJECTS_BEFORE_BLOCK`] strikes again.

use super::Mesh;

/// At most this many peers are blocked at once (and at most this many
/// peers' strikes are kept). A fleet's own misbehaving members are a handful;
/// the rest are strangers and fresh identities, so the cap bounds what an
/// attacker can make the node hold (a few hundred bytes a peer) without
/// ever mattering to an honest fleet.
pub const MAX_BLOCKED: usize = 256;

impl Mesh {
    /// Lifts the oldest blocks while more than [`MAX_BLOCKED`] peers are
    /// blocked; counted under `block list full`.
    pub(super) fn cap_blocks(&mut self) {
        while self.unblocks.len() > MAX_BLOCKED {
            // Oldest first: each peer is in the list once (`shut_out`).
            let (_, peer) = self.unblocks.remove(0);
            self.blocked_from.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            self.count("block list full (oldest block lifted)");
        }
    }

    /// Forgets the strikes of peers no longer connected while more than
    /// [`MAX_BLOCKED`] peers have some: a fresh identity that strikes once
    /// and goes must not be remembered for ever.
    pub(super) fn cap_strikes(&mut self) {
        if self.rejects.len() > MAX_BLOCKED {
            let connected = &self.peers;
            self.rejects.retain(|peer, _| connected.contains_key(peer));
        }
    }
}
