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
