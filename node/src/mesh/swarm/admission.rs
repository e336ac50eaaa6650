//! The swarm task's admission of peers: the hello it sends, the judging of
//! the hellos it receives (a good one makes a peer ready and teaches it
//! addresses and revocations; a bad one is answered with a refusal that
//! says why, and the peer is blocked), the refusals peers tell this node,
//! and the peer list.

use banmesh_keys::{Certificate, PublicKey, Revocation};
use libp2p::request_response::{self, Message};
use libp2p::{Multiaddr, PeerId};
use serde_bytes::ByteBuf;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::{Admitted, Mesh, Peer, PeerState};
use crate::clock::now_ms;
use crate::mesh::hello::{self, HELLO_VERSION, Hello, Refusal};
use crate::mesh::ip_of;
use crate::mesh::learnt::Learnt;
use crate::mesh::never_ban::Seen;
use crate::mesh::sync::SyncOrder;

/// How long a refused peer is given to read its refusal before it is
/// blocked (blocking closes the connection at once).
const REFUSAL_GRACE: Duration = Duration::from_secs(2);

impl Mesh {
    /// Connected peers, then blocked ones, then known but unconnected ones.
    pub(super) fn peer_states(&self) -> Vec<PeerState> {
        let mut states: Vec<PeerState> = self
            .peers
            .iter()
            .map(|(id, p)| PeerState {
                in_doubt: self.in_doubt(id),
                last_seen_ms: self.admitted.get(id).map(|a| a.last_seen_ms),
                ..p.state.clone()
            })
            .collect();
        let idle = |peer: PeerId, blocked: bool, addrs: Vec<Multiaddr>| {
            let admitted = self.admitted.get(&peer);
            PeerState {
                peer,
                name: admitted.map(|a| a.name.clone()),
                ready: false,
                offset_ms: None,
                connected_ms: 0,
                addrs,
                remote: admitted.and_then(|a| a.remote.clone()),
                connected: false,
                blocked,
                in_doubt: false,
                last_seen_ms: admitted.map(|a| a.last_seen_ms),
            }
        };
        for (_, peer) in &self.unblocks {
            if !states.iter().any(|s| s.peer == *peer) {
                states.push(idle(*peer, true, self.known.get(peer).cloned().unwrap_or_default()));
            }
        }
        let own = *self.swarm.local_peer_id();
        for (peer, addrs) in &self.known {
            if *peer != own && !states.iter().any(|s| s.peer == *peer) {
                states.push(idle(*peer, false, addrs.clone()));
            }
        }
        for peer in self.admitted.keys() {
            if !states.iter().any(|s| s.peer == *peer) {
                states.push(idle(*peer, false, Vec::new()));
            }
        }
        states
    }

    /// The hello for `to`: our certificate, clock and revocations, the
    /// addresses we listen on (loopback ones only for a peer on this host,
    /// where they mean this host) and our ready peers' addresses.
    pub(super) fn own_hello(&self, to: &PeerId) -> Hello {
        let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
        let own = *self.swarm.local_peer_id();
        let local =
            self.peers.get(to).and_then(|p| p.state.remote.as_ref()).is_some_and(is_loopback);
        let usable = |a: &&Multiaddr| local || !is_loopback(a);
        let mut addrs: Vec<String> = self
            .swarm
            .listeners()
            .chain(self.swarm.external_addresses())
            .filter(usable)
            .map(|a| a.clone().with_p2p(own).unwrap_or_else(|a| a).to_string())
            .collect();
        for (id, peer) in self.peers.iter().filter(|(id, p)| p.state.ready && *id != to) {
            let theirs = peer.state.addrs.iter().filter(usable);
            addrs.extend(theirs.map(|a| a.clone().with_p2p(*id).unwrap_or_else(|a| a).to_string()));
        }
        addrs.dedup();
        addrs.truncate(hello::MAX_ADDRS);
        Hello {
            version: HELLO_VERSION,
            cert: ByteBuf::from(self.own_cert.clone()),
            clock_ms: now_ms(),
            revocations: trust.revocations().iter().map(|r| ByteBuf::from(r.to_bytes())).collect(),
            addrs,
            constants: Some(self.constants),
            refused: None,
            by: None,
        }
    }

