//! The canonical byte layout shared by certificates and revocations: what
//! [`banmesh_crdt::wire`] lacks (public keys, PEM labels) and the errors of
//! decoding them. Decoding errors are [`DecodeError`].

use banmesh_crdt::wire::Reader;

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
    /// The bytes are truncated, too long, of an unknown version, or hold an
    /// oversized or unprintable text field.
    #[error(transparent)]
    Bytes(#[from] banmesh_crdt::DecodeError),
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

/// Reads a public key, refusing bytes that are not a valid key.
pub(crate) fn read_key(
    input: &mut Reader<'_>,
    field: &'static str,
) -> Result<PublicKey, DecodeError> {
    let bytes = input.array::<PUBLIC_KEY_LEN>()?;
    PublicKey::from_bytes(&bytes).map_err(|_| DecodeError::Key { field })
}

/// Reads a signed encoding: the body with `read_body`, then the signature,
/// and nothing after it.
pub(crate) fn read_signed<T>(
    bytes: &[u8],
    read_body: impl FnOnce(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<(T, [u8; SIGNATURE_LEN]), DecodeError> {
    let mut input = Reader::new(bytes);
    let body = read_body(&mut input)?;
    let signature = input.array()?;
    input.finish()?;
    Ok((body, signature))
}

/// Removes the PEM armour, which must carry `label`.
pub(crate) fn unarmour(label: &'static str, text: &str) -> Result<Vec<u8>, DecodeError> {
    let (found, bytes) = pem_rfc7468::decode_vec(text.as_bytes())
        .map_err(|e| DecodeError::Pem { reason: e.to_string() })?;
    if found != label {
        return Err(DecodeError::Label { expected: label, found: found.to_owned() });
    }
    Ok(bytes)
}

/// The PEM label of `text`, if it has PEM armour.
pub fn pem_label(text: &str) -> Option<&str> {
    pem_rfc7468::decode_label(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use banmesh_crdt::DecodeError as BytesError;
    use pem_rfc7468::LineEnding;

    use super::*;

    fn armour(label: &str, bytes: &[u8]) -> String {
        pem_rfc7468::encode_string(label, LineEnding::LF, bytes).expect("encode")
    }

    #[test]
    fn armour_matches_the_strict_decoder() {
        for len in [1usize, 47, 48, 49, 200] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let text = armour("BANMESH TEST", &bytes);
            assert_eq!(unarmour("BANMESH TEST", &text), Ok(bytes.clone()));
            assert!(text.ends_with("-----END BANMESH TEST-----\n"), "{text}");
            assert!(text.lines().all(|line| line.len() <= 64), "{text}");
        }
    }

    #[test]
    fn unarmour_refuses_other_labels_and_garbage() {
        let text = armour("BANMESH OTHER", b"abc");
        assert!(matches!(unarmour("BANMESH TEST", &text), Err(DecodeError::Label { .. })));
        assert!(matches!(unarmour("BANMESH TEST", "hello"), Err(DecodeError::Pem { .. })));
        assert_eq!(pem_label(&text), Some("BANMESH OTHER"));
        assert_eq!(pem_label("hello"), None);
    }

    #[test]
    fn reader_refuses_short_and_long_input() {
        let mut reader = Reader::new(&[0, 5, b'a']);
        assert_eq!(reader.text("name", 64), Err(BytesError::Truncated));
        let mut reader = Reader::new(&[0, 1, b'a', 9]);
        assert_eq!(reader.text("name", 64), Ok("a".to_owned()));
        assert_eq!(reader.finish(), Err(BytesError::TrailingBytes));
        let mut reader = Reader::new(&[0, 2, 0xff, 0xfe]);
        assert_eq!(reader.text("name", 64), Err(BytesError::BadText("name")));
        let mut reader = Reader::new(&[0, 65]);
        assert_eq!(reader.text("name", 64), Err(BytesError::Oversize { field: "name", max: 64 }));
    }

    #[test]
    fn byte_errors_convert_and_keep_their_message() {
        let error = DecodeError::from(BytesError::UnknownVersion(2));
        assert_eq!(error, DecodeError::Bytes(BytesError::UnknownVersion(2)));
        assert_eq!(error.to_string(), BytesError::UnknownVersion(2).to_string());
    }

    #[test]
    fn read_key_refuses_short_and_invalid_keys() {
        let key = crate::key::SecretKey::from_bytes(&[1; 32]).public();
        let mut reader = Reader::new(key.as_bytes());
        assert_eq!(read_key(&mut reader, "node key"), Ok(key));
        let mut reader = Reader::new(&[0; 31]);
        assert_eq!(
            read_key(&mut reader, "node key"),
            Err(DecodeError::Bytes(BytesError::Truncated))
        );
        // The identity point has small order: never a valid key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut reader = Reader::new(&identity);
        assert_eq!(read_key(&mut reader, "node key"), Err(DecodeError::Key { field: "node key" }));
    }
}
