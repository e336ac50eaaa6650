//! The record: one signed statement by one node about one address key, its
//! canonical signed bytes (the one function that produces them), its wire
//! form, its id and its place in the total order.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::duration::FormatDuration;
use crate::hlc::Hlc;
use crate::key::Key;
use crate::params::Params;
use crate::wire::{DecodeError, Reader, check_text, put_text};

/// Domain-separation prefix of a record's signed bytes, so a record signature
/// can never be replayed as a signature over anything else banmesh signs.
pub const RECORD_DOMAIN: &[u8] = b"banmesh/record\0";
/// The encoding version this build writes and reads.
pub const RECORD_VERSION: u8 = 1;
/// Longest `jail`, in bytes.
pub const MAX_JAIL: usize = 64;
/// Longest `reason`, in bytes.
pub const MAX_REASON: usize = 512;
/// Longest `source`, in bytes.
pub const MAX_SOURCE: usize = 128;
/// Latest time a record may name (Unix ms, in the year 6429), so that every
/// timestamp, an HLC with its 16-bit counter included, fits a signed 64-bit
/// SQLite integer.
pub const MAX_TIME_MS: u64 = (1 << 47) - 1;
/// Longest wire encoding of one record, in bytes.
pub const MAX_RECORD_BYTES: usize =
    1 + 1 + 18 + 8 + 9 + 4 + (2 + MAX_JAIL) + (2 + MAX_REASON) + (2 + MAX_SOURCE) + 32 + 64;

/// What a record says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Block the key until `expires_at`.
    Ban = 1,
    /// Lift every Ban on exactly this key that is older than this record.
    Unban = 2,
    /// Never block the key (nor anything inside it) until `expires_at`.
    Allow = 3,
    /// Lift every Allow on exactly this key that is older than this record.
    Disallow = 4,
}

impl Kind {
    /// Every kind, in wire order.
    pub const ALL: [Kind; 4] = [Kind::Ban, Kind::Unban, Kind::Allow, Kind::Disallow];

    /// Whether records of this kind carry an expiry (Ban and Allow).
    pub fn expires(self) -> bool {
        matches!(self, Kind::Ban | Kind::Allow)
    }

    /// The lower-case name (`ban`, `unban`, `allow`, `disallow`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ban => "ban",
            Kind::Unban => "unban",
            Kind::Allow => "allow",
            Kind::Disallow => "disallow",
        }
    }

    /// The kind whose wire byte is `b`.
    pub fn from_byte(b: u8) -> Result<Kind, DecodeError> {
        Kind::ALL.into_iter().find(|k| *k as u8 == b).ok_or(DecodeError::UnknownKind(b))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The issuing node's ed25519 public key, as raw bytes. The `keys` crate
/// checks that it is a valid point when it verifies the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Origin(pub [u8; 32]);

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// SHA-256 of a record's signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub [u8; 32]);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Free-text context of a record, shown to operators, never used to decide.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Metadata {
    /// The Fail2Ban jail that found the address (`sshd`), or empty.
    pub jail: String,
    /// Why (`5 failures in 10m`, a gateway client's description), or empty.
    pub reason: String,
    /// Who asked: `fail2ban`, `cli`, or a gateway client's `name@address`.
    pub source: String,
}

/// Everything a record says except its signature: the part that is signed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Statement {
    /// The address or network.
    pub key: Key,
    /// What is said about it.
    pub kind: Kind,
    /// When, by the issuer's clock (see [`crate::hlc::HlcClock::issue`]).
    pub issued_at: Hlc,
    /// Unix milliseconds after which a Ban or Allow no longer holds; `None`
    /// for Unban and Disallow.
    pub expires_at: Option<u64>,
    /// For a Ban, which repeat it is (1 for a first ban); 0 otherwise.
    pub strikes: u32,
    /// Context for operators.
    pub meta: Metadata,
    /// The issuing node.
    pub origin: Origin,
}

/// Why a statement breaks a cluster-wide rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes are not a canonical record.
    #[error("malformed record: {0}")]
    Decode(#[from] DecodeError),
    /// A Ban or Allow without an expiry, or an Unban or Disallow with one.
    #[error("a {kind} record {}", if kind.expires() { "needs an expiry" } else { "takes no expiry" })]
    Expiry {
        /// The record's kind.
        kind: Kind,
    },
    /// The expiry is not after `issued_at`.
    #[error("expiry {expires_at} is not after issued_at {issued_ms}")]
    ExpiresBeforeIssue {
        /// The expiry, Unix milliseconds.
        expires_at: u64,
        /// `issued_at`'s milliseconds.
        issued_ms: u64,
    },
    /// The expiry is further than `max_ttl` after `issued_at`.
    #[error(
        "expiry is {} after issue, beyond the cluster's max_ttl of {}: a longer order is renewed",
        FormatDuration(Duration::from_millis(*ttl_ms)),
        FormatDuration(Duration::from_millis(*max_ttl_ms))
    )]
    PastMaxTtl {
        /// `expires_at - issued_at` in milliseconds.
        ttl_ms: u64,
        /// The cluster's limit in milliseconds.
        max_ttl_ms: u64,
    },
    /// `issued_at` or `expires_at` is past [`MAX_TIME_MS`].
    #[error("timestamp past the year 6429: check the issuing node's clock")]
    TimeOutOfRange,
    /// A Ban with zero strikes, or another kind with some.
    #[error("strikes must be at least 1 on a ban and 0 on any other record")]
    Strikes,
}

