//! Who is asking: the bearer token checked against the configured tokens
//! (SHA-256 of the presented token compared in constant time with every
//! configured hash), and the client's address, taken from `X-Forwarded-For`
//! (the rightmost address not a trusted proxy) or `X-Real-IP` only when the
//! connection comes from a trusted proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};

use axum::http::{HeaderMap, header};
use ipnet::IpNet;
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use crate::config::{Role, Token};

/// The tokens in force (swapped whole on reload) and the trusted proxies.
#[derive(Debug)]
pub struct Auth {
    tokens: RwLock<Arc<[Token]>>,
    trusted_proxies: Vec<IpNet>,
}

/// An authenticated client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The token's name.
    pub name: String,
    /// The client's address.
    pub addr: IpAddr,
    /// What its token may do.
    pub role: Role,
}

impl Client {
    /// `Ok` when the token may write, the 403 otherwise.
    pub fn may_write(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Write | Role::Admin => Ok(()),
            Role::Read => Err(ApiError::ReadOnly(self.name.clone())),
        }
    }

    /// `NAME@ADDRESS`, the records' `source`.
    pub fn reported_by(&self) -> String {
        format!("{}@{}", self.name, self.addr)
    }
}

impl Auth {
    /// Tokens and proxies from the configuration.
    pub fn new(tokens: Vec<Token>, trusted_proxies: Vec<IpNet>) -> Auth {
        Auth { tokens: RwLock::new(tokens.into()), trusted_proxies }
    }

    /// Replaces every token (SIGHUP).
    pub fn replace(&self, tokens: Vec<Token>) {
        *self.tokens.write().unwrap_or_else(PoisonError::into_inner) = tokens.into();
    }

    /// How many tokens are in force.
    pub fn token_count(&self) -> usize {
        self.tokens.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The client behind a request from `peer`, or 401.
    pub fn check(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<Client, ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let (name, role) =
            self.lookup(&Token::digest_of(presented)).ok_or(ApiError::Unauthorized)?;
        Ok(Client { name, addr: self.client_addr(headers, peer.ip()), role })
    }

    /// The name and role of the token in force whose SHA-256 is `digest`
    /// (a dashboard session holds the digest, so a token removed on reload
    /// ends its sessions too).
    pub fn lookup(&self, digest: &[u8; 32]) -> Option<(String, Role)> {
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner).clone();
        // Every configured token is compared, so the time taken does not
        // say which one matched.
        let mut found: Option<&Token> = None;
        for token in tokens.iter() {
            if bool::from(token.digest.ct_eq(digest)) && found.is_none() {
                found = Some(token);
            }
        }
        found.map(|t| (t.name.clone(), t.role))
    }

    /// The client as the trusted proxies saw it, when `peer` is one of them:
    /// `X-Forwarded-For` walked from its right end (the entry the nearest
    /// proxy added) past every trusted proxy to the first address that is
    /// not one, since entries further left are whatever the client sent;
    /// then `X-Real-IP`; otherwise (or when nothing parses) `peer`.
    pub fn client_addr(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        let peer = banmesh_crdt::key::canonical_addr(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        let entries = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .collect::<Vec<_>>();
        let mut chosen = None;
        for entry in entries.iter().rev() {
            // What lies beyond an entry that does not parse is not trusted.
            let Some(addr) = forwarded_addr(entry) else { break };
            chosen = Some(addr);
            if !self.is_trusted(addr) {
                break;
            }
        }
        let real_ip = || headers.get("x-real-ip")?.to_str().ok().and_then(forwarded_addr);
        chosen.or_else(real_ip).unwrap_or(peer)
    }

    fn is_trusted(&self, addr: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&addr))
    }
}

/// One forwarded address: `ADDR`, `ADDR:PORT`, `[V6]` or `[V6]:PORT`,
/// canonical (IPv4-mapped IPv6 folded).
fn forwarded_addr(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let addr = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':')?.parse::<u16>().is_ok();
        port_ok.then(|| inside.parse::<IpAddr>().ok()).flatten()?
    } else if let Ok(addr) = text.parse::<IpAddr>() {
        addr
    } else {
        text.parse::<SocketAddr>().ok()?.ip()
    };
    Some(banmesh_crdt::key::canonical_addr(addr))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn auth() -> Auth {
        let token = |name: &str, t: &str| Token {
            name: name.to_owned(),
            digest: Token::digest_of(t),
            role: Role::Write,
            from_seed: false,
        };
        Auth::new(
            vec![token("web1", "s3cret"), token("web2", "other")],
            vec!["10.0.0.0/8".parse().unwrap()],
        )
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn tokens_name_the_client() {
        let peer: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let client = auth().check(&headers(&[("authorization", "Bearer s3cret")]), peer).unwrap();
        assert_eq!(client.reported_by(), "web1@192.0.2.1");
        let lower = auth().check(&headers(&[("authorization", "bearer other")]), peer).unwrap();
        assert_eq!(lower.name, "web2");
        for bad in [&[][..], &[("authorization", "Bearer nope")], &[("authorization", "s3cret")]] {
            assert!(matches!(auth().check(&headers(bad), peer), Err(ApiError::Unauthorized)));
        }
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let h =
            headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.2"), ("x-real-ip", "203.0.113.8")]);
        let a = auth();
        let addr = |h: &HeaderMap, peer: &str| a.client_addr(h, peer.parse().unwrap()).to_string();
        assert_eq!(addr(&h, "10.1.2.3"), "203.0.113.9", "past the trusted 10.0.0.2");
        assert_eq!(addr(&h, "192.0.2.1"), "192.0.2.1", "an untrusted peer's headers are ignored");
        let real = headers(&[("x-real-ip", "203.0.113.8")]);
        assert_eq!(addr(&real, "10.1.2.3"), "203.0.113.8");
        let junk = headers(&[("x-forwarded-for", "nonsense")]);
        assert_eq!(addr(&junk, "10.1.2.3"), "10.1.2.3");
    }

    #[test]
    fn forwarded_for_is_walked_from_the_right_so_clients_cannot_forge_it() {
        let a = auth();
        let addr = |xff: &'static str| {
            let h = headers(&[("x-forwarded-for", xff)]);
            a.client_addr(&h, "10.1.2.3".parse().unwrap()).to_string()
        };
        // nginx's proxy_add_x_forwarded_for appends the real client to
        // whatever the client sent.
        assert_eq!(addr("198.51.100.1, 203.0.113.9"), "203.0.113.9");
        assert_eq!(addr("198.51.100.1, 203.0.113.9, 10.0.0.2"), "203.0.113.9");
        assert_eq!(addr("10.0.0.5, 10.0.0.2"), "10.0.0.5", "all trusted: the furthest");
        assert_eq!(addr("198.51.100.1, nonsense, 10.0.0.2"), "10.0.0.2", "no further than junk");
        assert_eq!(addr("203.0.113.9:51234"), "203.0.113.9");
        assert_eq!(addr("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(addr("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(addr("2001:db8::1"), "2001:db8::1");
        assert_eq!(addr("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(addr("[2001:db8::1]:port"), "10.1.2.3");
        let mut two = HeaderMap::new();
        two.append("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        two.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert_eq!(a.client_addr(&two, "10.1.2.3".parse().unwrap()).to_string(), "203.0.113.9");
    }
}
