//! The sync sessions a node runs: at most one with each peer at a time
//! (either side's), at most [`MAX_INITIATING`] it opens and
//! [`MAX_RESPONDING`] it answers at once, and the progress of each for
//! `banmesh status`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use libp2p::PeerId;

use crate::clock::now_ms;
use crate::mesh::MeshStats;

/// Sessions this node opens at once.
pub const MAX_INITIATING: usize = 2;
/// Sessions (reconciliations and streams) this node answers at once.
pub const MAX_RESPONDING: usize = 4;

/// Which side of a session this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It opened the session.
    Initiator,
    /// A peer opened it.
    Responder,
}

/// One running session.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The other side.
    pub peer: PeerId,
    /// This node's side.
    pub role: Role,
    /// Streaming the whole set (else reconciling).
    pub stream: bool,
    /// When it started, Unix ms.
    pub started_ms: u64,
    /// Records moved so far (received by an initiator, sent by a responder).
    pub records: u64,
    /// Bytes of batches moved so far.
    pub bytes: u64,
    /// Records the session will move, when known (a stream's set).
    pub total: Option<u64>,
}

/// Why a session was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStarted {
    /// A session with that peer runs already.
    InSession,
    /// The node runs as many sessions of that side as it may.
    Busy,
}

/// Sessions since start and those running.
#[derive(Debug, Clone, Default)]
pub struct SyncStats {
    /// Sessions this node opened.
    pub initiated: u64,
    /// Reconciliations peers opened that this node answered.
    pub answered: u64,
    /// Streams of the whole set this node began sending (to empty peers).
    pub streamed: u64,
    /// Sessions peers opened that this node refused (one with that peer
    /// was running, or the node was at its cap).
    pub refused: u64,
    /// Sessions this node did not open for the same reasons.
    pub skipped: u64,
    /// Running sessions, by a local id.
    pub running: BTreeMap<u64, Progress>,
    next: u64,
}

impl SyncStats {
    /// Whether this node is being streamed the whole set (it joins).
    pub fn streaming_in(&self) -> bool {
        self.running.values().any(|p| p.role == Role::Initiator && p.stream)
    }

    /// Whether a session with `peer` runs, either side's.
    pub fn in_session(&self, peer: &PeerId) -> bool {
        self.running.values().any(|p| p.peer == *peer)
    }

    /// Registers a session with `peer`, unless one with it runs or `role`
    /// is at its cap; counts it either way.
    pub fn begin(&mut self, peer: PeerId, role: Role, stream: bool) -> Result<u64, NotStarted> {
        let cap = if role == Role::Initiator { MAX_INITIATING } else { MAX_RESPONDING };
        let result = if self.in_session(&peer) {
            Err(NotStarted::InSession)
        } else if self.running.values().filter(|p| p.role == role).count() >= cap {
            Err(NotStarted::Busy)
        } else {
            self.next += 1;
            let progress = Progress {
                peer,
                role,
                stream,
                started_ms: now_ms(),
                records: 0,
                bytes: 0,
                total: None,
            };
            self.running.insert(self.next, progress);
            Ok(self.next)
        };
        match (role, result.is_ok()) {
            (Role::Initiator, true) => self.initiated += 1,
            (Role::Initiator, false) => self.skipped += 1,
            (Role::Responder, true) if stream => self.streamed += 1,
            (Role::Responder, true) => self.answered += 1,
            (Role::Responder, false) => self.refused += 1,
        }
        result
    }
}

/// A handle on the sync counters in the mesh's stats.
#[derive(Clone)]
pub struct Tracker(pub Arc<Mutex<MeshStats>>);