    /// A peer's first connection: it is pending until its hello is accepted.
    pub(super) fn on_connected(&mut self, peer_id: PeerId, dialer: bool, remote: &Multiaddr) {
        self.peers.insert(
            peer_id,
            Peer {
                state: PeerState {
                    peer: peer_id,
                    name: None,
                    ready: false,
                    offset_ms: None,
                    connected_ms: now_ms(),
                    addrs: Vec::new(),
                    remote: Some(remote.clone()),
                    connected: true,
                    blocked: false,
                    in_doubt: false,
                    last_seen_ms: None,
                },
                deadline: Instant::now() + self.hello_timeout,
                last_alive: Instant::now(),
            },
        );
        // The dialer speaks first; the listener judges its hello and answers
        // with its own. So the node that was dialled always judges (and
        // counts) a bad hello before anything is said back.
        if dialer {
            let hello = self.own_hello(&peer_id);
            self.swarm.behaviour_mut().hello.send_request(&peer_id, hello);
        }
    }

    pub(super) fn handle_hello(&mut self, event: request_response::Event<Hello, Hello>) {
        match event {
            request_response::Event::Message {
                peer,
                message: Message::Request { request, channel, .. },
                ..
            } => {
                if let Some(reason) = &request.refused {
                    self.refused_by(peer, reason, request.by.as_deref());
                    self.told_revoked(peer, &request.revocations);
                } else if !self.refusing.contains_key(&peer) {
                    match self.welcome(peer, &request) {
                        Ok(()) => {
                            let hello = self.own_hello(&peer);
                            let _ = self.swarm.behaviour_mut().hello.send_response(channel, hello);
                        }
                        Err(refusal) => {
                            let told = self.refusal_for(&peer, &refusal);
                            let _ = self.swarm.behaviour_mut().hello.send_response(channel, told);
                            self.refuse(peer, &refusal);
                        }
                    }
                }
            }
            request_response::Event::Message {
                peer,
                message: Message::Response { response, .. },
                ..
            } => {
                if let Some(reason) = &response.refused {
                    self.refused_by(peer, reason, response.by.as_deref());
                    self.told_revoked(peer, &response.revocations);
                } else if !self.refusing.contains_key(&peer)
                    && let Err(refusal) = self.welcome(peer, &response)
                {
                    // The dialled peer spoke last: tell it why, as a request.
                    let told = self.refusal_for(&peer, &refusal);
                    self.swarm.behaviour_mut().hello.send_request(&peer, told);
                    self.refuse(peer, &refusal);
                }
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "hello not answered");
            }

            _ => {}
        }
    }

    /// Counts a refused hello now; the peer, told why, is blocked after
    /// [`REFUSAL_GRACE`] (see [`Mesh::end_refusals`]).
    fn refuse(&mut self, peer: PeerId, refusal: &Refusal) {
        tracing::warn!(target: "banmesh::events::hello_refused", %peer, reason = %refusal, "hello refused");
        self.count(refusal.kind());
        self.refusing.insert(peer, (Instant::now() + REFUSAL_GRACE, refusal.kind()));
    }

    /// Blocks the refused peers whose grace is over.
    pub(super) fn end_refusals(&mut self, now: Instant) {
        let due: Vec<(PeerId, &'static str)> = self
            .refusing
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(p, (_, r))| (*p, *r))
            .collect();
        for (peer, reason) in due {
            self.refusing.remove(&peer);
            self.shut_out(peer, reason);
        }
    }

    /// A peer refused this node's hello and told why: kept for `status`
    /// (until the peer accepts a hello) and the peer blocked.
    fn refused_by(&mut self, peer: PeerId, reason: &str, by: Option<&str>) {
        let reason = hello::heard(reason);
        let by =
            by.map_or_else(|| peer.to_string(), |name| format!("{} ({peer})", hello::heard(name)));
        tracing::warn!(target: "banmesh::events::hello_refused_by_peer", %peer, "refused by {by}: {reason}");
        {
            let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
            if stats.refused_by.len() < hello::MAX_REFUSERS || stats.refused_by.contains_key(&peer)
            {
                stats.refused_by.insert(peer, reason);
            }
        }
        self.refusing.remove(&peer);
        self.shut_out(peer, "it refused this node's hello");
    }

    /// Judges a hello; a good one makes the peer ready.
    pub(super) fn welcome(&mut self, peer: PeerId, hello: &Hello) -> Result<(), Refusal> {
        let welcome = {
            let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
            hello::judge(hello, &peer, &trust, &self.constants, now_ms())?
        };
        self.stats.lock().unwrap_or_else(PoisonError::into_inner).refused_by.remove(&peer);
        self.learn(&welcome.cert, welcome.revocations);
        // Loopback addresses name the sender's host: usable only when the
        // sender is on this host too (else dialling them dials ourselves).
        let remote = self.peers.get(&peer).and_then(|p| p.state.remote.clone());
        let local = remote.as_ref().is_some_and(is_loopback);
        let learnt: Vec<(PeerId, Multiaddr)> = welcome
            .addrs
            .into_iter()
            .filter(|(_, a)| local || !is_loopback(a))
            .filter(|(_, a)| ip_of(a).is_none_or(|ip| !ip.is_unspecified()))
            .collect();
        let own_addrs: Vec<Multiaddr> =
            learnt.iter().filter(|(p, _)| *p == peer).map(|(_, a)| a.clone()).collect();
        let own = *self.swarm.local_peer_id();
        for (id, addr) in learnt.into_iter().filter(|(id, _)| *id != own) {
            let addrs = self.known.entry(id).or_default();
            if !addrs.contains(&addr) && addrs.len() < hello::MAX_ADDRS {
                addrs.push(addr);
            }
        }
        // Where its connection comes from stays never-banned while its
        // certificate is valid, connected or not.
        if let Some(addr) = remote.as_ref().and_then(ip_of).filter(|ip| !ip.is_unspecified()) {
            let node = *welcome.cert.node();
            let seen = Seen { node, addr, valid_until_ms: welcome.cert.not_after_ms() };
            if self.seen_tx.try_send(seen).is_err() {
                tracing::debug!(%peer, %addr, "never-ban keeper busy: address kept only while connected");
            }
        }
        // Its other addresses count once this node reaches it there.
        let node = *welcome.cert.node();
        self.probe_addrs(peer, &own_addrs, node, welcome.cert.not_after_ms());
        let name = welcome.cert.name().to_owned();
        self.admitted.insert(peer, Admitted { name, remote, last_seen_ms: now_ms() });
        if let Some(p) = self.peers.get_mut(&peer) {
            if !p.state.ready {
                let _ = self.sync_order_tx.try_send(SyncOrder::PeerReady(peer));
                tracing::info!(target: "banmesh::events::peer_ready", %peer, name = welcome.cert.name(), "peer ready");
            }
            p.state.ready = true;
            p.state.name = Some(welcome.cert.name().to_owned());
            p.state.offset_ms = Some(welcome.offset_ms);
            p.state.addrs = own_addrs.clone();
        }
        self.admit_route(peer, &own_addrs);
        self.swarm.behaviour_mut().gossipsub.admit(peer);
        Ok(())
    }
}

