//! What peers send the swarm task: gossip (handed to the verifier, its
//! verdict reported to gossipsub), sync requests (to the sync task) and
//! answers (to whoever asked), and the strikes that block a peer.

use std::sync::PoisonError;

use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::request_response::{self, Message};
use tokio::sync::mpsc;

use super::{Mesh, REJECTS_BEFORE_BLOCK};
use crate::mesh::sync::{SyncInbound, SyncRequest, SyncResponse};
use crate::mesh::verifier::{Inbound, Outcome};

impl Mesh {
    pub(super) fn handle_outcome(&mut self, outcome: Outcome) {
        let acceptance = match outcome.verdict {
            Ok(true) => MessageAcceptance::Accept,
            Ok(false) => MessageAcceptance::Ignore,
            Err(reason) => {
                self.count(reason);
                MessageAcceptance::Reject
            }
        };
        if acceptance == MessageAcceptance::Accept {
            self.stats.lock().unwrap_or_else(PoisonError::into_inner).accepted += 1;
        }
        let reject = acceptance == MessageAcceptance::Reject;
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
            &outcome.id,
            &outcome.source,
            acceptance,
        );
        for node in outcome.revoked {
            self.drop_revoked(&node);
        }
        if reject {
            self.strike(outcome.source);
        }
    }

    /// One more rejected message or bad sync request from `peer`; blocks it
    /// at [`REJECTS_BEFORE_BLOCK`]. Kept per PeerId, not per connection:
    /// reconnecting does not wipe a peer's record. Cleared when the peer is
    /// blocked.
    pub(super) fn strike(&mut self, peer: PeerId) {
        let count = self.rejects.entry(peer).or_default();
        *count += 1;
        if *count >= REJECTS_BEFORE_BLOCK {
            self.rejects.remove(&peer);
            self.block(peer, "repeated rejects");
        }
        self.cap_strikes();
    }

    pub(super) fn handle_sync(
        &mut self,
        event: request_response::Event<SyncRequest, SyncResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message: Message::Request { request, channel, .. },
                ..
            } => {
                if !self.peers.get(&peer).is_some_and(|p| p.state.ready) {
                    self.count("sync from pending peer");
                    let refused = SyncResponse::Refused { reason: "say hello first".into() };
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, refused);
                    return;
                }
                if let Err(e) =
                    self.sync_inbound_tx.try_send(SyncInbound { peer, request, channel })
                {
                    let inbound = match e {
                        mpsc::error::TrySendError::Full(i)
                        | mpsc::error::TrySendError::Closed(i) => i,
                    };
                    let busy = SyncResponse::Refused { reason: "busy".into() };
                    let _ = self.swarm.behaviour_mut().sync.send_response(inbound.channel, busy);
                }
            }
            request_response::Event::Message {
                message: Message::Response { request_id, response },
                peer,
                ..
            } => {
                self.heard_from(peer);
                if let Some(reply) = self.pending_sync.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some(reply) = self.pending_sync.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                // Unreadable requests are counted by the codec (`codec.rs`);
                // bytes that are no request at all are a strike too.
                tracing::debug!(%peer, %error, "sync request failed");
                if crate::mesh::codec::undecodable(&error) {
                    self.strike(peer);
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    pub(super) fn handle_gossip(&mut self, source: PeerId, id: MessageId, data: Vec<u8>) {
        let ready = self.peers.get(&source).is_some_and(|p| p.state.ready);
        if !ready {
            self.count("gossip from pending peer");
            self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                &id,
                &source,
                MessageAcceptance::Ignore,
            );
            return;
        }
        self.heard_from(source);
        self.metrics.gossip_bytes(crate::metrics::Direction::In, data.len());
        self.hand_to_verifier(Inbound { id, source, data });
    }
}
