//! The libp2p side of the mesh: the combined behaviour (gossipsub on one
//! topic, the hello exchange, ping, the block list, Kademlia and mDNS when
//! `[mesh]` turns them on) and the swarm built on
//! TCP + Noise + yamux with the node key as its identity.

use std::time::Duration;

use banmesh_keys::SecretKey;
use libp2p::core::upgrade::Version;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport, cbor};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, Swarm, Transport as _, allow_block_list, connection_limits, identity, noise,
    ping, tcp, yamux,
};
use sha2::{Digest, Sha256};

use std::sync::{Arc, Mutex};

use super::batch::MAX_MESSAGE;
use super::codec::Counted;
use super::discovery::{Discovery, EnrolledKad};
use super::gossip_gate::GatedGossip;
use super::hello::Hello;
use super::swarm::MeshStats;
use super::sync::{MAX_FRAME, SYNC_PROTOCOL, SyncRequest, SyncResponse};
use crate::config::LimitsConfig;

/// The one gossip topic.
pub const TOPIC: &str = "banmesh/records/1";
/// The hello protocol.
pub const HELLO_PROTOCOL: &str = "/banmesh/hello/1";

/// Everything the swarm runs.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Live gossip of record batches, only with peers whose hello was
    /// accepted.
    pub gossipsub: GatedGossip,
    /// The hello exchange.
    pub hello: request_response::Behaviour<Counted<cbor::codec::Codec<Hello, Hello>>>,
    /// Anti-entropy.
    pub sync: request_response::Behaviour<Counted<cbor::codec::Codec<SyncRequest, SyncResponse>>>,
    /// Keeps idle connections alive and measures round trips.
    pub ping: ping::Behaviour,
    /// Peers refused for a while (no hello, repeated rejects, revoked).
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Caps on pending and established connections (`[limits]`): a flood
    /// of connections is closed on accept instead of taking every file
    /// descriptor.
    pub limits: connection_limits::Behaviour,
    /// Kademlia over enrolled peers (`[mesh] kademlia`).
    pub kad: Toggle<EnrolledKad>,
    /// mDNS on the LAN (`[mesh] mdns`).
    pub mdns: Toggle<libp2p::mdns::tokio::Behaviour>,
}

/// How often a connection is pinged, and how long a ping may take: a
/// connection whose ping fails is closed (the swarm task does it), so a peer
/// that went away is noticed within about their sum, not after TCP's
/// minutes-long retransmission timeout.
pub const PING_INTERVAL: Duration = Duration::from_secs(2);
/// See [`PING_INTERVAL`].
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a dial (TCP connect, Noise, yamux) may take. Without it a dial
/// to a host behind a cut link waits out TCP's SYN retries (over two
/// minutes), and the peer is not redialled until then, even once the link
/// is back.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What gossipsub may hold in its read buffer at once: many full messages.
const READ_BUFFER_LIMIT: usize = 32 * MAX_MESSAGE;

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The node key could not become a libp2p identity.
    #[error("node key is not usable as a libp2p identity: {0}")]
    Identity(String),
    /// A part of the stack refused its configuration.
    #[error("cannot build the libp2p stack: {0}")]
    Stack(String),
}

/// The gossipsub configuration DESIGN.md asks for: messages validated by
/// the application, anonymous (records carry their own signatures; Noise
/// authenticates the peer), message id = SHA-256 of the data, at most 64 KiB.
///
/// The 64 KiB limit is set for the topic, which gossipsub checks per message
/// when sending and receiving (a larger message is dropped alone and costs
/// its sender score). Its global limit is set [`READ_BUFFER_LIMIT`] high:
/// libp2p-gossipsub 0.50.1 compares the global limit with its whole read
/// buffer rather than one frame (`validate_rpc_limits`), so two full
/// messages arriving together would otherwise drop the inbound stream and
/// lose gossip until the next sync.
fn gossipsub(mesh_n_low: usize, max_transmit: usize) -> Result<gossipsub::Behaviour, BuildError> {
    let topic = IdentTopic::new(TOPIC);
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| MessageId::from(Sha256::digest(&m.data).to_vec()))
        .max_transmit_size(READ_BUFFER_LIMIT.max(max_transmit))
        .max_transmit_size_for_topic(max_transmit, topic.hash())
        .heartbeat_interval(Duration::from_millis(700))
        .mesh_n_low(mesh_n_low)
        .build()
        .map_err(|e| BuildError::Stack(e.to_string()))?;
    let mut behaviour = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)
        .map_err(|e| BuildError::Stack(e.to_string()))?;
    let mut params = gossipsub::PeerScoreParams {
        // gossipsub keeps a score for every peer that ever connected, for
        // this long after it left (an hour by default): a peer dialling with
        // a fresh identity each time would make it hold an hour of them.
        // A reject's penalty decays to nothing within a minute or two
        // (`invalid_message_deliveries_decay` 0.9 a second), and repeated
        // rejects block the peer by its PeerId anyway.
        retain_score: Duration::from_secs(120),
        ..gossipsub::PeerScoreParams::default()
    };
    params.topics.insert(
        topic.hash(),
        gossipsub::TopicScoreParams {
            topic_weight: 1.0,
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.9,
            // Rejects must be able to push a peer under the thresholds: no
            // bonus for time in the mesh, and no penalty for a quiet peer
            // (bans are rare; an honest node may send nothing for hours).
            time_in_mesh_weight: 0.0,
            mesh_message_deliveries_weight: 0.0,
            ..gossipsub::TopicScoreParams::default()
        },
    );
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: -100.0,
        publish_threshold: -200.0,
        graylist_threshold: -400.0,
        ..gossipsub::PeerScoreThresholds::default()
    };
    behaviour.with_peer_score(params, thresholds).map_err(BuildError::Stack)?;
    behaviour.subscribe(&topic).map_err(|e| BuildError::Stack(e.to_string()))?;
    Ok(behaviour)
}

