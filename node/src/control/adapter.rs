//! The control socket's adapter: decodes a wire [`Command`] (keys and kinds
//! as the operator wrote them) into a typed call, on the [`NodeHandle`] for
//! what the node task issues and on [`Reads`] for reads and `sync`,
//! and encodes the typed answer, or the [`NodeError`]'s message, as a
//! [`Response`]. `records` is answered as an [`Answer::Records`] filter the
//! server streams page by page. The wire format the CLI sees is unchanged.

use banmesh_crdt::{Key, Kind, Metadata};
use banmesh_keys::Revocation;

use super::protocol::{Command, IssuedView, MAX_ISSUE_BATCH, OrderSpec, Response};
use crate::api::{
    Handed, Handover, Lifetime, NodeError, NodeHandle, Order, Outcome, Reads, RecordFilter, Written,
};

/// What the server sends for a command.
#[derive(Debug)]
pub enum Answer {
    /// This response, whole.
    Whole(Box<Response>),
    /// The stored records matching this filter, streamed from the store.
    Records(RecordFilter),
}

/// The node's answer to `command`, asked through `node` or `queries`.
pub async fn answer(node: &NodeHandle, queries: &impl Reads, command: Command) -> Answer {
    let answer = dispatch(node, queries, command).await;
    answer.unwrap_or_else(|e| Answer::Whole(Box::new(Response::error(e.to_string()))))
}

/// Which records `banmesh records --ip --origin --kind` asks for.
fn record_filter(
    ip: Option<String>,
    origin: Option<String>,
    kind: Option<String>,
) -> Result<RecordFilter, NodeError> {
    let key = ip.map(|ip| Key::parse(&ip).map(|p| p.key)).transpose()?;
    let kind = kind.map(|k| kind_of(&k)).transpose()?;
    Ok(RecordFilter { key, origin, kind })
}

async fn dispatch(
    node: &NodeHandle,
    queries: &impl Reads,
    command: Command,
) -> Result<Answer, NodeError> {
    Ok(Answer::Whole(Box::new(match command {
        Command::Status => Response::Status(Box::new(queries.status().await?)),
        Command::Peers => Response::Peers(queries.peers().await),
        Command::Ban { key, duration_ms, permanent, jail, reason } => {
            let meta = Metadata {
                jail: jail.unwrap_or_default(),
                reason: reason.unwrap_or_default(),
                source: "cli".into(),
            };
            let lifetime = Lifetime::of(duration_ms, permanent);
            write(node, Kind::Ban, &key, |o| Order { lifetime, meta, ..o }).await?
        }
        Command::Unban { key } => write(node, Kind::Unban, &key, cli).await?,
        Command::Allow { key, duration_ms, permanent } => {
            let lifetime = Lifetime::of(duration_ms, permanent);
            write(node, Kind::Allow, &key, |o| Order { lifetime, ..cli(o) }).await?
        }
        Command::Disallow { key } => write(node, Kind::Disallow, &key, cli).await?,
        Command::Records { ip, origin, kind } => {
            return Ok(Answer::Records(record_filter(ip, origin, kind)?));
        }
        Command::Trace { ip } => {
            let addr = ip.trim().parse().map_err(|_| NodeError::BadAddress(ip.clone()))?;
            Response::Trace(queries.trace(addr).await?)
        }
        Command::Sync { peer } => {
            let peer = peer
                .map(|text| text.parse::<libp2p::PeerId>().map_err(|_| NodeError::BadPeer(text)))
                .transpose()?;
            let done = queries.sync(peer).await?;
            Response::Synced { peers: done.iter().map(ToString::to_string).collect() }
        }
        Command::Unblock { target } => {
            let target =
                crate::mesh::Unblock::parse(&target).map_err(|_| NodeError::BadPeer(target))?;
            let peers = queries.unblock(target).await;
            Response::Unblocked { peers: peers.iter().map(ToString::to_string).collect() }
        }
        Command::RevokePublish { pem } => {
            let revocation =
                Revocation::from_pem(&pem).map_err(|e| NodeError::BadRevocation(e.to_string()))?;
            let revoked = node.revoke(revocation).await?;
            Response::Revoked { node: revoked.node, new: revoked.new }
        }
        Command::Fail2BanBan { ip, jail, bantime_s, failures, bancount, restored } => {
            let key = Key::parse(&ip)?.key;
            let handover = Handover { key, jail, bantime_s, failures, bancount, restored };
            handed(node.fail2ban_ban(handover).await?)
        }
        Command::Fail2BanUnban { ip, jail } => {
            handed(node.fail2ban_unban(Key::parse(&ip)?.key, jail).await?)
        }
        Command::Issue { orders } => Response::Issued(issue(node, orders).await?),
        Command::ReloadCert => {
            let reloaded = node.reload_cert().await?;
            Response::CertReloaded { name: reloaded.name, not_after_ms: reloaded.not_after_ms }
        }
    })))
}

