//! The node's never-ban list, as `status` gives it, checked against each
//! entry before it is sent: an entry wholly inside a never-ban network would
//! be stored and gossiped yet never enforced anywhere it matters, so it is
//! refused here and reported by line; an entry that only covers never-ban
//! addresses is imported (the enforcers leave those addresses out) with a
//! note.

use std::path::Path;

use banmesh_crdt::Key;
use ipnet::IpNet;

use crate::control::{self, Command, Response};

/// What the never-ban list says of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not on the list.
    Clear,
    /// Wholly inside this never-ban network: refused.
    Inside(IpNet),
    /// Covers this never-ban network: imported, that part not enforced.
    Covers(IpNet),
}

/// The never-ban networks of the node on `socket`.
pub async fn fetch(socket: &Path) -> anyhow::Result<Vec<IpNet>> {
    match control::call(socket, Command::Status).await? {
        Response::Status(status) => Ok(status
            .never_ban
            .iter()
            .filter_map(|n| Key::parse(n).ok())
            .map(|p| p.key.net())
            .collect()),
        Response::Error { message } => anyhow::bail!("the node cannot give its status: {message}"),
        other => anyhow::bail!("the node answered {} to status", other.name()),
    }
}

/// What `never` says of `key`.
pub fn verdict(never: &[IpNet], key: Key) -> Verdict {
    let net = key.net();
    if let Some(outer) = never.iter().find(|n| n.contains(&net)) {
        return Verdict::Inside(*outer);
    }
    never.iter().find(|n| net.contains(*n)).map_or(Verdict::Clear, |n| Verdict::Covers(*n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_a_never_ban_network_is_refused_and_covering_one_noted() {
        let net = |t: &str| Key::parse(t).expect("key").key;
        let never = vec![net("127.0.0.0/8").net(), net("192.0.2.2").net()];
        assert_eq!(verdict(&never, net("127.0.0.1")), Verdict::Inside(never[0]));
        assert_eq!(verdict(&never, net("192.0.2.2")), Verdict::Inside(never[1]));
        assert_eq!(verdict(&never, net("192.0.2.0/24")), Verdict::Covers(never[1]));
        assert_eq!(verdict(&never, net("192.0.2.3")), Verdict::Clear);
        assert_eq!(verdict(&[], net("192.0.2.2")), Verdict::Clear);
    }
}
