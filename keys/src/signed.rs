//! What certificates and revocations share: a body the cluster key signs
//! under a domain prefix, its canonical bytes (strictly decoded: decode,
//! re-encode, compare), its PEM armour, its id and its signature check.

use banmesh_crdt::wire::Reader;
use pem_rfc7468::LineEnding;
use sha2::{Digest, Sha256};

use crate::key::{PublicKey, SIGNATURE_LEN, SecretKey};
use crate::wire::{DecodeError, read_signed, unarmour};

/// The errors a signed object reports in its own words.
pub(crate) trait SignedError: From<DecodeError> {
    /// The object names `found` as its cluster key, but `expected` is trusted.
    fn wrong_cluster(expected: PublicKey, found: PublicKey) -> Self;
    /// The signature does not cover the bytes.
    fn tampered() -> Self;
    /// The PEM encoder refused, saying `reason`.
    fn pem(reason: String) -> Self;
}

/// The signed fields of a cluster-signed object.
pub(crate) trait SignedBody: Sized {
    /// Prefixed to the canonical bytes before signing, never sent.
    const DOMAIN: &'static [u8];
    /// The PEM label of the object.
    const PEM_LABEL: &'static str;
    /// The object's error type.
    type Error: SignedError;

    /// Appends the body as sent (version first). The one function that lays
    /// out the object's fields.
    fn write(&self, out: &mut Vec<u8>);

    /// Reads a body written by [`SignedBody::write`], checking every field.
    fn read(input: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The cluster key the body names as its signer.
    fn cluster(&self) -> &PublicKey;

    /// The bytes the signature covers: the domain prefix, then the body as sent.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Self::DOMAIN.to_vec();
        self.write(&mut out);
        out
    }
}

/// A body and the cluster's signature over its signed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signed<B> {
    /// The signed fields.
    pub(crate) body: B,
    /// The cluster's signature over `body.signed_bytes()`.
    pub(crate) signature: [u8; SIGNATURE_LEN],
}

impl<B: SignedBody> Signed<B> {
    /// Signs `body` with the cluster's secret key.
    pub(crate) fn issue(cluster_secret: &SecretKey, body: B) -> Self {
        let signature = cluster_secret.sign(&body.signed_bytes());
        Signed { body, signature }
    }

    /// The bytes as sent: the signed body without the domain prefix, then the signature.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.body.write(&mut out);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Reads strictly: every field checked, no trailing bytes, and the input
    /// must be exactly the re-encoding of what was read. The signature is not
    /// checked here.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, B::Error> {
        let (body, signature) = read_signed(bytes, B::read)?;
        let signed = Signed { body, signature };
        if signed.to_bytes() != bytes {
            return Err(DecodeError::NotCanonical.into());
        }
        Ok(signed)
    }

    /// The object in PEM armour under [`SignedBody::PEM_LABEL`].
    pub(crate) fn to_pem(&self) -> Result<String, B::Error> {
        pem_rfc7468::encode_string(B::PEM_LABEL, LineEnding::LF, &self.to_bytes())
            .map_err(|e| B::Error::pem(e.to_string()))
    }

    /// Reads from PEM armour, as strictly as [`Signed::from_bytes`].
    pub(crate) fn from_pem(text: &str) -> Result<Self, B::Error> {
        Self::from_bytes(&unarmour(B::PEM_LABEL, text)?)
    }

    /// SHA-256 of the signed bytes (domain prefix included).
    pub(crate) fn id(&self) -> [u8; 32] {
        Sha256::digest(self.body.signed_bytes()).into()
    }

    /// Checks that the body names `cluster` and that `cluster` signed it.
    pub(crate) fn verify(&self, cluster: &PublicKey) -> Result<(), B::Error> {
        let found = *self.body.cluster();
        if found != *cluster {
            return Err(B::Error::wrong_cluster(*cluster, found));
        }
        cluster.verify(&self.body.signed_bytes(), &self.signature).map_err(|_| B::Error::tampered())
    }
}
