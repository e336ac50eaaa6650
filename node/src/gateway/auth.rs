//! Who is asking: the bearer token checked against the configured tokens
//! (SHA-256 of the presented token compared in constant time with every
//! configured hash), and the client's address, taken from `X-Forwarded-For`
//! or `X-Real-IP` only when the connection comes from a trusted proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};

use axum::http::{HeaderMap, header};
use ipnet::IpNet;
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use crate::config::Token;

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
}

impl Client {
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
        let digest = Token::digest_of(presented);
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner).clone();
        // Every configured token is compared, so the time taken does not
        // say which one matched.
        let mut found: Option<&Token> = None;
        for token in tokens.iter() {
            if bool::from(token.digest.ct_eq(&digest)) && found.is_none() {
                found = Some(token);
            }
        }
        let name = found.ok_or(ApiError::Unauthorized)?.name.clone();
        Ok(Client { name, addr: self.client_addr(headers, peer.ip()) })
    }

    /// `X-Forwarded-For`'s first entry, then `X-Real-IP`, when `peer` is a
    /// trusted proxy; otherwise (or when they do not parse) `peer`.
    pub fn client_addr(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        let peer = banmesh_crdt::key::canonical_addr(peer);
        if !self.trusted_proxies.iter().any(|net| net.contains(&peer)) {
            return peer;
        }
        let header_addr = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
        };
        header_addr("x-forwarded-for")
            .or_else(|| header_addr("x-real-ip"))
            .map(banmesh_crdt::key::canonical_addr)
            .unwrap_or(peer)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn auth() -> Auth {
        let token = |name: &str, t: &str| Token {
            name: name.to_owned(),
            digest: Token::digest_of(t),
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
        assert_eq!(
            a.client_addr(&h, "10.1.2.3".parse().unwrap()),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            a.client_addr(&h, "192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        let real = headers(&[("x-real-ip", "203.0.113.8")]);
        assert_eq!(
            a.client_addr(&real, "10.1.2.3".parse().unwrap()),
            "203.0.113.8".parse::<IpAddr>().unwrap()
        );
        let junk = headers(&[("x-forwarded-for", "nonsense")]);
        assert_eq!(
            a.client_addr(&junk, "10.1.2.3".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }
}