/// Builds the swarm: TCP (nodelay) + Noise + yamux, the node key as identity.
pub fn build(
    secret: &SecretKey,
    mesh_n_low: usize,
    stats: Arc<Mutex<MeshStats>>,
) -> Result<Swarm<Behaviour>, BuildError> {
    let off = Discovery { kademlia: false, mdns: false };
    build_limited(secret, mesh_n_low, stats, LimitsConfig::default(), off)
}

/// [`build`] with the connection caps of `[limits]` and the discovery of
/// `[mesh]`.
pub fn build_limited(
    secret: &SecretKey,
    mesh_n_low: usize,
    stats: Arc<Mutex<MeshStats>>,
    limits: LimitsConfig,
    discovery: Discovery,
) -> Result<Swarm<Behaviour>, BuildError> {
    build_stack(secret, mesh_n_low, MAX_MESSAGE + 1024, stats, limits, discovery)
}

/// libp2p's connection limits from `[limits]`.
fn connection_limits(limits: LimitsConfig) -> connection_limits::Behaviour {
    connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(limits.max_pending_incoming))
            .with_max_established_incoming(Some(limits.max_established_incoming))
            .with_max_established(Some(limits.max_established))
            .with_max_established_per_peer(Some(limits.max_established_per_peer)),
    )
}

/// [`build`] with another gossip size limit (tests use it to play a sender
/// that ignores the 64 KiB limit).
pub fn build_with(
    secret: &SecretKey,
    mesh_n_low: usize,
    max_transmit: usize,
    stats: Arc<Mutex<MeshStats>>,
) -> Result<Swarm<Behaviour>, BuildError> {
    let off = Discovery { kademlia: false, mdns: false };
    build_stack(secret, mesh_n_low, max_transmit, stats, LimitsConfig::default(), off)
}

fn build_stack(
    secret: &SecretKey,
    mesh_n_low: usize,
    max_transmit: usize,
    stats: Arc<Mutex<MeshStats>>,
    limits: LimitsConfig,
    discovery: Discovery,
) -> Result<Swarm<Behaviour>, BuildError> {
    let mut seed = secret.seed();
    let keypair = identity::Keypair::ed25519_from_bytes(&mut seed[..])
        .map_err(|e| BuildError::Identity(e.to_string()))?;
    let hello = request_response::Behaviour::with_codec(
        Counted::new(
            cbor::codec::Codec::default()
                .set_request_size_maximum(64 * 1024)
                .set_response_size_maximum(64 * 1024),
            "malformed hello",
            64 * 1024,
            stats.clone(),
        ),
        [(StreamProtocol::new(HELLO_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
    );
    let sync = request_response::Behaviour::with_codec(
        Counted::new(
            cbor::codec::Codec::default()
                .set_request_size_maximum(MAX_FRAME)
                .set_response_size_maximum(MAX_FRAME),
            "malformed sync request",
            MAX_FRAME,
            stats,
        )
        .counting_sync_bytes(),
        [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
    );
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .timeout(DIAL_TIMEOUT),
            )
        })
        .map_err(|e| BuildError::Stack(e.to_string()))?
        .with_behaviour(|key| {
            let local = key.public().to_peer_id();
            let kad = discovery.kademlia.then(|| EnrolledKad::new(local));
            let mdns = match discovery.mdns {
                true => Some(super::discovery::mdns(local).map_err(|e| format!("mdns: {e}"))?),
                false => None,
            };
            Ok(Behaviour {
                gossipsub: GatedGossip::new(
                    gossipsub(mesh_n_low, max_transmit).map_err(|e| e.to_string())?,
                ),
                hello,
                sync,
                ping: ping::Behaviour::new(
                    ping::Config::new().with_interval(PING_INTERVAL).with_timeout(PING_TIMEOUT),
                ),
                blocked: allow_block_list::Behaviour::default(),
                limits: connection_limits(limits),
                kad: kad.into(),
                mdns: mdns.into(),
            })
        })
        .map_err(|e| BuildError::Stack(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}
