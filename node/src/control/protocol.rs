//! The control socket's wire format: length-prefixed, versioned JSON frames,
//! the commands a client sends and the responses a node gives.
//!
//! # Framing
//!
//! Every message is a 4-byte big-endian length followed by that many bytes of
//! JSON. A connection carries exactly one exchange:
//!
//! 1. the client sends one request frame, at most [`MAX_REQUEST_FRAME`] bytes:
//!    `{"version": 1, "command": {"cmd": "ban", "key": "192.0.2.7", ...}}`;
//! 2. the node answers with zero or more [`Frame::Chunk`] frames followed by
//!    exactly one [`Frame::Reply`] frame, each at most [`MAX_RESPONSE_FRAME`]
//!    bytes, then closes the connection.
//!
//! Only a [`Response::Records`] is sent in chunks: the node sends its records
//! in chunks of about [`CHUNK_TARGET`] bytes as it reads them from the store
//! and then a reply holding `Records([])`; the client appends the records
//! of every chunk, in order, before those of the reply (see [`Assembler`]).
//! When reading fails midway, the reply is a [`Response::Error`] instead. Every other response is a
//! single reply frame. A request whose `version` is not [`PROTOCOL_VERSION`]
//! is answered with a [`Response::Error`] naming both versions.

use banmesh_crdt::Kind;
use serde::{Deserialize, Serialize};

use super::views::{PeerView, RecordView, StatusView, TraceView};

mod frames;

pub use frames::{
    Assembler, ProtocolError, decode_request, encode_chunks, encode_request, encode_response,
    read_frame, read_response, write_frame,
};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest request frame, in bytes (1 MiB).
pub const MAX_REQUEST_FRAME: usize = 1 << 20;
/// Largest response frame, in bytes (8 MiB).
pub const MAX_RESPONSE_FRAME: usize = 8 << 20;
/// Size the node aims for when it packs records into one chunk frame.
pub const CHUNK_TARGET: usize = 1 << 20;

/// Most orders one [`Command::Issue`] may carry.
pub const MAX_ISSUE_BATCH: usize = 5_000;

/// One order of a [`Command::Issue`] batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSpec {
    /// `ban`, `unban`, `allow` or `disallow`.
    pub kind: String,
    /// The address or network, as written.
    pub key: String,
    /// How long, in ms (Ban and Allow); `None` means the configured default
    /// (for a ban, the bantime escalated by `strikes`).
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Renew until lifted (Ban and Allow).
    #[serde(default)]
    pub permanent: bool,
    /// Which repeat a ban is (1 for a first ban).
    #[serde(default = "one")]
    pub strikes: u32,
    /// The jail to record, if any.
    #[serde(default)]
    pub jail: String,
    /// Why, if known.
    #[serde(default)]
    pub reason: String,
    /// Who asked (`cli`, `NAME@ADDRESS` for a gateway client, ...).
    #[serde(default)]
    pub source: String,
    /// For a ban: leave it out when this node's own live ban on the key
    /// already lasts at least as long. A node keeps one Ban per key, so a
    /// shorter one would replace the longer and shorten it on every node.
    #[serde(default)]
    pub keep_longer: bool,
}

fn one() -> u32 {
    1
}

impl Default for OrderSpec {
    /// A first ban (strikes 1) of no key yet, for the configured bantime,
    /// with no jail, reason or source: what the wire defaults give.
    fn default() -> OrderSpec {
        OrderSpec {
            kind: Kind::Ban.as_str().to_owned(),
            key: String::new(),
            duration_ms: None,
            permanent: false,
            strikes: one(),
            jail: String::new(),
            reason: String::new(),
            source: String::new(),
            keep_longer: false,
        }
    }
}

/// What became of one order of a [`Command::Issue`] batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedView {
    /// The key as written in the order.
    pub key: String,
    /// The record's id (hex), when it was issued.
    #[serde(default)]
    pub id: Option<String>,
    /// Why it was not, otherwise.
    #[serde(default)]
    pub error: Option<String>,
    /// Why it was left out on purpose (`keep_longer`), if it was.
    #[serde(default)]
    pub skipped: Option<String>,
}

/// One request: the protocol version and the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The protocol version the client speaks ([`PROTOCOL_VERSION`]).
    pub version: u32,
    /// What the client asks.
    pub command: Command,
}

