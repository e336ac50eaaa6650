//! The rogue peer of the hostile-peer tests: a libp2p swarm on the node's
//! own stack, driven by the test, that speaks the node's protocols but
//! publishes whatever the test hands it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use banmesh_keys::{Certificate, SecretKey, files};
use banmesh_node::mesh::MeshStats;
use banmesh_node::mesh::behaviour::{self, Behaviour, BehaviourEvent, TOPIC};
use banmesh_node::mesh::hello::{HELLO_VERSION, Hello};
use banmesh_node::mesh::sync::{SyncRequest, SyncResponse};
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::request_response::{self, Message, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};

use super::common::{SOON, TestNode, wait_until};
use super::{MESH_SETTLE, now_ms};

/// A node key written with the real CLI and enrolled (or not) in a cluster.
pub struct RogueKey {
    pub secret: SecretKey,
    /// The certificate's canonical bytes; empty when not enrolled.
    pub cert: Vec<u8>,
}

impl RogueKey {
    /// Reads `node.key` (and `node.cert` when there is one) from `dir`.
    pub fn read(dir: &Path) -> RogueKey {
        let secret = files::read_secret_key(&dir.join("node.key")).expect("rogue node.key");
        let cert_path = dir.join("node.cert");
        let cert = if cert_path.exists() {
            files::read_certificate(&cert_path).expect("rogue node.cert").to_bytes()
        } else {
            Vec::new()
        };
        RogueKey { secret, cert }
    }

    /// The certificate.
    pub fn certificate(&self) -> Certificate {
        Certificate::from_bytes(&self.cert).expect("rogue certificate")
    }
}

/// What the test tells the rogue's task.
pub enum Command {
    Dial(Multiaddr),
    Publish(Vec<u8>, oneshot::Sender<Result<(), String>>),
    Hello(PeerId),
    Sync(PeerId, SyncRequest, oneshot::Sender<Result<SyncResponse, String>>),
    /// The pages to stream from now on.
    Pages(Vec<SyncResponse>),
}

/// What the rogue's task has seen.
#[derive(Default, Debug)]
pub struct Seen {
    pub connected: HashSet<PeerId>,
    pub subscribed: HashSet<PeerId>,
    pub established: u32,
    pub closed: u32,
    pub dial_errors: Vec<String>,
    pub hello_answers: u32,
    /// Gossip messages received.
    pub gossip_received: u32,
    /// `Stream` requests answered from the rogue's pages.
    pub pages_served: u32,
}

/// A libp2p swarm driven by the test: it speaks the node's protocols but
/// publishes whatever the test hands it.
pub struct Rogue {
    pub commands: mpsc::UnboundedSender<Command>,
    pub seen: Arc<Mutex<Seen>>,
    pub peer_id: PeerId,
    /// Dropped last: ends the task and closes every connection.
    pub runtime: tokio::runtime::Runtime,
}

impl Rogue {
    /// A rogue on the node's own stack (`behaviour::build`); it answers
    /// hellos and sends one on each connection when `hello` is true.
    pub fn new(key: &RogueKey, hello: bool) -> Rogue {
        let swarm = behaviour::build(&key.secret, 4, Arc::new(Mutex::new(MeshStats::default())))
            .expect("build the rogue swarm");
        Rogue::with_swarm(swarm, key, hello)
    }

    /// A rogue whose hellos claim it listens on `ips` (port 4646).
    pub fn claiming(key: &RogueKey, ips: &[&str]) -> Rogue {
        let swarm = behaviour::build(&key.secret, 4, Arc::new(Mutex::new(MeshStats::default())))
            .expect("build the rogue swarm");
        let me = *swarm.local_peer_id();
        let addrs = ips.iter().map(|ip| format!("/ip4/{ip}/tcp/4646/p2p/{me}")).collect();
        Rogue::spawn(swarm, key, true, addrs)
    }

    pub fn with_swarm(swarm: Swarm<Behaviour>, key: &RogueKey, hello: bool) -> Rogue {
        Rogue::spawn(swarm, key, hello, Vec::new())
    }

    /// A rogue that answers a node's `Stream` requests with `pages`: the
    /// first for a request without a cursor, else the one the cursor's
    /// first id byte numbers. Other sync requests are refused.
    pub fn serving(key: &RogueKey, pages: Vec<SyncResponse>) -> Rogue {
        let swarm = behaviour::build(&key.secret, 4, Arc::new(Mutex::new(MeshStats::default())))
            .expect("build the rogue swarm");
        let rogue = Rogue::spawn(swarm, key, true, Vec::new());
        rogue.commands.send(Command::Pages(pages)).expect("rogue task alive");
        rogue
    }

    fn spawn(swarm: Swarm<Behaviour>, key: &RogueKey, hello: bool, addrs: Vec<String>) -> Rogue {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (commands, command_rx) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let peer_id = *swarm.local_peer_id();
        let task = RogueTask {
            swarm,
            cert: key.cert.clone(),
            hello,
            addrs,
            seen: seen.clone(),
            pending_sync: HashMap::new(),
            pages: Vec::new(),
        };
        runtime.spawn(task.run(command_rx));
        Rogue { commands, seen, peer_id, runtime }
    }

    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn dial(&self, node: &TestNode) {
        let addr: Multiaddr = node.addr().parse().expect("node multiaddr");
        self.commands.send(Command::Dial(addr)).expect("rogue task alive");
    }