impl Mesh {
    /// Sends what a hello taught that the trust lacks to be stored (the
    /// store writer then adds it to the trust), and drops newly revoked
    /// peers at once.
    fn learn(&mut self, cert: &Certificate, revocations: Vec<Revocation>) {
        let learnt = {
            let trust = self.trust.read().unwrap_or_else(PoisonError::into_inner);
            Learnt {
                cert: (!trust.knows(cert)).then(|| cert.clone()),
                revocations: revocations.into_iter().filter(|r| trust.lacks(r)).collect(),
            }
        };
        if learnt.is_empty() {
            return;
        }
        let revoked: Vec<PublicKey> = learnt.revocations.iter().map(|r| *r.node()).collect();
        if self.learnt_tx.try_send(learnt).is_err() {
            tracing::debug!("trust keeper busy: what this hello taught is learnt again later");
        }
        for node in revoked {
            self.drop_revoked(&node);
        }
    }
}

impl Mesh {
    /// This node's name, from its certificate (none when not enrolled).
    pub(super) fn own_name(&self) -> Option<String> {
        Certificate::from_bytes(&self.own_cert).ok().map(|c| c.name().to_owned())
    }
}

/// Whether `addr` is a loopback address (`127.0.0.0/8`, `::1`).
fn is_loopback(addr: &Multiaddr) -> bool {
    ip_of(addr).is_some_and(|ip| ip.is_loopback())
}
