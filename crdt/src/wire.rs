//! Byte-level helpers for banmesh's canonical encodings: a bounds-checked
//! reader and the decode errors every strict decoder in the workspace shares.

/// Why bytes are not a canonical encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before the encoding does.
    #[error("truncated: the bytes end before the encoding does")]
    Truncated,
    /// Bytes remain after a complete encoding.
    #[error("trailing bytes after the end of the encoding")]
    TrailingBytes,
    /// The version byte is one this build does not know.
    #[error("unknown encoding version {0}: upgrade banmesh on this node")]
    UnknownVersion(u8),
    /// The kind byte names no kind.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// The address family or prefix length is invalid.
    #[error("invalid address key")]
    BadKey,
    /// The key has host bits set or is an IPv4-mapped IPv6 network.
    #[error("non-canonical address key (host bits set or IPv4-mapped)")]
    NonCanonicalKey,
    /// A text field is longer than its limit.
    #[error("field {field} is longer than {max} bytes")]
    Oversize {
        /// The field.
        field: &'static str,
        /// Its limit in bytes.
        max: usize,
    },
    /// A text field is not UTF-8 or holds control characters.
    #[error("field {0} is not printable UTF-8")]
    BadText(&'static str),
    /// A flag byte is neither 0 nor 1, or disagrees with the record's kind.
    #[error("field {0} is invalid for this kind of record")]
    BadField(&'static str),
}

/// A cursor over a byte slice whose every read is bounds-checked.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() { Ok(()) } else { Err(DecodeError::TrailingBytes) }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A big-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A flag byte: 0 or 1, nothing else.
    pub fn flag(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadField(field)),
        }
    }

    /// A text of at most `max` bytes after a u16 length, printable UTF-8.
    pub fn text(&mut self, field: &'static str, max: usize) -> Result<String, DecodeError> {
        let len = usize::from(self.u16()?);
        if len > max {
            return Err(DecodeError::Oversize { field, max });
        }
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::BadText(field))?;
        check_text(field, text, max)?;
        Ok(text.to_owned())
    }
}

/// Checks a text field: at most `max` bytes, no control characters.
pub fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), DecodeError> {
    if text.len() > max {
        return Err(DecodeError::Oversize { field, max });
    }
    if text.chars().any(char::is_control) {
        return Err(DecodeError::BadText(field));
    }
    Ok(())
}

/// Appends a text field as a u16 length and its bytes. The caller has checked
/// the length with [`check_text`]; longer texts are cut at `u16::MAX`.
pub fn put_text(out: &mut Vec<u8>, text: &str) {
    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&text.as_bytes()[..usize::from(len)]);
}
