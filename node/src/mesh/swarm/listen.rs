//! The node's listeners. The default list has the unspecified IPv4 and
//! IPv6 addresses, so a peer reached over either family is protected by
//! the never-ban rules on both (a peer's IPv6 counts only where it listens
//! on IPv6). A host whose kernel has no IPv6 cannot open the IPv6 one: that
//! is a warning while another address listens, never a refusal to start.

use std::io;
use std::net::Ipv6Addr;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, TransportError};

use super::{Mesh, causes};

impl Mesh {
    /// Starts listening on `addrs`: an error names the first address that
    /// cannot be listened on, except an unspecified IPv6 address on a host
    /// without IPv6 while another address listens.
    pub fn listen(&mut self, addrs: &[Multiaddr]) -> Result<(), String> {
        let mut listening = 0;
        let mut without_ipv6 = Vec::new();
        for addr in addrs {
            match self.swarm.listen_on(addr.clone()) {
                Ok(_) => listening += 1,
                Err(TransportError::Other(e)) if is_any_v6(addr) && no_ipv6(&e) => {
                    without_ipv6.push((addr, e));
                }
                Err(e) => return Err(format!("cannot listen on {addr}: {}", causes(&e))),
            }
        }
        for (addr, e) in without_ipv6 {
            if listening == 0 {
                return Err(format!("cannot listen on {addr}: {}", causes(&e)));
            }
            tracing::warn!(%addr, error = %causes(&e), "this host has no IPv6: not listening on it");
        }
        Ok(())
    }
}

/// Whether `addr` is the unspecified IPv6 address (`/ip6/::/...`).
fn is_any_v6(addr: &Multiaddr) -> bool {
    addr.iter().next() == Some(Protocol::Ip6(Ipv6Addr::UNSPECIFIED))
}

/// Whether `e` says the kernel has no IPv6 (no address family, or no
/// address to bind).
fn no_ipv6(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(EAFNOSUPPORT)
}

/// "Address family not supported by protocol" on Linux.
const EAFNOSUPPORT: i32 = 97;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_ipv6_on_the_unspecified_address_is_forgiven() {
        let any6: Multiaddr = "/ip6/::/tcp/4646".parse().unwrap();
        let one6: Multiaddr = "/ip6/2001:db8::1/tcp/4646".parse().unwrap();
        let any4: Multiaddr = "/ip4/0.0.0.0/tcp/4646".parse().unwrap();
        assert!(is_any_v6(&any6));
        assert!(!is_any_v6(&one6));
        assert!(!is_any_v6(&any4));
        assert!(no_ipv6(&io::Error::from_raw_os_error(97)));
        assert!(no_ipv6(&io::Error::from(io::ErrorKind::AddrNotAvailable)));
        assert!(!no_ipv6(&io::Error::from(io::ErrorKind::AddrInUse)));
    }
}