    /// Publishes `bytes` on the topic; the local gossipsub's verdict.
    pub fn publish(&self, bytes: Vec<u8>) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Publish(bytes, reply)).expect("rogue task alive");
        answer.blocking_recv().expect("rogue task answers")
    }

    /// Publishes and expects the local gossipsub to send it.
    pub fn publish_ok(&self, bytes: Vec<u8>) {
        let len = bytes.len();
        if let Err(e) = self.publish(bytes) {
            panic!("the rogue could not publish {len} bytes: {e}");
        }
    }

    pub fn send_hello(&self, peer: PeerId) {
        self.commands.send(Command::Hello(peer)).expect("rogue task alive");
    }

    /// Sends a sync request and waits (bounded) for its answer.
    pub fn sync(&self, peer: PeerId, request: SyncRequest) -> Result<SyncResponse, String> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Sync(peer, request, reply)).expect("rogue task alive");
        self.runtime.block_on(async {
            match tokio::time::timeout(SOON, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err("rogue task dropped the request".to_owned()),
                Err(_) => Err(format!("no answer within {SOON:?}")),
            }
        })
    }

    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.seen(|s| s.connected.contains(peer))
    }

    /// Dials node1 and waits until node1 lists the rogue as a connected
    /// (hello accepted) peer and has subscribed to the topic, then lets the
    /// gossip mesh settle.
    pub fn join(&self, node1: &TestNode) -> PeerId {
        let node1_id: PeerId = node1.peer_id().parse().expect("node1 peer id");
        self.dial(node1);
        let me = self.peer_id.to_string();
        let ready = wait_until(SOON, || {
            self.seen(|s| s.subscribed.contains(&node1_id)) && node1.connected_peers().contains(&me)
        });
        assert!(
            ready,
            "node1 did not accept the rogue and subscribe within {SOON:?}: rogue saw {:?}; node1 peers {:?}",
            self.seen(|s| format!("{s:?}")),
            node1.peers()
        );
        std::thread::sleep(MESH_SETTLE);
        node1_id
    }
}

pub struct RogueTask {
    pub swarm: Swarm<Behaviour>,
    pub cert: Vec<u8>,
    pub hello: bool,
    /// The addresses its hellos claim.
    pub addrs: Vec<String>,
    pub seen: Arc<Mutex<Seen>>,
    pub pending_sync: HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, String>>>,
    /// The pages it streams ([`Rogue::serving`]).
    pub pages: Vec<SyncResponse>,
}

impl RogueTask {
    pub fn hello(&self) -> Hello {
        Hello {
            version: HELLO_VERSION,
            cert: ByteBuf::from(self.cert.clone()),
            clock_ms: now_ms(),
            revocations: Vec::new(),
            addrs: self.addrs.clone(),
            constants: None,
            refused: None,
            by: None,
        }
    }

    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.event(event),
            }
        }
    }

    pub fn command(&mut self, command: Command) {
        match command {
            Command::Dial(addr) => {
                if let Err(e) = self.swarm.dial(addr) {
                    self.seen().dial_errors.push(e.to_string());
                }
            }
            Command::Publish(bytes, reply) => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(TOPIC), bytes)
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"));
                let _ = reply.send(result);
            }
            Command::Hello(peer) => {
                let hello = self.hello();
                self.swarm.behaviour_mut().hello.send_request(&peer, hello);
            }
            Command::Sync(peer, request, reply) => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.pending_sync.insert(id, reply);
            }
            Command::Pages(pages) => self.pages = pages,
        }
    }

    pub fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                {
                    let mut seen = self.seen();
                    seen.established += 1;
                    seen.connected.insert(peer_id);
                }
                // The rogue runs gossip at once, without waiting for hellos.
                self.swarm.behaviour_mut().gossipsub.admit(peer_id);
                if self.hello {
                    let hello = self.hello();
                    self.swarm.behaviour_mut().hello.send_request(&peer_id, hello);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                let mut seen = self.seen();
                seen.closed += 1;
                seen.connected.remove(&peer_id);
                seen.subscribed.remove(&peer_id);
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                self.seen().dial_errors.push(error.to_string());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Hello(event)) => match event {
                request_response::Event::Message {
                    message: Message::Request { channel, .. },
                    ..
                } if self.hello => {
                    let hello = self.hello();
                    let _ = self.swarm.behaviour_mut().hello.send_response(channel, hello);
                }
                request_response::Event::Message { message: Message::Response { .. }, .. } => {
                    self.seen().hello_answers += 1;
                }
                _ => {}
            },
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                ..
            })) => {
                self.seen().subscribed.insert(peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                ..
            })) => {
                self.seen().gossip_received += 1;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => match event {
                request_response::Event::Message {
                    message: Message::Request { channel, request, .. },
                    ..
                } => {
                    // The node reconciles with each new peer: refuse, politely,
                    // unless it asks for a page the rogue has.
                    let page = match request {
                        SyncRequest::Stream { after, .. } => self
                            .pages
                            .get(after.map_or(0, |(_, id)| {
                                usize::from(id.first().copied().unwrap_or(0))
                            })),
                        _ => None,
                    };
                    let answer = match page {
                        Some(page) => {
                            self.seen().pages_served += 1;
                            page.clone()
                        }
                        None => SyncResponse::Refused { reason: "rogue".to_owned() },
                    };
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, answer);
                }
                request_response::Event::Message {
                    message: Message::Response { request_id, response },
                    ..
                } => {
                    if let Some(reply) = self.pending_sync.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
                request_response::Event::OutboundFailure { request_id, error, .. } => {
                    if let Some(reply) = self.pending_sync.remove(&request_id) {
                        let _ = reply.send(Err(error.to_string()));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// The node's stack (as `behaviour::build`) but with gossipsub allowed to
/// send messages of up to `max_transmit` bytes: a sender that ignores the
/// 64 KiB limit.
pub fn oversize_swarm(secret: &SecretKey, max_transmit: usize) -> Swarm<Behaviour> {
    behaviour::build_with(secret, 4, max_transmit, Arc::new(Mutex::new(MeshStats::default())))
        .expect("swarm")
}
