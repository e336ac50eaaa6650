//! Anti-entropy: `/banmesh/sync/1`, range-based set reconciliation with
//! negentropy over the replicated set (records, certificates, revocations;
//! item = (`issued_at`, `id`)). The initiator learns what differs, then
//! pulls what it lacks and pushes what the other side lacks; everything
//! received is judged and stored exactly like gossip.
//!
//! Task: the sync task owns the responder sessions and runs initiator
//! sessions (with each new peer, with the next peer on a timer, and on
//! `banmesh sync`) as child tasks. It talks to the swarm task through
//! [`MeshCommand`]s (send a request, send a response) and gets inbound
//! requests on a bounded channel. Ends when its token fires.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use banmesh_crdt::Origin;
use banmesh_keys::{Certificate, Revocation};
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use negentropy::{Id as NegId, Negentropy, NegentropyStorageVector};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::batch::{Batch, pack};
use super::swarm::MeshCommand;
use super::verifier::{self, Checker};

#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod responder;
use crate::clock::now_ms;
use crate::store::query::{self, SyncItem};
use responder::respond;

/// The protocol name.
pub const SYNC_PROTOCOL: &str = "/banmesh/sync/1";
/// Largest request or response frame (DESIGN.md: frames ≤ 512 KiB).
pub const MAX_FRAME: u64 = 512 * 1024;
/// Negentropy's own frame limit, leaving room for the envelope.
const NEGENTROPY_FRAME: u64 = 400 * 1024;
/// Ids asked for in one pull, so the answer fits in a frame.
const PULL_IDS: usize = 2_000;
/// Responder sessions kept at once, and how long an idle one lives.
const MAX_SESSIONS: usize = 32;
const SESSION_IDLE: Duration = Duration::from_secs(60);
/// Records in one streamed page (about 320 KiB), under the frame limit.
const PAGE_RECORDS: usize = 2_000;
/// Rounds before a session is abandoned (a hostile or broken peer).
const MAX_ROUNDS: usize = 64;

/// A sync request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Start: the initiator's horizon and first negentropy message.
    Open {
        /// The horizon both sides build their set at.
        horizon_ms: u64,
        /// Negentropy's initial message.
        msg: ByteBuf,
    },
    /// A later negentropy message of a session.
    Round {
        /// The responder's session.
        session: u64,
        /// Negentropy's message.
        msg: ByteBuf,
    },
    /// Send these items (ids from the session's set).
    Pull {
        /// The responder's session.
        session: u64,
        /// Item ids.
        ids: Vec<ByteBuf>,
    },
    /// Store these items: one gossip-format batch.
    Push {
        /// The batch bytes.
        batch: ByteBuf,
    },
    /// Send the whole set from `after` on, in (`issued_at`, `id`) order: how
    /// an empty node catches up without negentropy sending it every id.
    Stream {
        /// The horizon of the set.
        horizon_ms: u64,
        /// Where the previous page ended; `None` for the first page, which
        /// also carries every certificate and revocation.
        after: Option<(u64, ByteBuf)>,
    },
    /// The session is over.
    Close {
        /// The responder's session.
        session: u64,
    },
}

/// A sync response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SyncResponse {
    /// Negentropy's answer.
    Round {
        /// The session to name in later requests.
        session: u64,
        /// Negentropy's message.
        msg: ByteBuf,
    },
    /// The pulled items, as gossip-format batches.
    Items {
        /// Batch bytes.
        batches: Vec<ByteBuf>,
    },
    /// A page of a [`SyncRequest::Stream`].
    Page {
        /// Gossip-format batches.
        batches: Vec<ByteBuf>,
        /// Where to continue; `None` when this was the last page.
        next: Option<(u64, ByteBuf)>,
    },
    /// Done.
    Done,
    /// Refused, and why.
    Refused {
        /// Why.
        reason: String,
    },
}

/// An inbound request handed over by the swarm task.
pub struct SyncInbound {
    /// The (ready) peer asking.
    pub peer: PeerId,
    /// What it asks.
    pub request: SyncRequest,
    /// Where the answer goes (through the swarm task).
    pub channel: ResponseChannel<SyncResponse>,
}

/// Orders for the sync task.
pub enum SyncOrder {
    /// Reconcile with this peer now.
    PeerReady(PeerId),
    /// Reconcile with these peers now and say which succeeded.
    Now(Vec<PeerId>, oneshot::Sender<Vec<PeerId>>),
}

struct Session {
    peer: PeerId,
    negentropy: Negentropy<'static, NegentropyStorageVector>,
    items: HashMap<[u8; 32], SyncItem>,
    used: Instant,
}

/// What a session needs from the node, shared with child tasks.
#[derive(Clone)]
pub struct SyncContext {
    /// Store, trust, parameters, limits and counters.
    pub checker: Checker,
    /// Commands to the swarm task.
    pub swarm_tx: mpsc::Sender<MeshCommand>,
}

