//! What the node shows through the control socket: plain serde views of its
//! status, peers and records. Boundary types: changing a field changes the
//! protocol. Times are Unix milliseconds; keys and ids are lowercase hex.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The node's state, as `banmesh status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    /// The node's libp2p peer id (derived from its node key).
    pub peer_id: String,
    /// The node's public key, hex: the `origin` of the records it issues.
    pub node_key: String,
    /// The name in the node's certificate; `None` when it has none.
    pub name: Option<String>,
    /// When the node's certificate expires; `None` when it has none.
    pub certificate_expires_at_ms: Option<u64>,
    /// The cluster public key the node trusts, hex.
    pub cluster_key: String,
    /// The multiaddrs the mesh listener is bound to.
    pub listen_addrs: Vec<String>,
    /// Every peer the node knows.
    pub peers: Vec<PeerView>,
    /// Stored records by kind (`ban`, `unban`, `allow`, `disallow`).
    pub record_counts: BTreeMap<String, u64>,
    /// Refused messages, records and connections since start, by reason.
    pub rejects: BTreeMap<String, u64>,
    /// Received records left out since start, by reason (`revoked origin`,
    /// `unknown certificate`, ...): each record's own fault, which never
    /// keeps the records beside it out.
    #[serde(default)]
    pub skipped: BTreeMap<String, u64>,
    /// Networks never banned locally: configured, the node's own and its
    /// peers' addresses.
    pub never_ban: Vec<String>,
    /// False when the node only observes (`enforce = false`).
    pub enforce: bool,
    /// The median clock offset of the peers, in ms (theirs minus ours);
    /// `None` before any hello.
    pub clock_offset_ms: Option<i64>,
    /// Problems the operator should know about, one sentence each.
    pub warnings: Vec<String>,
    /// The Fail2Ban applier's last round; `None` when `[fail2ban] apply`
    /// is off.
    #[serde(default)]
    pub fail2ban: Option<Fail2BanView>,
    /// The nftables backend; `None` when `[enforce] backends` leaves it out.
    #[serde(default)]
    pub nftables: Option<Box<NftablesView>>,
    /// The REST gateway, when it is on.
    #[serde(default)]
    pub gateway: Option<GatewayView>,
    /// The state digest (hex) at the start of the current minute: two
    /// nodes holding the same replicated set show the same digest. `None`
    /// while the set is first read at start or is streamed in (a join).
    #[serde(default)]
    pub digest: Option<String>,
    /// Peers admitted earlier in this run that are not connected now (cut
    /// off, stopped or gone): a partition while the list is not empty.
    #[serde(default)]
    pub unreachable: Vec<UnreachableView>,
    /// The gossip mesh (its links and low watermark) and discovery
    /// (Kademlia's routing table, mDNS).
    #[serde(default)]
    pub discovery: Box<crate::mesh::discovery::DiscoveryView>,
    /// What the scheduled GC collected.
    #[serde(default)]
    pub gc: GcView,
    /// Sync sessions since start, and those running with their progress.
    #[serde(default)]
    pub sync: Box<SyncView>,
    /// What `banmesh status --check` reports, worst first; empty when the
    /// node is healthy.
    #[serde(default)]
    pub checks: Vec<CheckView>,
}

/// One problem `banmesh status --check` reports: how bad, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    /// How bad.
    pub level: CheckLevel,
    /// Why, in one line.
    pub message: String,
}

/// How bad a problem is, as Nagios counts (exit 1 or 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckLevel {
    /// Works, but look soon.
    Warning,
    /// Does not work as it should.
    Critical,
}

/// A peer the node had and lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreachableView {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// The name in its certificate.
    pub name: Option<String>,
    /// When anything was last heard from it.
    pub last_seen_ms: Option<u64>,
}

/// What the Fail2Ban applier has done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fail2BanView {
    /// Addresses and networks the `banmesh` jail holds for the mesh.
    pub applied: u64,
    /// Bans Fail2Ban made that the node had missed, published since start.
    pub published: u64,
    /// Mesh entries unbanned from the jail by hand: local pardons standing.
    #[serde(default)]
    pub pardoned: u64,
}

/// What the nftables backend holds in the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftablesView {
    /// The table, `inet NAME`.
    pub table: String,
    /// Each set: its elements, and what its counter dropped.
    pub sets: Vec<NftSetView>,
    /// When the kernel was last read and repaired (Unix ms).
    pub last_reconcile_ms: Option<u64>,
    /// The last failure, while it lasts.
    pub last_error: Option<String>,
    /// Entries deleted from a drop set by hand: local pardons standing.
    #[serde(default)]
    pub pardoned: u64,
}

/// One set of the nftables table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftSetView {
    /// Its name.
    pub name: String,
    /// Elements banmesh holds in it.
    pub elements: u64,
    /// Packets its counter dropped (at the last reconcile; 0 for allow sets).
    pub packets: u64,
    /// Bytes its counter dropped.
    pub bytes: u64,
}