impl Statement {
    /// The canonical bytes the signature covers: [`RECORD_DOMAIN`], then
    /// [`Statement::encode_body`]. The only function that produces them.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_DOMAIN.len() + 128);
        out.extend_from_slice(RECORD_DOMAIN);
        self.encode_body(&mut out);
        out
    }

    /// The version byte and fields in wire order (big-endian integers,
    /// length-prefixed texts): what is on the wire before the signature.
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(RECORD_VERSION);
        out.push(self.kind as u8);
        self.key.encode(out);
        out.extend_from_slice(&self.issued_at.0.to_be_bytes());
        match self.expires_at {
            Some(at) => {
                out.push(1);
                out.extend_from_slice(&at.to_be_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.strikes.to_be_bytes());
        put_text(out, &self.meta.jail);
        put_text(out, &self.meta.reason);
        put_text(out, &self.meta.source);
        out.extend_from_slice(&self.origin.0);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Statement, DecodeError> {
        let version = r.u8()?;
        if version != RECORD_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let kind = Kind::from_byte(r.u8()?)?;
        let key = Key::decode(r)?;
        let issued_at = Hlc(r.u64()?);
        let expires_at = if r.flag("expires_at")? { Some(r.u64()?) } else { None };
        let strikes = r.u32()?;
        let meta = Metadata {
            jail: r.text("jail", MAX_JAIL)?,
            reason: r.text("reason", MAX_REASON)?,
            source: r.text("source", MAX_SOURCE)?,
        };
        let origin = Origin(r.array()?);
        let statement = Statement { key, kind, issued_at, expires_at, strikes, meta, origin };
        statement.check_shape()?;
        Ok(statement)
    }

    /// The rules that need no cluster parameter: expiry present exactly on
    /// Ban and Allow, strikes, text limits.
    fn check_shape(&self) -> Result<(), DecodeError> {
        if self.expires_at.is_some() != self.kind.expires() {
            return Err(DecodeError::BadField("expires_at"));
        }
        if (self.kind == Kind::Ban) != (self.strikes > 0) {
            return Err(DecodeError::BadField("strikes"));
        }
        check_text("jail", &self.meta.jail, MAX_JAIL)?;
        check_text("reason", &self.meta.reason, MAX_REASON)?;
        check_text("source", &self.meta.source, MAX_SOURCE)
    }

    /// Checks every cluster-wide rule a statement alone can break; signature,
    /// certificate and role are checked by the `keys` crate.
    pub fn validate(&self, params: &Params) -> Result<(), RecordError> {
        if self.expires_at.is_some() != self.kind.expires() {
            return Err(RecordError::Expiry { kind: self.kind });
        }
        if (self.kind == Kind::Ban) != (self.strikes > 0) {
            return Err(RecordError::Strikes);
        }
        self.check_shape()?;
        if self.issued_at.millis() > MAX_TIME_MS || self.expires_at.is_some_and(|e| e > MAX_TIME_MS)
        {
            return Err(RecordError::TimeOutOfRange);
        }
        if let Some(expires_at) = self.expires_at {
            let issued_ms = self.issued_at.millis();
            if expires_at <= issued_ms {
                return Err(RecordError::ExpiresBeforeIssue { expires_at, issued_ms });
            }
            let ttl_ms = expires_at - issued_ms;
            if ttl_ms > params.max_ttl_ms {
                return Err(RecordError::PastMaxTtl { ttl_ms, max_ttl_ms: params.max_ttl_ms });
            }
        }
        Ok(())
    }

    /// When the statement stops acting: `expires_at` for Ban and Allow,
    /// `issued_at` for Unban and Disallow (Unix milliseconds).
    pub fn end_ms(&self) -> u64 {
        self.expires_at.unwrap_or(self.issued_at.millis())
    }
}

/// A signed statement. Equality and order are by content; the id is kept
/// beside the statement so that ordering never rehashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    statement: Statement,
    signature: [u8; 64],
    id: Id,
}

impl Record {
    /// Joins a statement and a signature over its [`Statement::signed_bytes`].
    /// The signature is not checked here: that is the `keys` crate's work.
    pub fn new(statement: Statement, signature: [u8; 64]) -> Record {
        let id = Id(Sha256::digest(statement.signed_bytes()).into());
        Record { statement, signature, id }
    }

    /// The signed statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// The ed25519 signature over [`Statement::signed_bytes`].
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// SHA-256 of the signed bytes.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The key.
    pub fn key(&self) -> Key {
        self.statement.key
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.statement.kind
    }

    /// The issuing node.
    pub fn origin(&self) -> Origin {
        self.statement.origin
    }

    /// When it was issued.
    pub fn issued_at(&self) -> Hlc {
        self.statement.issued_at
    }

    /// The total order every node uses: (`issued_at`, `origin`, `id`), with
    /// the signature bytes last so that two signatures over one statement
    /// (possible only for the key holder) still merge to the same bytes.
    pub fn order_cmp(&self, other: &Record) -> Ordering {
        (self.issued_at(), self.origin(), self.id, &self.signature).cmp(&(
            other.issued_at(),
            other.origin(),
            other.id,
            &other.signature,
        ))
    }

    /// Appends the wire form: the body (version, fields, origin) and the
    /// 64-byte signature. Self-delimiting, so records can be concatenated.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.statement.encode_body(out);
        out.extend_from_slice(&self.signature);
    }

    /// The wire form of this one record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        self.encode_into(&mut out);
        out
    }

    /// Reads one record from the front of `r`, leaving the rest.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Record, DecodeError> {
        let statement = Statement::decode_body(r)?;
        let signature = r.array()?;
        Ok(Record::new(statement, signature))
    }

    /// Decodes exactly one record; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
        let mut r = Reader::new(bytes);
        let record = Record::decode_from(&mut r)?;
        r.finish()?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests;