/// Issues one `kind` on the key written as `text`, with a note first when
/// the key was normalised.
async fn write(
    node: &NodeHandle,
    kind: Kind,
    text: &str,
    shape: impl FnOnce(Order) -> Order,
) -> Result<Response, NodeError> {
    let parsed = Key::parse(text)?;
    let Written { record, notes } = node.write(shape(Order::new(kind, parsed.key))).await?;
    let notes = parsed.note(text).into_iter().chain(notes).collect();
    Ok(Response::Written { record, notes })
}

fn cli(order: Order) -> Order {
    Order { meta: Metadata { source: "cli".into(), ..Metadata::default() }, ..order }
}

fn handed(handed: Handed) -> Response {
    match handed {
        Handed::Published(written) => {
            Response::Written { record: written.record, notes: written.notes }
        }
        Handed::Skipped(reason) => Response::Skipped { reason },
    }
}

fn kind_of(text: &str) -> Result<Kind, NodeError> {
    Kind::ALL
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| NodeError::UnknownKind(text.to_owned()))
}

/// The order a batch item asks for.
fn order_of(spec: OrderSpec) -> Result<Order, NodeError> {
    let kind = kind_of(&spec.kind)?;
    Ok(Order {
        kind,
        key: Key::parse(&spec.key)?.key,
        lifetime: Lifetime::of(spec.duration_ms, spec.permanent),
        strikes: spec.strikes.max(1),
        meta: Metadata { jail: spec.jail, reason: spec.reason, source: spec.source },
        keep_longer: spec.keep_longer,
    })
}

/// Issues a wire batch: orders that do not decode fail alone, the rest go
/// to the node in one batch; the answer keeps the batch's order.
async fn issue(node: &NodeHandle, specs: Vec<OrderSpec>) -> Result<Vec<IssuedView>, NodeError> {
    if specs.len() > MAX_ISSUE_BATCH {
        return Err(NodeError::TooManyOrders { count: specs.len(), max: MAX_ISSUE_BATCH });
    }
    let keys: Vec<String> = specs.iter().map(|s| s.key.clone()).collect();
    let decoded: Vec<Result<Order, NodeError>> = specs.into_iter().map(order_of).collect();
    let valid: Vec<Order> = decoded.iter().filter_map(|d| d.as_ref().ok().cloned()).collect();
    let mut answers = node.issue(valid).await?.into_iter();
    let views = keys.into_iter().zip(decoded).map(|(key, decoded)| {
        let result = match decoded {
            Ok(_) => answers.next().unwrap_or(Err(NodeError::ShuttingDown)),
            Err(error) => Err(error),
        };
        match result {
            Ok(Outcome::Issued(id)) => IssuedView { key, id: Some(id), error: None, skipped: None },
            Ok(Outcome::Skipped(why)) => {
                IssuedView { key, id: None, error: None, skipped: Some(why) }
            }
            Err(error) => {
                IssuedView { key, id: None, error: Some(error.to_string()), skipped: None }
            }
        }
    });
    Ok(views.collect())
}