/// The sync task's loop.
pub async fn run(
    ctx: SyncContext,
    mut inbound_rx: mpsc::Receiver<SyncInbound>,
    mut order_rx: mpsc::Receiver<SyncOrder>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut sessions: HashMap<u64, Session> = HashMap::new();
    let mut next_session: u64 = u64::from(std::process::id()) << 32;
    let mut children = JoinSet::new();
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    let mut turn = 0usize;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(inbound) = inbound_rx.recv() => {
                let response = respond(&ctx, &mut sessions, &mut next_session, inbound.peer, inbound.request).await;
                let _ = ctx.swarm_tx.send(MeshCommand::SyncRespond(inbound.channel, response)).await;
            }
            Some(order) = order_rx.recv() => match order {
                SyncOrder::PeerReady(peer) => {
                    children.spawn(session_logged(ctx.clone(), peer));
                }
                SyncOrder::Now(peers, reply) => {
                    let ctx = ctx.clone();
                    children.spawn(async move {
                        let mut done = Vec::new();
                        for peer in peers {
                            if initiate(&ctx, peer).await.is_ok() {
                                done.push(peer);
                            }
                        }
                        let _ = reply.send(done);
                    });
                }
            },
            _ = tick.tick() => {
                let (reply, answer) = oneshot::channel();
                if ctx.swarm_tx.send(MeshCommand::Peers(reply)).await.is_ok()
                    && let Ok(peers) = answer.await
                {
                    // Peers in doubt (nothing heard lately) are skipped: a
                    // session with a dead peer would only wait out its timeout.
                    let mut ready: Vec<PeerId> = peers.iter().filter(|p| p.ready && !p.in_doubt).map(|p| p.peer).collect();
                    ready.sort();
                    if !ready.is_empty() {
                        turn = turn.wrapping_add(1);
                        children.spawn(session_logged(ctx.clone(), ready[turn % ready.len()]));
                    }
                }
                let now = Instant::now();
                sessions.retain(|_, s| now.duration_since(s.used) < SESSION_IDLE);
            }
            Some(_) = children.join_next(), if !children.is_empty() => {}
        }
    }
    children.shutdown().await;
}

async fn session_logged(ctx: SyncContext, peer: PeerId) {
    if let Err(e) = initiate(&ctx, peer).await {
        tracing::debug!(%peer, error = %e, "sync did not finish");
    }
}

async fn request(
    ctx: &SyncContext,
    peer: PeerId,
    request: SyncRequest,
) -> Result<SyncResponse, String> {
    let (reply, answer) = oneshot::channel();
    ctx.swarm_tx
        .send(MeshCommand::SyncRequest { peer, request, reply })
        .await
        .map_err(|_| "mesh stopped".to_owned())?;
    match answer.await.map_err(|_| "mesh stopped".to_owned())?? {
        SyncResponse::Refused { reason } => Err(format!("refused: {reason}")),
        other => Ok(other),
    }
}

async fn storage_of(
    ctx: &SyncContext,
    horizon_ms: u64,
) -> Result<(NegentropyStorageVector, HashMap<[u8; 32], SyncItem>), String> {
    let params = ctx.checker.params;
    let items = ctx
        .checker
        .store
        .read(move |c, p| query::sync_items(c, p, horizon_ms, &params))
        .await
        .map_err(|e| e.to_string())?;
    let mut storage = NegentropyStorageVector::with_capacity(items.len());
    let mut by_id = HashMap::with_capacity(items.len());
    for item in items {
        storage.insert(item.at, NegId::from_byte_array(item.id)).map_err(|e| e.to_string())?;
        by_id.insert(item.id, item);
    }
    storage.seal().map_err(|e| e.to_string())?;
    Ok((storage, by_id))
}

/// Streams the peer's whole set into this (empty) node, page by page;
/// returns how many batches it stored.
async fn stream_from(ctx: &SyncContext, peer: PeerId, horizon_ms: u64) -> Result<usize, String> {
    let mut after = None;
    let mut stored = 0;
    loop {
        let SyncResponse::Page { batches, next } =
            request(ctx, peer, SyncRequest::Stream { horizon_ms, after }).await?
        else {
            return Err("unexpected answer to stream".into());
        };
        for batch in batches {
            let (verdict, _) = verifier::verify(&batch, &peer, &ctx.checker).await;
            verdict.map_err(|reason| format!("peer streamed a bad batch: {reason}"))?;
            stored += 1;
        }
        match next {
            Some(cursor) => after = Some(cursor),
            None => {
                tracing::info!(target: "banmesh::events::streamed", %peer, batches = stored, "streamed the whole set");
                return Ok(stored);
            }
        }
    }
}