/// What a client asks the node. Keys and addresses are sent as the operator
/// wrote them; the node parses and normalises them and says what it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// The node's identity, peers, record counts and warnings.
    Status,
    /// Every peer the node knows.
    Peers,
    /// Issue a Ban on an address or network.
    Ban {
        /// The address or network, as written (`192.0.2.7`, `10.0.0.0/24`).
        key: String,
        /// How long, in ms; `None` means the configured bantime.
        #[serde(default)]
        duration_ms: Option<u64>,
        /// Renew the ban before it expires until an unban (`--for permanent`).
        #[serde(default)]
        permanent: bool,
        /// The jail to record, if any.
        #[serde(default)]
        jail: Option<String>,
        /// Why, if the operator said.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Issue an Unban on exactly this key.
    Unban {
        /// The address or network, as written.
        key: String,
    },
    /// Issue an Allow on an address or network.
    Allow {
        /// The address or network, as written.
        key: String,
        /// How long, in ms; `None` means the cluster's `max_ttl`.
        #[serde(default)]
        duration_ms: Option<u64>,
        /// Renew the allow before it expires until a disallow.
        #[serde(default)]
        permanent: bool,
    },
    /// Issue a Disallow on exactly this key.
    Disallow {
        /// The address or network, as written.
        key: String,
    },
    /// Stored records, filtered; no limit.
    Records {
        /// Only records on this address or network, and on networks covering it.
        #[serde(default)]
        ip: Option<String>,
        /// Only records issued by this origin: a certificate name or a public key.
        #[serde(default)]
        origin: Option<String>,
        /// Only records of this kind (`ban`, `unban`, `allow`, `disallow`).
        #[serde(default)]
        kind: Option<String>,
    },
    /// Every record deciding one address, and the decision.
    Trace {
        /// The address, as written.
        ip: String,
    },
    /// Reconcile now, with one peer or with every connected peer.
    Sync {
        /// The peer id to reconcile with; `None` means every connected peer.
        #[serde(default)]
        peer: Option<String>,
    },
    /// Lift blocks now: one peer (a peer id), or every blocked peer at an
    /// address.
    Unblock {
        /// A peer id, an IP address or a multiaddr, as written.
        target: String,
    },
    /// Store a revocation and spread it to the mesh.
    RevokePublish {
        /// The revocation, PEM-armoured as `banmesh keys revoke` writes it.
        pem: String,
    },
    /// Fail2Ban banned an address (from `action.d/banmesh.conf`'s actionban).
    Fail2BanBan {
        /// The address (`<ip>`).
        ip: String,
        /// The jail (`<name>`).
        jail: String,
        /// The ban's length in seconds as Fail2Ban sized it (`<bantime>`,
        /// already escalated); -1 for a ban without end.
        bantime_s: i64,
        /// Failures that led to the ban (`<failures>`).
        failures: u64,
        /// Which repeat this is (`<bancount>`).
        bancount: u32,
        /// Fail2Ban restored the ticket at start (`<restored>`).
        restored: bool,
    },
    /// Issue many records at once: one store transaction and one gossip
    /// round for the batch (the gateway's `add_ips`, `banmesh import-seed`).
    /// Each order succeeds or fails alone; at most [`MAX_ISSUE_BATCH`].
    Issue {
        /// The orders, issued in this order.
        orders: Vec<OrderSpec>,
    },
    /// Read the certificate file again (`banmesh keys install-cert` wrote
    /// it) and present it from now on, without a restart.
    ReloadCert,
    /// Fail2Ban lifted a ban (actionunban): by hand, or at its natural end.
    Fail2BanUnban {
        /// The address.
        ip: String,
        /// The jail.
        jail: String,
    },
}

/// The node's answer to one [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Response {
    /// Answers [`Command::Status`].
    Status(Box<StatusView>),
    /// Answers [`Command::Peers`].
    Peers(Vec<PeerView>),
    /// Answers a write (ban, unban, allow, disallow) once the record is stored.
    Written {
        /// The record as stored.
        record: RecordView,
        /// Sentences for the operator: the key was normalised, a covering ban
        /// remains, and so on.
        notes: Vec<String>,
    },
    /// Answers [`Command::Records`].
    Records(Vec<RecordView>),
    /// Answers [`Command::Trace`].
    Trace(TraceView),
    /// Answers [`Command::Sync`] once reconciliation finished.
    Synced {
        /// The peers reconciled with.
        peers: Vec<String>,
    },
    /// Answers [`Command::Unblock`].
    Unblocked {
        /// The peers unblocked (none when no blocked peer matched).
        peers: Vec<String>,
    },
    /// Answers [`Command::RevokePublish`].
    Revoked {
        /// The revoked node's public key.
        node: String,
        /// False when the node already held this revocation.
        new: bool,
    },
    /// Answers [`Command::Issue`]: one item per order, in order.
    Issued(Vec<IssuedView>),
    /// Answers [`Command::ReloadCert`].
    CertReloaded {
        /// The certificate's name.
        name: String,
        /// When it expires, Unix ms.
        not_after_ms: u64,
    },
    /// Nothing to do, and why (a restored ticket, a natural expiry, ...).
    Skipped {
        /// Why.
        reason: String,
    },
    /// The command failed; the message says why and what to do.
    Error {
        /// Lowercase, no trailing period.
        message: String,
    },
}

impl Response {
    /// An error response.
    pub fn error(message: impl Into<String>) -> Response {
        Response::Error { message: message.into() }
    }

    /// The variant's wire name (`status`, `records`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Response::Status(_) => "status",
            Response::Peers(_) => "peers",
            Response::Written { .. } => "written",
            Response::Records(_) => "records",
            Response::Trace(_) => "trace",
            Response::Synced { .. } => "synced",
            Response::Unblocked { .. } => "unblocked",
            Response::Revoked { .. } => "revoked",
            Response::Issued(_) => "issued",
            Response::CertReloaded { .. } => "cert_reloaded",
            Response::Skipped { .. } => "skipped",
            Response::Error { .. } => "error",
        }
    }
}

/// One response frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum Frame {
    /// Some records of a [`Response::Records`]; more frames follow.
    Chunk {
        /// The records, in order.
        records: Vec<RecordView>,
    },
    /// The last frame of a response.
    Reply {
        /// The response (for records, the records not sent in chunks).
        response: Box<Response>,
    },
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
