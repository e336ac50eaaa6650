//! `--replace-source NAME`: which entries a list no longer holds. The node
//! streams this node's own records (`records --origin`, read frame by frame,
//! never held whole); a key whose latest own record is a live Ban with
//! source `import:NAME` and that the new copy does not list is gone.
//!
//! The Unban then issued acts as `banmesh unban` does: it lifts the bans on
//! that exact key from every origin. A key this node banned again since
//! (Fail2Ban, `banmesh ban`) has a later own record with another source and
//! is left alone.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Context as _;
use banmesh_crdt::{Key, Kind};
use tokio::net::UnixStream;

use crate::clock::now_ms;
use crate::control::protocol::{
    Frame, MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME, encode_request, read_frame, write_frame,
};
use crate::control::{self, Command, RecordView, Response};

/// The latest own record seen on a key: its clock reading, and whether it
/// is a live Ban of the source.
type Latest = ((u64, u64), bool);

/// The keys this node last banned for `source` (still live) that are not in
/// `listed`.
pub async fn gone(socket: &Path, source: &str, listed: &HashSet<Key>) -> anyhow::Result<Vec<Key>> {
    let node_key = match control::call(socket, Command::Status).await? {
        Response::Status(status) => status.node_key,
        other => anyhow::bail!("the node answered {} to status", other.name()),
    };
    let mut stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    let command = Command::Records { ip: None, origin: Some(node_key), kind: None };
    write_frame(&mut stream, &encode_request(command)?, MAX_REQUEST_FRAME).await?;
    let now = now_ms();
    let mut latest: HashMap<Key, Latest> = HashMap::new();
    let mut take = |records: Vec<RecordView>| {
        for record in records {
            let Ok(parsed) = Key::parse(&record.key) else { continue };
            if listed.contains(&parsed.key) {
                continue;
            }
            let at = clock_of(&record);
            let ours = record.kind == Kind::Ban.as_str()
                && record.source == source
                && record.expires_at_ms.is_some_and(|e| e > now);
            let slot = latest.entry(parsed.key).or_insert((at, ours));
            if at >= slot.0 {
                *slot = (at, ours);
            }
        }
    };
    loop {
        let body = read_frame(&mut stream, MAX_RESPONSE_FRAME).await?;
        match serde_json::from_slice(&body).context("a bad frame from the node")? {
            Frame::Chunk { records } => take(records),
            Frame::Reply { response } => match *response {
                Response::Records(records) => {
                    take(records);
                    break;
                }
                Response::Error { message } => {
                    anyhow::bail!("the node cannot list records: {message}")
                }
                other => anyhow::bail!("the node answered {} to records", other.name()),
            },
        }
    }
    let mut keys: Vec<Key> =
        latest.into_iter().filter(|(_, (_, ours))| *ours).map(|(k, _)| k).collect();
    keys.sort_unstable();
    Ok(keys)
}

/// `issued_at` (`millis.counter`) as a pair that orders as the clock does.
fn clock_of(record: &RecordView) -> (u64, u64) {
    let counter = record.issued_at.split_once('.').and_then(|(_, c)| c.parse().ok());
    (record.issued_at_ms, counter.unwrap_or(0))
}
