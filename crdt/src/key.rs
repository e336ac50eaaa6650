//! The address key of a record: one IPv4/IPv6 address or CIDR network in
//! canonical form (host bits zero, IPv4-mapped IPv6 folded to IPv4), its
//! parsing with a report of what was normalised, and its wire bytes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::wire::{DecodeError, Reader};

/// An address or network in canonical form.
///
/// Two texts that name the same network give equal keys: `2001:DB8:0::1` and
/// `2001:db8::1`, `::ffff:192.0.2.1` and `192.0.2.1`, `192.0.2.9/24` and
/// `192.0.2.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(IpNet);

/// Why a text is not an address or network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is neither an address nor `address/prefix`.
    #[error("invalid IP address or network {0:?}: write 192.0.2.7, 192.0.2.0/24 or 2001:db8::/48")]
    Invalid(String),
}

/// A key parsed from text, with what had to change to make it canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey {
    /// The canonical key.
    pub key: Key,
    /// The text had host bits set below its prefix (`192.0.2.9/24`).
    pub host_bits_cleared: bool,
    /// The text was an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`).
    pub mapped_folded: bool,
}

impl ParsedKey {
    /// A sentence for the operator when the key differs from the text, such as
    /// `192.0.2.9/24 has host bits set; using 192.0.2.0/24`.
    pub fn note(&self, text: &str) -> Option<String> {
        if self.host_bits_cleared {
            Some(format!("{text} has host bits set; using {}", self.key))
        } else if self.mapped_folded {
            Some(format!("{text} is an IPv4-mapped address; using {}", self.key))
        } else {
            None
        }
    }
}

impl Key {
    /// Parses an address or network, normalising it and saying what changed.
    pub fn parse(text: &str) -> Result<ParsedKey, KeyError> {
        let invalid = || KeyError::Invalid(text.to_owned());
        let trimmed = text.trim();
        let net = match trimmed.split_once('/') {
            None => IpNet::from(IpAddr::from_str(trimmed).map_err(|_| invalid())?),
            Some((addr, len)) => {
                if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
                    return Err(invalid());
                }
                let addr = IpAddr::from_str(addr).map_err(|_| invalid())?;
                let len: u8 = len.parse().map_err(|_| invalid())?;
                IpNet::new(addr, len).map_err(|_| invalid())?
            }
        };
        let host_bits_cleared = net.addr() != net.network();
        let (net, mapped_folded) = fold_mapped(net.trunc());
        Ok(ParsedKey { key: Key(net), host_bits_cleared, mapped_folded })
    }

    /// The key naming exactly one address.
    pub fn from_addr(addr: IpAddr) -> Key {
        Key(fold_mapped(IpNet::from(addr)).0)
    }

    /// The key naming `net`, made canonical (host bits cleared, an
    /// IPv4-mapped network folded to IPv4).
    pub fn from_net(net: IpNet) -> Key {
        Key(fold_mapped(net.trunc()).0)
    }

    /// The network this key names.
    pub fn net(&self) -> IpNet {
        self.0
    }

    /// Whether this is an IPv4 key.
    pub fn is_v4(&self) -> bool {
        matches!(self.0, IpNet::V4(_))
    }

    /// The prefix length (32 or 128 for a single address).
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether this is one address (a /32 or /128), not a wider network.
    pub fn is_address(&self) -> bool {
        self.0.prefix_len() == self.0.max_prefix_len()
    }

    /// Whether `addr` lies inside this key's network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&canonical_addr(addr))
    }

    /// Every key that covers `addr`, from the address itself to `/0`.
    pub fn covering(addr: IpAddr) -> impl Iterator<Item = Key> {
        let addr = canonical_addr(addr);
        let max = if addr.is_ipv4() { 32u8 } else { 128 };
        (0..=max).rev().filter_map(move |len| IpNet::new(addr, len).ok().map(|n| Key(n.trunc())))
    }

    /// The key's canonical bytes: family (4 or 6), prefix length, network
    /// address. Equal keys give equal bytes; the store keys rows by them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18);
        self.encode(&mut out);
        out
    }

    /// Reads canonical bytes written by [`Key::to_bytes`], strictly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, DecodeError> {
        let mut r = Reader::new(bytes);
        let key = Key::decode(&mut r)?;
        r.finish()?;
        Ok(key)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self.0 {
            IpNet::V4(n) => {
                out.extend_from_slice(&[4, n.prefix_len()]);
                out.extend_from_slice(&n.network().octets());
            }
            IpNet::V6(n) => {
                out.extend_from_slice(&[6, n.prefix_len()]);
                out.extend_from_slice(&n.network().octets());
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Key, DecodeError> {
        let family = r.u8()?;
        let len = r.u8()?;
        let net = match family {
            4 => {
                let a: [u8; 4] = r.array()?;
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), len).map_err(|_| DecodeError::BadKey)?)
            }
            6 => {
                let a: [u8; 16] = r.array()?;
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len).map_err(|_| DecodeError::BadKey)?)
            }
            _ => return Err(DecodeError::BadKey),
        };
        if net.addr() != net.network() || fold_mapped(net).1 {
            return Err(DecodeError::NonCanonicalKey);
        }
        Ok(Key(net))
    }
}

