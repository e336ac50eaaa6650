//! The never-ban list: what no mesh ban may touch on this node, whatever the
//! mesh says. It holds the configured networks, `127.0.0.0/8` and `::1`,
//! every address of this host's interfaces (read at start and every
//! [`REFRESH_EVERY`]), the addresses the node listens on, and the addresses
//! every admitted peer is seen on (the one it connects from, and those it
//! announces that this node dialled and reached it on), now and for as long
//! as its certificate is valid (kept in the store, so a peer that is away,
//! or this node's restart, never exposes it). Fail2Ban's `ignoreip` is added by the
//! applier.
//!
//! Task: [`run`] writes the addresses the swarm reports (on a bounded
//! channel) to the store, and refreshes the interface addresses and prunes
//! expired or revoked peers' addresses every [`REFRESH_EVERY`]. It ends when
//! the node's token fires.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use banmesh_crdt::Key;
use banmesh_keys::PublicKey;
use ipnet::{IpNet, Ipv4Net};
use libp2p::Multiaddr;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{PeerState, ip_of};
use crate::clock::now_ms;
use crate::store::Store;

/// How often the interface addresses are read again and expired peers'
/// addresses pruned.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// A peer seen again from the same address within this long is not
/// written again (hellos are repeated every few seconds while a node lacks
/// peers).
const NOTE_AGAIN_AFTER: Duration = Duration::from_secs(600);

/// An admitted peer was seen on `addr`: its connection came from there, or
/// this node dialled an address the peer announced and reached it
/// (`swarm/reach.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// The peer's node key.
    pub node: PublicKey,
    /// Where its connection comes from, or where this node reached it
    /// (never what its hello only claims).
    pub addr: IpAddr,
    /// When its certificate expires, Unix ms.
    pub valid_until_ms: u64,
}

/// This host's interface addresses, shared between the task that refreshes
/// them and the readers of the list.
#[derive(Debug, Clone, Default)]
pub struct LocalAddrs(Arc<RwLock<Vec<IpAddr>>>);

impl LocalAddrs {
    /// The addresses of every interface, read now.
    pub fn read_now() -> LocalAddrs {
        let local = LocalAddrs::default();
        local.refresh();
        local
    }

    /// Reads the interfaces again; keeps the last list if they cannot be read.
    pub fn refresh(&self) {
        match if_addrs::get_if_addrs() {
            Ok(interfaces) => {
                let mut addrs: Vec<IpAddr> = interfaces.iter().map(|i| i.ip()).collect();
                addrs.sort_unstable();
                addrs.dedup();
                *self.0.write().unwrap_or_else(PoisonError::into_inner) = addrs;
            }
            Err(error) => tracing::warn!(%error, "cannot read this host's interface addresses"),
        }
    }

    /// The addresses last read.
    pub fn get(&self) -> Vec<IpAddr> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Loopback, never banned: `127.0.0.0/8` and `::1`.
pub fn loopback() -> [Key; 2] {
    let v4 = Ipv4Net::new(Ipv4Addr::LOCALHOST, 8).map(|n| Key::from_net(IpNet::V4(n.trunc())));
    [
        v4.unwrap_or(Key::from_addr(IpAddr::V4(Ipv4Addr::LOCALHOST))),
        Key::from_addr(Ipv6Addr::LOCALHOST.into()),
    ]
}

/// The parts of the never-ban list.
pub struct Parts<'a> {
    /// `[safety] never_ban`.
    pub configured: &'a [Key],
    /// This host's interface addresses.
    pub local: &'a [IpAddr],
    /// The addresses the node listens on.
    pub listen: &'a [Multiaddr],
    /// Peers the swarm knows now.
    pub peers: &'a [PeerState],
    /// Admitted peers' addresses kept in the store (valid, not revoked).
    pub stored: &'a [Key],
}

/// The never-ban list from its parts: the configured networks, loopback,
/// the interface and listen addresses, the address every connected peer
/// whose hello was accepted, and which is not blocked, connects from, and
/// the stored addresses of admitted peers. Only observed addresses count
/// (connected from, or reached on), never an address a peer's hello only
/// claims: otherwise any enrolled node,
/// even one without the `allow` role, could shield an attacker's address
/// from every node's bans by claiming it. Unspecified addresses (`0.0.0.0`)
/// are left out; no entry appears twice.
pub fn never_ban_list(parts: &Parts<'_>) -> Vec<Key> {
    let mut list: Vec<Key> = parts.configured.to_vec();
    list.dedup();
    for key in loopback() {
        if !list.contains(&key) {
            list.push(key);
        }
    }
    let peer_addrs =
        parts.peers.iter().filter(|p| p.ready && !p.blocked).filter_map(|p| p.remote.as_ref());
    let found = parts
        .local
        .iter()
        .copied()
        .chain(parts.listen.iter().chain(peer_addrs).filter_map(ip_of))
        .map(Key::from_addr)
        .chain(parts.stored.iter().copied());
    for key in found {
        if !key.net().addr().is_unspecified() && !list.contains(&key) {
            list.push(key);
        }
    }
    list
}

/// Writes the addresses the swarm reports to the store; refreshes `local`
/// and prunes the store every [`REFRESH_EVERY`].
pub async fn run(
    store: Store,
    local: LocalAddrs,
    mut seen_rx: mpsc::Receiver<Seen>,
    shutdown: CancellationToken,
) {
    let mut noted: HashMap<(PublicKey, IpAddr), (Instant, u64)> = HashMap::new();
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(seen) = seen_rx.recv() => {
                let again = noted.get(&(seen.node, seen.addr)).is_none_or(|(at, until)| {
                    at.elapsed() >= NOTE_AGAIN_AFTER || *until != seen.valid_until_ms
                });
                if !again {
                    continue;
                }
                let written =
                    store.note_peer_addr(seen.node, seen.addr, now_ms(), seen.valid_until_ms).await;
                match written {
                    Ok(()) => {
                        noted.insert((seen.node, seen.addr), (Instant::now(), seen.valid_until_ms));
                    }
                    Err(error) => tracing::warn!(%error, addr = %seen.addr, "cannot keep a peer's address in the never-ban list"),
                }
            }
            _ = tick.tick() => {
                local.refresh();
                if let Err(error) = store.prune_peer_addrs(now_ms()).await {
                    tracing::warn!(%error, "cannot prune expired peers' addresses");
                }
                noted.retain(|_, (at, _)| at.elapsed() < NOTE_AGAIN_AFTER);
            }
        }
    }
}
