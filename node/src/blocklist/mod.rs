//! Public blocklists as `banmesh import` reads them: [`parse_line`] turns one
//! line into an entry (a pure function, the fuzzing target) and
//! [`LineReader`] cuts any byte stream into lines of bounded length.
//!
//! Formats read, one entry a line: a plain address or network
//! (`192.0.2.7`, `198.51.100.0/24`, `2001:db8::/32`: blocklist.de exports,
//! FireHOL netsets), with `#` and `;` comments, whole-line or trailing
//! (Spamhaus DROP text: `1.10.16.0/20 ; SBL256894`), and Spamhaus DROP
//! JSON lines (`{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}`;
//! its `{"type":"metadata",...}` line is skipped). Keys are normalised as
//! everywhere else: host bits cleared, IPv4-mapped IPv6 folded to IPv4.

mod reader;

use banmesh_crdt::Key;

pub use self::reader::{Line, LineReader, MAX_LINE};

/// Why a line is not an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line is not UTF-8 text (binary junk).
    #[error("not text (binary data)")]
    NotText,
    /// The line is longer than [`MAX_LINE`] bytes.
    #[error("line longer than {MAX_LINE} bytes (the rest of it was skipped)")]
    TooLong,
    /// The address or network does not parse.
    #[error("not an address or network: {0:?}")]
    BadKey(String),
    /// More than one word before the comment.
    #[error("unexpected text after the address: {0:?}")]
    TrailingText(String),
    /// A JSON line that is not a DROP entry nor its metadata.
    #[error("JSON line without a \"cidr\" or \"ip\" string")]
    BadJson,
}

/// One entry of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The address or network, normalised.
    pub key: Key,
    /// Whether normalising changed it (host bits cleared, mapped IPv6 folded).
    pub normalised: bool,
}

/// Longest text shown of a bad line in an error.
const SHOWN: usize = 60;

/// One line (without its end of line) as an entry; `Ok(None)` for a blank
/// line, a comment or a JSON metadata line. Never panics, on any bytes.
pub fn parse_line(line: &[u8]) -> Result<Option<Entry>, LineError> {
    let text = std::str::from_utf8(line).map_err(|_| LineError::NotText)?;
    if text.contains('\0') {
        return Err(LineError::NotText);
    }
    let text = text.trim();
    if text.starts_with('{') {
        return parse_json(text);
    }
    let data = match text.find(['#', ';']) {
        Some(at) => &text[..at],
        None => text,
    };
    let mut words = data.split_whitespace();
    let Some(word) = words.next() else { return Ok(None) };
    if let Some(extra) = words.next() {
        return Err(LineError::TrailingText(shorten(extra)));
    }
    key(word)
}

fn parse_json(text: &str) -> Result<Option<Entry>, LineError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| LineError::BadJson)?;
    if value.get("type").and_then(serde_json::Value::as_str) == Some("metadata") {
        return Ok(None);
    }
    let field = ["cidr", "ip"].into_iter().find_map(|f| value.get(f)?.as_str());
    key(field.ok_or(LineError::BadJson)?)
}

fn key(word: &str) -> Result<Option<Entry>, LineError> {
    let parsed = Key::parse(word).map_err(|_| LineError::BadKey(shorten(word)))?;
    let normalised = parsed.host_bits_cleared || parsed.mapped_folded;
    Ok(Some(Entry { key: parsed.key, normalised }))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