/// An address with IPv4-mapped IPv6 folded to IPv4.
pub fn canonical_addr(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// Folds an IPv4-mapped IPv6 network (`::ffff:0:0/96` or narrower) to IPv4.
fn fold_mapped(net: IpNet) -> (IpNet, bool) {
    if let IpNet::V6(n) = net
        && n.prefix_len() >= 96
        && let Some(v4) = n.network().to_ipv4_mapped()
        && let Ok(folded) = Ipv4Net::new(v4, n.prefix_len() - 96)
    {
        return (IpNet::V4(folded), true);
    }
    (net, false)
}

impl fmt::Display for Key {
    /// A single address prints without its prefix (`192.0.2.7`), a network with it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl FromStr for Key {
    type Err = KeyError;

    /// Parses and normalises; use [`Key::parse`] to learn what changed.
    fn from_str(s: &str) -> Result<Key, KeyError> {
        Key::parse(s).map(|p| p.key)
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        s.parse().unwrap()
    }

    #[test]
    fn normalises_and_reports() {
        let p = Key::parse("192.0.2.9/24").unwrap();
        assert_eq!(p.key.to_string(), "192.0.2.0/24");
        assert!(p.host_bits_cleared);
        assert_eq!(
            p.note("192.0.2.9/24").unwrap(),
            "192.0.2.9/24 has host bits set; using 192.0.2.0/24"
        );
        let p = Key::parse("::ffff:192.0.2.1").unwrap();
        assert_eq!(p.key, key("192.0.2.1"));
        assert!(p.mapped_folded && !p.host_bits_cleared);
        assert_eq!(key("::ffff:192.0.2.0/120"), key("192.0.2.0/24"));
        assert_eq!(key("2001:DB8:0::1"), key("2001:db8::1"));
        assert_eq!(key("2001:db8::1").to_string(), "2001:db8::1");
        assert_eq!(key("2001:db8::1/48").to_string(), "2001:db8::/48");
        assert_eq!(key(" 10.0.0.1 ").to_string(), "10.0.0.1");
        assert!(Key::parse("192.0.2.0/24").unwrap().note("192.0.2.0/24").is_none());
    }

    #[test]
    fn refuses_invalid_text() {
        for bad in [
            "",
            "not-an-ip",
            "1.2.3",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3.4/-1",
            "::/129",
            "1.2.3.4/+8",
            "1.2.3.4/0008",
            "1.2.3.4 /8",
            "256.1.1.1",
            "1.2.3.4/8/8",
        ] {
            assert!(Key::parse(bad).is_err(), "{bad:?} accepted");
        }
        let err = Key::parse("nope").unwrap_err().to_string();
        assert!(err.contains("\"nope\""), "{err}");
    }

    #[test]
    fn covering_lists_every_enclosing_network() {
        let addr: IpAddr = "10.1.2.3".parse().unwrap();
        let all: Vec<Key> = Key::covering(addr).collect();
        assert_eq!(all.len(), 33);
        assert_eq!(all[0], key("10.1.2.3"));
        assert_eq!(all[8], key("10.1.2.0/24"));
        assert_eq!(all[32], key("0.0.0.0/0"));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(Key::covering(mapped).count(), 33);
        assert!(key("10.1.0.0/16").contains(mapped));
    }

    #[test]
    fn wire_round_trip_and_strictness() {
        for text in ["192.0.2.7", "0.0.0.0/0", "2001:db8::/32", "::/0", "::1"] {
            let k = key(text);
            let mut buf = Vec::new();
            k.encode(&mut buf);
            let mut r = Reader::new(&buf);
            assert_eq!(Key::decode(&mut r).unwrap(), k);
            assert!(r.is_empty());
        }
        let host_bits = [4u8, 24, 192, 0, 2, 9];
        assert_eq!(Key::decode(&mut Reader::new(&host_bits)), Err(DecodeError::NonCanonicalKey));
        let mut mapped = vec![6u8, 128];
        mapped.extend_from_slice(&"::ffff:1.2.3.4".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(Key::decode(&mut Reader::new(&mapped)), Err(DecodeError::NonCanonicalKey));
        assert_eq!(Key::decode(&mut Reader::new(&[4, 33, 0, 0, 0, 0])), Err(DecodeError::BadKey));
        assert_eq!(Key::decode(&mut Reader::new(&[5, 8, 0, 0, 0, 0])), Err(DecodeError::BadKey));
        assert_eq!(Key::decode(&mut Reader::new(&[4, 8, 10])), Err(DecodeError::Truncated));
    }
}
