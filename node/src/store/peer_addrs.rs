//! Where admitted peers' connections came from (the `peer_addrs` table):
//! the part of the never-ban list that must outlive a connection, so a peer
//! that is away (restarting, cut off) or this node's own restart never
//! exposes a member of the mesh to the mesh's bans. A row lives while the
//! peer's certificate is valid and the peer is not revoked; each peer keeps
//! at most [`KEEP_PER_PEER`] addresses, the most recently seen.

use std::net::IpAddr;
use std::path::Path;

use banmesh_crdt::Key;
use banmesh_keys::PublicKey;
use rusqlite::{Connection, params};

use super::rows::to_sql;
use super::schema::classify;
use super::{Db, Store, StoreError};

/// Addresses kept per peer: a peer behind a NAT pool or moving between
/// networks has a few; a bound keeps one peer from growing the list.
pub const KEEP_PER_PEER: usize = 8;

/// One address a peer was seen connecting from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr {
    /// The peer's node key.
    pub node: PublicKey,
    /// The address.
    pub addr: Key,
}

impl Store {
    /// Notes that `node`, whose certificate is valid until `valid_until_ms`,
    /// connected from `addr` at `seen_ms`; keeps its most recent
    /// [`KEEP_PER_PEER`] addresses.
    pub async fn note_peer_addr(
        &self,
        node: PublicKey,
        addr: IpAddr,
        seen_ms: u64,
        valid_until_ms: u64,
    ) -> Result<(), StoreError> {
        self.write(move |db| note(db, node, addr, seen_ms, valid_until_ms)).await
    }

    /// Forgets addresses whose peer's certificate has expired by `now_ms`,
    /// or whose peer is revoked; returns how many went.
    pub async fn prune_peer_addrs(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.write(move |db| {
            db.conn()
                .execute(
                    "DELETE FROM peer_addrs WHERE valid_until <= ?1
                     OR node IN (SELECT node FROM revocations)",
                    [to_sql(now_ms)],
                )
                .map_err(|e| classify(db.path(), e))
        })
        .await
    }

    /// The addresses of peers whose certificate is valid at `now_ms` and
    /// that are not revoked (as far as the store knows).
    pub async fn peer_addrs(&self, now_ms: u64) -> Result<Vec<PeerAddr>, StoreError> {
        self.read(move |conn, path| valid(conn, path, now_ms)).await
    }
}

fn note(
    db: &mut Db,
    node: PublicKey,
    addr: IpAddr,
    seen_ms: u64,
    valid_until_ms: u64,
) -> Result<(), StoreError> {
    let fail = |e| classify(db.path(), e);
    let node = node.to_bytes();
    let tx = db.conn().unchecked_transaction().map_err(fail)?;
    tx.execute(
        "INSERT INTO peer_addrs (node, addr, seen_ms, valid_until) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (node, addr) DO UPDATE SET
             seen_ms = max(seen_ms, excluded.seen_ms), valid_until = excluded.valid_until",
        params![
            &node[..],
            Key::from_addr(addr).to_bytes(),
            to_sql(seen_ms),
            to_sql(valid_until_ms)
        ],
    )
    .map_err(fail)?;
    tx.execute(
        "DELETE FROM peer_addrs WHERE node = ?1 AND addr NOT IN
         (SELECT addr FROM peer_addrs WHERE node = ?1 ORDER BY seen_ms DESC, addr LIMIT ?2)",
        params![&node[..], KEEP_PER_PEER as i64],
    )
    .map_err(fail)?;
    tx.commit().map_err(fail)
}

fn valid(conn: &Connection, path: &Path, now_ms: u64) -> Result<Vec<PeerAddr>, StoreError> {
    let fail = |e| classify(path, e);
    let mut stmt = conn
        .prepare_cached(
            "SELECT node, addr FROM peer_addrs
             WHERE valid_until > ?1 AND node NOT IN (SELECT node FROM revocations)
             ORDER BY node, seen_ms DESC",
        )
        .map_err(fail)?;
    let rows: Vec<(Vec<u8>, Vec<u8>)> = stmt
        .query_map([to_sql(now_ms)], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(fail)?;
    // A row that cannot be read protects nothing; it is left out.
    Ok(rows
        .into_iter()
        .filter_map(|(node, addr)| {
            let node = PublicKey::from_bytes(&node.try_into().ok()?).ok()?;
            Some(PeerAddr { node, addr: Key::from_bytes(&addr).ok()? })
        })
        .collect())
}
