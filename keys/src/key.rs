//! Ed25519 keys in banmesh's own types: [`PublicKey`] (hex, short form, strict
//! verification, SPKI PEM) and [`SecretKey`] (redacted, zeroized, PKCS#8 PEM).
//! Node keys and the cluster key are the same types; only their role differs.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// Length of a public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// Why a key could not be made, read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not 64 hexadecimal characters.
    #[error("invalid public key {text:?}: write it as 64 hexadecimal characters")]
    Hex {
        /// The text as given.
        text: String,
    },
    /// The bytes are not the canonical encoding of a point on the curve.
    #[error("invalid public key: the bytes are not a canonical ed25519 point")]
    Point,
    /// The point has small order: a key anyone could forge signatures for.
    #[error("invalid public key: it is a weak (small-order) point and can never be trusted")]
    Weak,
    /// A signature did not verify under the key.
    #[error("signature does not verify under key {key}")]
    BadSignature {
        /// The short form of the key.
        key: String,
    },
    /// The operating system gave no random bytes.
    #[error("cannot read random bytes from the operating system: {reason}")]
    Random {
        /// What the operating system said.
        reason: String,
    },
    /// The text is not a PKCS#8 `PRIVATE KEY` PEM holding an ed25519 key.
    #[error("not an ed25519 secret key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----): {reason}")]
    SecretPem {
        /// What the decoder said.
        reason: String,
    },
    /// The text is not an SPKI `PUBLIC KEY` PEM holding an ed25519 key.
    #[error("not an ed25519 public key in SPKI PEM (-----BEGIN PUBLIC KEY-----): {reason}")]
    PublicPem {
        /// What the decoder said.
        reason: String,
    },
}

/// An ed25519 public key: a node's identity or the cluster's trust anchor.
///
/// Holds the 32 bytes of a canonical, non-weak point (checked when made), so
/// it is small to copy and store; compared, ordered and hashed by those bytes.
/// `Display` and `FromStr` use 64 lowercase hex characters; [`PublicKey::short`]
/// gives 8 for logs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Reads a key from its 32 bytes, refusing non-canonical and weak points.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::Point)?;
        if key.to_edwards().compress().to_bytes() != *bytes {
            return Err(KeyError::Point);
        }
        if key.is_weak() {
            return Err(KeyError::Weak);
        }
        Ok(Self(*bytes))
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0
    }

    /// The key's 32 bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// The first 8 hex characters, for logs and messages.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Checks `signature` over `msg` (strict: no malleable or weak signatures).
    pub fn verify(&self, msg: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Result<(), KeyError> {
        let bad = || KeyError::BadSignature { key: self.short() };
        // The bytes were checked when the key was made, so this decompression succeeds.
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| bad())?;
        key.verify_strict(msg, &Signature::from_bytes(signature)).map_err(|_| bad())
    }

    /// The key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> Result<String, KeyError> {
        let pem_error = |reason: String| KeyError::PublicPem { reason };
        VerifyingKey::from_bytes(&self.0)
            .map_err(|e| pem_error(e.to_string()))?
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| pem_error(e.to_string()))
    }

    /// Reads a key from SPKI PEM, with the same checks as [`PublicKey::from_bytes`].
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_public_key_pem(text)
            .map_err(|e| KeyError::PublicPem { reason: e.to_string() })?;
        Self::from_bytes(&key.to_bytes())
    }
}

/// A map keyed by keys can be searched by a record's origin bytes without
/// reading the point (two field inversions): the derived `Eq`, `Ord` and
/// `Hash` are those of the bytes.
impl std::borrow::Borrow<[u8; PUBLIC_KEY_LEN]> for PublicKey {
    fn borrow(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex_error = || KeyError::Hex { text: text.to_owned() };
        if text.len() != 2 * PUBLIC_KEY_LEN || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(hex_error());
        }
        let mut bytes = [0u8; PUBLIC_KEY_LEN];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| hex_error())?;
        Self::from_bytes(&bytes)
    }
}

/// An ed25519 secret key. Never printed, never cloned, zeroized on drop.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// Makes a new key from 32 bytes of operating-system randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Random { reason: e.to_string() })?;
        Ok(Self::from_bytes(&seed))
    }

    /// Makes the key whose seed is `seed` (for tests and key import).
    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// The 32-byte seed, for handing the same identity to libp2p; zeroized
    /// on drop.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(msg).to_bytes()
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), zeroized on drop.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::SecretPem { reason: e.to_string() })
    }

    /// Reads a key from PKCS#8 PEM; a public key inside must match the secret.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(text)
            .map_err(|e| KeyError::SecretPem { reason: e.to_string() })?;
        let secret = Self(key);
        // Refuse a secret whose public half is a key nobody may trust.
        PublicKey::from_bytes(&secret.public().to_bytes())?;
        Ok(secret)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted>, public {})", self.public().short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(seed: u8) -> SecretKey {
        SecretKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn display_and_from_str_round_trip() {
        let public = secret(1).public();
        let text = public.to_string();
        assert_eq!(text.len(), 64);
        assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(text.parse::<PublicKey>(), Ok(public));
        assert_eq!(public.short(), text[..8]);
        assert_eq!(PublicKey::from_bytes(&public.to_bytes()), Ok(public));
    }

    #[test]
    fn from_str_refuses_bad_text() {
        let upper = secret(1).public().to_string().to_uppercase();
        for bad in ["", "abc", &"zz".repeat(32), &upper, &"00".repeat(33)] {
            assert!(matches!(bad.parse::<PublicKey>(), Err(KeyError::Hex { .. })), "{bad}");
        }
    }

    #[test]
    fn from_bytes_refuses_invalid_and_weak_points() {
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(PublicKey::from_bytes(&off_curve), Err(KeyError::Point));
        // The identity point (y = 1) has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::from_bytes(&identity), Err(KeyError::Weak));
        // y = p + 1 is a non-canonical encoding of the identity.
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        assert_eq!(PublicKey::from_bytes(&non_canonical), Err(KeyError::Point));
    }

    #[test]
    fn sign_and_verify() {
        let key = secret(7);
        let signature = key.sign(b"hello");
        assert_eq!(key.public().verify(b"hello", &signature), Ok(()));
        assert!(matches!(
            key.public().verify(b"hellp", &signature),
            Err(KeyError::BadSignature { .. })
        ));
        assert!(secret(8).public().verify(b"hello", &signature).is_err());
    }

    #[test]
    fn generate_makes_distinct_keys() {
        let a = SecretKey::generate().expect("random");
        let b = SecretKey::generate().expect("random");
        assert_ne!(a.public(), b.public());
    }

    #[test]
    fn pem_round_trips() {
        let key = secret(3);
        let pem = key.to_pem().expect("encode");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(SecretKey::from_pem(&pem).expect("decode").public(), key.public());
        let public_pem = key.public().to_pem().expect("encode");
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&public_pem), Ok(key.public()));
        assert!(matches!(PublicKey::from_pem(&pem), Err(KeyError::PublicPem { .. })));
        assert!(matches!(SecretKey::from_pem(&public_pem), Err(KeyError::SecretPem { .. })));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let key = secret(9);
        let shown = format!("{key:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(&hex::encode([9u8; 32])));
        assert!(!shown.contains(&hex::encode(key.0.to_bytes())));
    }

    #[test]
    fn ordering_follows_bytes() {
        let (a, b) = (secret(1).public(), secret(2).public());
        assert_eq!(a.cmp(&b), a.to_bytes().cmp(&b.to_bytes()));
    }
}
