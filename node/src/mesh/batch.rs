//! The gossip message: a batch of records plus the certificates of their
//! origins (and any revocations being spread), in one canonical, strictly
//! decoded encoding of at most 64 KiB.

use banmesh_crdt::wire::Reader;
use banmesh_crdt::{DecodeError, Origin, Record};
use banmesh_keys::{Certificate, Revocation};

/// Largest gossip message, in bytes (DESIGN.md: messages ≤ 64 KiB).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The batch encoding version.
const VERSION: u8 = 1;

/// Records and the certificates that vouch for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Certificates of the records' origins.
    pub certs: Vec<Certificate>,
    /// Revocations being spread (a batch may hold only these).
    pub revocations: Vec<Revocation>,
    /// The records.
    pub records: Vec<Record>,
}

/// Why bytes are not a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Larger than [`MAX_MESSAGE`].
    #[error("message of {0} bytes is over the 64 KiB limit")]
    Oversize(usize),
    /// The framing or a record is malformed.
    #[error("malformed batch: {0}")]
    Decode(#[from] DecodeError),
    /// A certificate inside is malformed.
    #[error("malformed certificate in batch: {0}")]
    Cert(String),
    /// A revocation inside is malformed.
    #[error("malformed revocation in batch: {0}")]
    Revocation(String),
    /// A batch with nothing in it.
    #[error("empty batch")]
    Empty,
}

impl Batch {
    /// A batch of records with the certificates that vouch for them.
    pub fn of_records(certs: Vec<Certificate>, records: Vec<Record>) -> Batch {
        Batch { certs, revocations: Vec::new(), records }
    }

    /// The canonical bytes: version; certificate count (u16) and each
    /// certificate as a u16 length and its bytes; revocations the same way;
    /// record count (u16) and the records back to back.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        let put_items = |items: Vec<Vec<u8>>, out: &mut Vec<u8>| {
            out.extend_from_slice(&(items.len() as u16).to_be_bytes());
            for bytes in items {
                out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                out.extend_from_slice(&bytes);
            }
        };
        put_items(self.certs.iter().map(Certificate::to_bytes).collect(), &mut out);
        put_items(self.revocations.iter().map(Revocation::to_bytes).collect(), &mut out);
        out.extend_from_slice(&(self.records.len() as u16).to_be_bytes());
        for record in &self.records {
            record.encode_into(&mut out);
        }
        out
    }

    /// Decodes strictly: size, version, counts, every certificate and record,
    /// no trailing bytes, at least one record.
    pub fn decode(bytes: &[u8]) -> Result<Batch, BatchError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(BatchError::Oversize(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnknownVersion(version).into());
        }
        let mut certs = Vec::new();
        for _ in 0..r.u16()? {
            let len = usize::from(r.u16()?);
            let cert = Certificate::from_bytes(r.take(len)?)
                .map_err(|e| BatchError::Cert(e.to_string()))?;
            certs.push(cert);
        }
        let mut revocations = Vec::new();
        for _ in 0..r.u16()? {
            let len = usize::from(r.u16()?);
            let revocation = Revocation::from_bytes(r.take(len)?)
                .map_err(|e| BatchError::Revocation(e.to_string()))?;
            revocations.push(revocation);
        }
        let record_count = r.u16()?;
        if record_count == 0 && revocations.is_empty() && certs.is_empty() {
            return Err(BatchError::Empty);
        }
        let mut records = Vec::with_capacity(usize::from(record_count).min(512));
        for _ in 0..record_count {
            records.push(Record::decode_from(&mut r)?);
        }
        r.finish()?;
        Ok(Batch { certs, revocations, records })
    }
}

/// Packs records into messages of at most [`MAX_MESSAGE`] bytes, each
/// carrying the certificates (from `cert_of`) of the origins in it.
pub fn pack(records: Vec<Record>, cert_of: impl Fn(Origin) -> Option<Certificate>) -> Vec<Vec<u8>> {
    const HEADER: usize = 1 + 2 + 2 + 2;
    let mut messages = Vec::new();
    let mut batch = Batch::of_records(Vec::new(), Vec::new());
    let mut size = HEADER;
    for record in records {
        let origin = record.origin();
        let has_cert = |b: &Batch| b.certs.iter().any(|c| c.node().to_bytes() == origin.0);
        let mut cert = if has_cert(&batch) { None } else { cert_of(origin) };
        let cert_size = |c: &Option<Certificate>| c.as_ref().map_or(0, |c| 2 + c.to_bytes().len());
        let record_size = record.encode().len();
        let full = size + record_size + cert_size(&cert) > MAX_MESSAGE
            || batch.records.len() == usize::from(u16::MAX);
        if full && !batch.records.is_empty() {
            messages.push(
                std::mem::replace(&mut batch, Batch::of_records(Vec::new(), Vec::new())).encode(),
            );
            size = HEADER;
            if cert.is_none() {
                cert = cert_of(origin);
            }
        }
        size += record_size + cert_size(&cert);
        batch.certs.extend(cert);
        batch.records.push(record);
    }
    if !batch.records.is_empty() {
        messages.push(batch.encode());
    }
    messages
}
