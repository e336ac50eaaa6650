//! The swarm task's watch on its connections and on the verifier's queue:
//! a connection whose ping fails (or that stays silent) is closed, so a
//! peer behind a cut link is seen as gone within seconds and redialled when
//! the link is back; gossip waits in a bounded backlog when the verifier is
//! behind instead of being dropped.

use std::time::{Duration, Instant};

use libp2p::gossipsub::MessageAcceptance;
use libp2p::{Multiaddr, PeerId, ping};
use tokio::sync::mpsc;

use super::Mesh;
use crate::clock::now_ms;
use crate::mesh::behaviour::{PING_INTERVAL, PING_TIMEOUT};
use crate::mesh::verifier::Inbound;

/// A connected peer that has sent nothing back (not even a ping answer) for
/// this long is in doubt: the sync timer skips it.
pub const DOUBT_AFTER: Duration = Duration::from_secs(5);
/// A connection silent for this long is closed even if no ping failed (a
/// ping stream that never opens reports nothing).
const SILENT_FOR: Duration =
    Duration::from_secs(3 * (PING_INTERVAL.as_secs() + PING_TIMEOUT.as_secs()));
/// Gossip held for the verifier at most (bytes of message data); past it,
/// messages are dropped and counted as `verifier busy` (sync delivers them).
const MAX_BACKLOG_BYTES: usize = 32 * 1024 * 1024;

/// A peer whose hello was accepted in this run.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Its certificate's name.
    pub name: String,
    /// The address its last connection came from.
    pub remote: Option<Multiaddr>,
    /// Unix ms when anything was last heard from it.
    pub last_seen_ms: u64,
}

impl Mesh {
    /// Something came back from `peer`: it is alive.
    pub(super) fn heard_from(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.last_alive = Instant::now();
        }
        if let Some(a) = self.admitted.get_mut(&peer) {
            a.last_seen_ms = now_ms();
        }
    }

    /// A ping answered keeps the peer alive; a ping that failed closes that
    /// connection (libp2p leaves it open), so the peer is redialled rather
    /// than trusted for minutes over a dead link.
    pub(super) fn handle_ping(&mut self, event: ping::Event) {
        self.metrics.record(&event);
        match event.result {
            Ok(_) => self.heard_from(event.peer),
            Err(ping::Failure::Unsupported) => {}
            Err(error) => {
                tracing::info!(peer = %event.peer, %error, "ping failed: closing the connection");
                self.swarm.close_connection(event.connection);
            }
        }
    }

    /// Closes connections that have been silent too long.
    pub(super) fn close_silent(&mut self) {
        let silent: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.state.ready && p.last_alive.elapsed() > SILENT_FOR)
            .map(|(id, _)| *id)
            .collect();
        for peer in silent {
            tracing::info!(%peer, "peer silent: closing its connections");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Whether a connected peer is in doubt (see [`DOUBT_AFTER`]).
    pub(super) fn in_doubt(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.last_alive.elapsed() > DOUBT_AFTER)
    }

    /// The last connection to `peer` closed.
    pub(super) fn on_disconnected(&mut self, peer: PeerId, cause: Option<String>) {
        self.peers.remove(&peer);
        if let Some(a) = self.admitted.get(&peer) {
            let cause = cause.unwrap_or_else(|| "closed".to_owned());
            tracing::info!(target: "banmesh::events::peer_lost", %peer, name = %a.name, %cause, "peer disconnected");
        }
    }

    /// Hands gossip to the verifier, or keeps it in the backlog while the
    /// verifier's queue is full.
    pub(super) fn hand_to_verifier(&mut self, inbound: Inbound) {
        let inbound = if self.backlog.is_empty() {
            match self.inbound_tx.try_send(inbound) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(inbound)) => inbound,
            }
        } else {
            inbound
        };
        if self.backlog_bytes + inbound.data.len() > MAX_BACKLOG_BYTES {
            // Bounded memory first: sync delivers what is dropped here.
            self.count("verifier busy");
            self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                &inbound.id,
                &inbound.source,
                MessageAcceptance::Ignore,
            );
            return;
        }
        self.backlog_bytes += inbound.data.len();
        self.backlog.push_back(inbound);
    }

    /// Moves the oldest backlogged message into the verifier's queue.
    pub(super) fn feed_verifier(&mut self, permit: mpsc::Permit<'_, Inbound>) {
        if let Some(inbound) = self.backlog.pop_front() {
            self.backlog_bytes -= inbound.data.len();
            permit.send(inbound);
        }
    }
}
