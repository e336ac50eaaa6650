//! The canonical byte layout shared by certificates and revocations: a writer
//! and a strict reader of big-endian integers, keys and length-prefixed text,
//! and the PEM armour around them. Decoding errors are [`DecodeError`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::key::{PUBLIC_KEY_LEN, PublicKey, SIGNATURE_LEN};

/// Why bytes or PEM text are not a well-formed certificate or revocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The PEM armour is broken.
    #[error("bad PEM armour ({reason}): copy the file again from its issuer")]
    Pem {
        /// What the PEM decoder said.
        reason: String,
    },
    /// The PEM label names another kind of item.
    #[error("PEM label is {found:?}, expected {expected:?}: pass the right file")]
    Label {
        /// The label this decoder reads.
        expected: &'static str,
        /// The label found.
        found: String,
    },
    /// The bytes end before a field is complete.
    #[error("truncated at {field}: the file is incomplete, copy it again")]
    Truncated {
        /// The field that was cut off.
        field: &'static str,
    },
    /// Bytes follow the signature.
    #[error("{count} unexpected bytes after the signature: copy the file again")]
    TrailingBytes {
        /// How many extra bytes there are.
        count: usize,
    },
    /// The format version is not one this build reads.
    #[error("unknown format version {found}: upgrade banmesh to read it")]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// A field holding a public key is not a valid key.
    #[error("invalid public key in {field}: copy the file again from its issuer")]
    Key {
        /// The field holding the key.
        field: &'static str,
    },
    /// A field is outside its allowed values.
    #[error("invalid {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The bytes decode but are not the one canonical encoding of their value.
    #[error("not in canonical form: copy the file again from its issuer")]
    NotCanonical,
}

/// Appends the fields of a canonical encoding, in order.
#[derive(Debug, Default)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    /// Starts an encoding with `prefix` (a domain separator or nothing).
    pub(crate) fn new(prefix: &[u8]) -> Self {
        Self(prefix.to_vec())
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn key(&mut self, key: &PublicKey) {
        self.0.extend_from_slice(&key.to_bytes());
    }

    /// Writes text as a big-endian u16 length and its UTF-8 bytes.
    /// Callers check the length first; longer text is cut at `u16::MAX`.
    pub(crate) fn text(&mut self, text: &str) {
        let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0
            .extend_from_slice(&text.as_bytes()[..usize::from(len)]);
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads the fields of a canonical encoding, refusing short input.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < len {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn key(&mut self, field: &'static str) -> Result<PublicKey, DecodeError> {
        let bytes = self.array::<PUBLIC_KEY_LEN>(field)?;
        PublicKey::from_bytes(&bytes).map_err(|_| DecodeError::Key { field })
    }

    /// Reads a u16-length-prefixed UTF-8 string of at most `max` bytes.
    pub(crate) fn text(&mut self, field: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        let len = usize::from(u16::from_be_bytes(self.array(field)?));
        if len > max {
            let reason = format!("{len} bytes, at most {max} allowed");
            return Err(DecodeError::Field { field, reason });
        }
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::Field {
            field,
            reason: "not UTF-8".to_owned(),
        })
    }

    pub(crate) fn signature(&mut self) -> Result<[u8; SIGNATURE_LEN], DecodeError> {
        self.array("signature")
    }

    /// Ends the reading: every byte must have been used.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

/// Wraps `bytes` in PEM armour with `label`, 64 characters a line, LF endings.
pub(crate) fn armour(label: &str, bytes: &[u8]) -> String {
    let encoded = STANDARD.encode(bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Removes the PEM armour, which must carry `label`.
pub(crate) fn unarmour(label: &'static str, text: &str) -> Result<Vec<u8>, DecodeError> {
    let (found, bytes) =
        pem_rfc7468::decode_vec(text.as_bytes()).map_err(|e| DecodeError::Pem {
            reason: e.to_string(),
        })?;
    if found != label {
        return Err(DecodeError::Label {
            expected: label,
            found: found.to_owned(),
        });
    }
    Ok(bytes)
}

/// The PEM label of `text`, if it has PEM armour.
pub fn pem_label(text: &str) -> Option<&str> {
    pem_rfc7468::decode_label(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armour_matches_the_strict_decoder() {
        for len in [1usize, 47, 48, 49, 200] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let text = armour("BANMESH TEST", &bytes);
            assert_eq!(unarmour("BANMESH TEST", &text), Ok(bytes.clone()));
            let standard =
                pem_rfc7468::encode_string("BANMESH TEST", pem_rfc7468::LineEnding::LF, &bytes)
                    .expect("encode");
            assert_eq!(text, standard);
        }
    }

    #[test]
    fn unarmour_refuses_other_labels_and_garbage() {
        let text = armour("BANMESH OTHER", b"abc");
        assert!(matches!(
            unarmour("BANMESH TEST", &text),
            Err(DecodeError::Label { .. })
        ));
        assert!(matches!(
            unarmour("BANMESH TEST", "hello"),
            Err(DecodeError::Pem { .. })
        ));
        assert_eq!(pem_label(&text), Some("BANMESH OTHER"));
        assert_eq!(pem_label("hello"), None);
    }

    #[test]
    fn reader_refuses_short_and_long_input() {
        let mut reader = Reader::new(&[0, 5, b'a']);
        assert!(matches!(
            reader.text("name", 64),
            Err(DecodeError::Truncated { .. })
        ));
        let mut reader = Reader::new(&[0, 1, b'a', 9]);
        assert_eq!(reader.text("name", 64), Ok("a"));
        assert_eq!(
            reader.finish(),
            Err(DecodeError::TrailingBytes { count: 1 })
        );
        let mut reader = Reader::new(&[0, 2, 0xff, 0xfe]);
        assert!(matches!(
            reader.text("name", 64),
            Err(DecodeError::Field { .. })
        ));
    }
}