impl Tracker {
    fn with<T>(&self, f: impl FnOnce(&mut SyncStats) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner).sync)
    }

    /// See [`SyncStats::begin`].
    pub fn begin(&self, peer: PeerId, role: Role, stream: bool) -> Result<u64, NotStarted> {
        self.with(|s| s.begin(peer, role, stream))
    }

    /// Whether a session with `peer` runs.
    pub fn in_session(&self, peer: &PeerId) -> bool {
        self.with(|s| s.in_session(peer))
    }

    /// Whether the node opens as many sessions as it may.
    pub fn initiating_full(&self) -> bool {
        self.with(|s| s.running.values().filter(|p| p.role == Role::Initiator).count())
            >= MAX_INITIATING
    }

    /// Whether this node is being streamed the set: it then neither
    /// reconciles with nor streams from anyone else, or the set would come
    /// twice.
    pub fn catching_up(&self) -> bool {
        self.with(|s| s.running.values().any(|p| p.role == Role::Initiator && p.stream))
    }

    /// Marks session `id` as being streamed the set, unless another session
    /// of this node is (the set would come twice); whether it may stream.
    pub fn start_stream(&self, id: u64) -> bool {
        self.with(|s| {
            let other =
                s.running.iter().any(|(k, p)| *k != id && p.role == Role::Initiator && p.stream);
            if let Some(p) = s.running.get_mut(&id).filter(|_| !other) {
                p.stream = true;
            }
            !other
        })
    }

    /// Counts a session a peer opened and this node refused.
    pub fn refuse(&self) {
        self.with(|s| s.refused += 1);
    }

    /// Counts a session not opened (the timer found the peer in session).
    pub fn skip(&self) {
        self.with(|s| s.skipped += 1);
    }

    /// Session `id` moved `records` more records in `bytes` more bytes.
    pub fn add(&self, id: u64, records: usize, bytes: usize) {
        self.with(|s| {
            if let Some(p) = s.running.get_mut(&id) {
                p.records += records as u64;
                p.bytes += bytes as u64;
            }
        });
    }

    /// Session `id` streams (or no longer does), `total` records when known.
    pub fn phase(&self, id: u64, stream: bool, total: Option<u64>) {
        self.with(|s| {
            if let Some(p) = s.running.get_mut(&id) {
                p.stream = stream;
                p.total = total;
            }
        });
    }

    /// Session `id` is over; what it moved. After one that moved many
    /// records (a join), the heap it freed is given back to the system.
    pub fn end(&self, id: u64) -> Option<Progress> {
        let ended = self.with(|s| s.running.remove(&id));
        if ended.as_ref().is_some_and(|p| p.records >= crate::memory::TRIM_AFTER_RECORDS) {
            crate::memory::release_freed();
        }
        ended
    }
}

/// Ends an initiator session when dropped, however its task ends.
pub struct Guard {
    /// The counters.
    pub tracker: Tracker,
    /// The session.
    pub id: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.tracker.end(self.id);
    }
}

/// The counters and running sessions as `banmesh status` shows them.
pub fn view(stats: &SyncStats, now_ms: u64) -> crate::control::views::SyncView {
    use crate::control::views::{SyncSessionView, SyncView};
    let running = stats
        .running
        .values()
        .map(|p| {
            let elapsed = now_ms.saturating_sub(p.started_ms).max(1);
            let left = p.total.map(|t| t.saturating_sub(p.records));
            let eta_s =
                left.filter(|_| p.records > 0).map(|left| left * elapsed / p.records / 1000);
            SyncSessionView {
                peer_id: p.peer.to_string(),
                role: if p.role == Role::Initiator { "initiator" } else { "responder" }.to_owned(),
                stream: p.stream,
                records: p.records,
                bytes: p.bytes,
                total: p.total,
                eta_s,
            }
        })
        .collect();
    SyncView {
        initiated: stats.initiated,
        answered: stats.answered,
        streamed: stats.streamed,
        refused: stats.refused,
        skipped: stats.skipped,
        running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_sessions_one_per_peer_and_capped_per_side() {
        let mut stats = SyncStats::default();
        let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        let first = stats.begin(peers[0], Role::Responder, false).expect("first session");
        // Either side's session with a peer keeps out any other with it.
        assert_eq!(stats.begin(peers[0], Role::Responder, false), Err(NotStarted::InSession));
        assert_eq!(stats.begin(peers[0], Role::Initiator, false), Err(NotStarted::InSession));
        for peer in &peers[1..MAX_RESPONDING] {
            stats.begin(*peer, Role::Responder, true).expect("under the cap");
        }
        assert_eq!(stats.begin(peers[5], Role::Responder, false), Err(NotStarted::Busy));
        // The cap is per side: this node may still open sessions.
        let mut opened = Vec::new();
        for _ in 0..MAX_INITIATING {
            opened.push(stats.begin(PeerId::random(), Role::Initiator, false).expect("opens"));
        }
        assert_eq!(stats.begin(PeerId::random(), Role::Initiator, false), Err(NotStarted::Busy));
        stats.running.remove(&first);
        stats.begin(peers[0], Role::Responder, false).expect("a session again once over");
        assert_eq!((stats.answered, stats.streamed, stats.refused), (2, 3, 2));
        assert_eq!((stats.initiated, stats.skipped), (2, 2));
    }
}