/// The REST gateway, as `banmesh status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayView {
    /// The address it listens on.
    pub listen: String,
    /// Client tokens in force.
    pub tokens: usize,
    /// Why the last SIGHUP reload failed, until one succeeds.
    #[serde(default)]
    pub last_reload_error: Option<String>,
}

/// What the scheduled GC collected, as `banmesh status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcView {
    /// When GC last ran (unix ms); `None` before its first run.
    pub last_run_ms: Option<u64>,
    /// Records the last run deleted.
    pub last_collected: u64,
    /// Records deleted since the node started.
    pub total_collected: u64,
}

/// Sync sessions, as `banmesh status` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncView {
    /// Sessions this node opened since start.
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
    /// Sessions running now.
    pub running: Vec<SyncSessionView>,
}

/// One running sync session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSessionView {
    /// The other side's PeerId.
    pub peer_id: String,
    /// `initiator` or `responder`.
    pub role: String,
    /// Streaming the whole set (else reconciling).
    pub stream: bool,
    /// Records moved so far.
    pub records: u64,
    /// Bytes moved so far.
    pub bytes: u64,
    /// Records the session will move, when known.
    pub total: Option<u64>,
    /// Seconds left at the rate so far, when the total is known.
    pub eta_s: Option<u64>,
}

/// Where the node stands with one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Connected, its hello not yet validated: its gossip is ignored.
    Pending,
    /// Connected with a valid hello.
    Connected,
    /// Known (configured or learnt) but not connected.
    Disconnected,
    /// Refused for a while (no valid hello, too many rejects, revoked).
    Blocked,
}

impl PeerState {
    /// The lowercase name (`connected`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Pending => "pending",
            PeerState::Connected => "connected",
            PeerState::Disconnected => "disconnected",
            PeerState::Blocked => "blocked",
        }
    }
}

/// One peer, as `banmesh peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    /// The peer's libp2p peer id.
    pub peer_id: String,
    /// The name in its certificate, once its hello was validated.
    pub name: Option<String>,
    /// Where the node stands with it.
    pub state: PeerState,
    /// The addresses the node knows for it.
    pub addrs: Vec<String>,
    /// When the last reconciliation with it finished.
    pub last_sync_ms: Option<u64>,
    /// Its clock minus ours, in ms, measured by the hello.
    pub clock_offset_ms: Option<i64>,
}

/// One stored record, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordView {
    /// The canonical address or network (`192.0.2.0/24`, `2001:db8::1`).
    pub key: String,
    /// `ban`, `unban`, `allow` or `disallow`.
    pub kind: String,
    /// The name in the origin's certificate, when the node holds one.
    pub origin_name: Option<String>,
    /// The issuing node's public key, hex.
    pub origin_key: String,
    /// The wall-clock part of `issued_at`.
    pub issued_at_ms: u64,
    /// The full hybrid logical clock reading, `millis.counter`.
    pub issued_at: String,
    /// When a ban or allow stops holding; `None` for unban and disallow.
    pub expires_at_ms: Option<u64>,
    /// For a ban, which repeat it is; 0 otherwise.
    pub strikes: u32,
    /// The Fail2Ban jail, or empty.
    pub jail: String,
    /// Why, or empty.
    pub reason: String,
    /// Who asked (`fail2ban`, `cli`, a gateway client).
    pub source: String,
    /// The record id (SHA-256 of its signed bytes), hex.
    pub id: String,
    /// Whether it counts: its origin holds a certificate valid at
    /// `issued_at` with the role it needs, and is not revoked.
    pub valid: bool,
    /// When this node stored it; `None` when unknown.
    pub arrived_at_ms: Option<u64>,
    /// The peer it came from (`None` when issued here or unknown).
    pub arrived_from: Option<String>,
}

/// One record in a trace, with whether it decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEntry {
    /// The record.
    #[serde(flatten)]
    pub record: RecordView,
    /// True for the records that decide the address now (the greatest live
    /// allow or ban that wins, or the unban/disallow that lifted one).
    pub decides: bool,
}

/// Everything that decides one address, as `banmesh trace` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceView {
    /// The canonical address traced.
    pub address: String,
    /// Every record on the address and on every network covering it,
    /// narrowest key first.
    pub records: Vec<TraceEntry>,
    /// The decision in words (`banned by web1's ban on 10.0.0.0/24`,
    /// `allowed`, `not banned`, `banned, but never banned locally`).
    pub decision: String,
    /// Until when the decision holds, when it is a live ban or allow.
    pub until_ms: Option<u64>,
    /// What this host's backends hold for it: whether the kernel's sets
    /// or the Fail2Ban jail hold it, and local pardons.
    #[serde(default)]
    pub enforced: Vec<String>,
}