/// One initiator session with `peer`: reconcile, push, pull. An empty node
/// is first streamed the whole set.
async fn initiate(ctx: &SyncContext, peer: PeerId) -> Result<(), String> {
    let horizon_ms = now_ms();
    let (mut storage, mut items) = storage_of(ctx, horizon_ms).await?;
    if !items.values().any(|i| i.kind == query::ItemKind::Record)
        && stream_from(ctx, peer, horizon_ms).await? > 0
    {
        (storage, items) = storage_of(ctx, horizon_ms).await?;
    }
    let mut negentropy = Negentropy::owned(storage, NEGENTROPY_FRAME).map_err(|e| e.to_string())?;
    let first = negentropy.initiate().map_err(|e| e.to_string())?;
    let SyncResponse::Round { session, mut msg } =
        request(ctx, peer, SyncRequest::Open { horizon_ms, msg: ByteBuf::from(first) }).await?
    else {
        return Err("unexpected answer to open".into());
    };
    let (mut have, mut need) = (Vec::new(), Vec::new());
    for _ in 0..MAX_ROUNDS {
        let next =
            negentropy.reconcile_with_ids(&msg, &mut have, &mut need).map_err(|e| e.to_string())?;
        let Some(next) = next else { break };
        let SyncResponse::Round { msg: answer, .. } =
            request(ctx, peer, SyncRequest::Round { session, msg: ByteBuf::from(next) }).await?
        else {
            return Err("unexpected answer to round".into());
        };
        msg = answer;
    }
    let to_push: Vec<SyncItem> = have.iter().filter_map(|id| items.get(&**id).copied()).collect();
    let pushed = push(ctx, peer, to_push).await?;
    let mut pulled = 0;
    for chunk in need.chunks(PULL_IDS) {
        let ids = chunk.iter().map(|id| ByteBuf::from(id.to_vec())).collect();
        let SyncResponse::Items { batches } =
            request(ctx, peer, SyncRequest::Pull { session, ids }).await?
        else {
            return Err("unexpected answer to pull".into());
        };
        for batch in batches {
            let (verdict, _) = verifier::verify(&batch, &peer, &ctx.checker).await;
            verdict.map_err(|reason| format!("peer sent a bad batch: {reason}"))?;
            pulled += 1;
        }
    }
    let _ = request(ctx, peer, SyncRequest::Close { session }).await;
    ctx.checker
        .stats
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .last_sync
        .insert(peer, now_ms());
    tracing::info!(
        target: "banmesh::events::synced",
        %peer, pushed, pulled_batches = pulled, pulled_items = need.len(), "sync finished"
    );
    Ok(())
}

/// Pushes our items the peer lacks, as gossip-format batches.
async fn push(ctx: &SyncContext, peer: PeerId, items: Vec<SyncItem>) -> Result<usize, String> {
    if items.is_empty() {
        return Ok(0);
    }
    let count = items.len();
    for batch in batches_of(ctx, items).await? {
        request(ctx, peer, SyncRequest::Push { batch: ByteBuf::from(batch) }).await?;
    }
    Ok(count)
}

/// Fetches `items` and packs them into gossip-format batches carrying the
/// certificates of the records' origins.
async fn batches_of(ctx: &SyncContext, items: Vec<SyncItem>) -> Result<Vec<Vec<u8>>, String> {
    let (records, certs, revocations) = ctx
        .checker
        .store
        .read(move |c, p| query::fetch_items(c, p, &items))
        .await
        .map_err(|e| e.to_string())?;
    let mut encoded = trust_batches(&certs, &revocations);
    let trust = ctx.checker.trust.read().unwrap_or_else(PoisonError::into_inner).clone();
    let cert_of = |origin: Origin| {
        banmesh_keys::PublicKey::from_bytes(&origin.0).ok().and_then(|k| trust.cert_of(&k).cloned())
    };
    encoded.extend(pack(records, cert_of));
    Ok(encoded)
}

/// Certificates and revocations (canonical bodies) as gossip-format
/// batches of up to 100 each; bodies that no longer decode are left out.
fn trust_batches(certs: &[Vec<u8>], revocations: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let certs: Vec<Certificate> =
        certs.iter().filter_map(|b| Certificate::from_bytes(b).ok()).collect();
    let revocations: Vec<Revocation> =
        revocations.iter().filter_map(|b| Revocation::from_bytes(b).ok()).collect();
    let mut out: Vec<Vec<u8>> = certs
        .chunks(100)
        .map(|chunk| {
            Batch { certs: chunk.to_vec(), revocations: Vec::new(), records: Vec::new() }.encode()
        })
        .collect();
    out.extend(revocations.chunks(100).map(|chunk| {
        Batch { certs: Vec::new(), revocations: chunk.to_vec(), records: Vec::new() }.encode()
    }));
    out
}
