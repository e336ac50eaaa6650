//! Anti-entropy: `/banmesh/sync/1`, range-based set reconciliation with
//! negentropy over the replicated set (records, certificates, revocations;
//! item = (`issued_at`, `id`)). The initiator learns what differs, then
//! pulls what it lacks and pushes what the other side lacks, round by
//! round; an empty node is first streamed the whole set page by page.
//! Everything received is judged and stored exactly like gossip.
//!
//! Sessions do the work once: at most one with each peer at a time,
//! whichever side opened it (on connect only the side with the smaller
//! PeerId opens one; the timer skips a peer in session; a second Open from
//! a peer in session is refused), and a cap on the sessions a node opens
//! and answers ([`sessions`]). Their progress is in `banmesh status`. A
//! hostile peer is bounded by [`hostile`]: sessions that stall are dropped,
//! opens are rate-limited per peer, and requests no honest peer sends are
//! strikes that get it blocked.
//!
//! Task: the sync task owns the responder sessions and runs initiator
//! sessions (with each new peer, with the next peer on a timer, and on
//! `banmesh sync`) as child tasks. It talks to the swarm task through
//! [`MeshCommand`]s (send a request, send a response) and gets inbound
//! requests on a bounded channel. Ends when its token fires.

use std::sync::PoisonError;
use std::time::Duration;

use banmesh_crdt::Origin;
use banmesh_keys::{Certificate, Revocation};
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::batch::{Batch, pack};
use super::swarm::MeshCommand;
use super::verifier::Checker;

#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod hostile;
mod initiator;
mod responder;
pub mod sessions;
#[cfg(test)]
mod sim;
mod storage;
use crate::store::sync_set;
use initiator::Outcome;
use responder::Responder;
use sessions::{Guard, NotStarted, Tracker};

/// The protocol name.
pub const SYNC_PROTOCOL: &str = "/banmesh/sync/1";
/// Largest request or response frame (DESIGN.md: frames ≤ 512 KiB).
pub const MAX_FRAME: u64 = 512 * 1024;
/// Negentropy's own frame limit, leaving room for the envelope.
const NEGENTROPY_FRAME: u64 = 400 * 1024;
/// Ids asked for in one pull, so the answer fits in a frame.
const PULL_IDS: usize = 2_000;
/// How long `banmesh sync` waits for a session running with a peer to end.
const NOW_WAIT: Duration = Duration::from_secs(30);
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
        /// Whether the initiator holds records: an empty responder then
        /// declines and streams the set from the initiator instead.
        #[serde(default)]
        records: bool,
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
        /// On the first page, how many records the set holds.
        #[serde(default)]
        total: Option<u64>,
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
    /// This peer is ready (a fresh connection admitted after it had none):
    /// reconcile with it now, and refill its session-open burst.
    PeerReady(PeerId),
    /// Reconcile with these peers now and say which succeeded.
    Now(Vec<PeerId>, oneshot::Sender<Vec<PeerId>>),
}

/// What a session needs from the node, shared with child tasks.
#[derive(Clone)]
pub struct SyncContext {
    /// Store, trust, parameters, limits and counters.
    pub checker: Checker,
    /// Commands to the swarm task.
    pub swarm_tx: mpsc::Sender<MeshCommand>,
    /// This node's PeerId: of two peers, the smaller opens the session on connect.
    pub local: PeerId,
}

/// The sync task's loop.
pub async fn run(
    ctx: SyncContext,
    mut inbound_rx: mpsc::Receiver<SyncInbound>,
    mut order_rx: mpsc::Receiver<SyncOrder>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut responder = Responder::new(Tracker(ctx.checker.stats.clone()));
    let mut children = JoinSet::new();
    // Read the set into its cache while the first hellos are exchanged:
    // the first session then finds it ready.
    children.spawn(warm(ctx.clone()));
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    let mut sweep = tokio::time::interval(hostile::SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut turn = 0usize;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(inbound) = inbound_rx.recv() => {
                let answer = responder.respond(&ctx, inbound.peer, inbound.request).await;
                if let Some(id) = answer.then_initiate {
                    let (ctx, guard) = (ctx.clone(), Guard { tracker: Tracker(ctx.checker.stats.clone()), id });
                    children.spawn(async move { run_session(&ctx, inbound.peer, guard).await.ok(); });
                }
                let _ = ctx.swarm_tx.send(MeshCommand::SyncRespond(inbound.channel, answer.response)).await;
            }
            Some(order) = order_rx.recv() => match order {
                SyncOrder::PeerReady(peer) => {
                    responder.reconnected(peer);
                    // Of two peers, the smaller opens the session; the other waits.
                    if ctx.local < peer {
                        children.spawn(session_logged(ctx.clone(), peer, Duration::ZERO));
                    }
                }
                SyncOrder::Now(peers, reply) => {
                    let ctx = ctx.clone();
                    children.spawn(async move {
                        let mut done = Vec::new();
                        for peer in peers {
                            if matches!(session(&ctx, peer, NOW_WAIT).await, Ok(Outcome::Done { .. })) {
                                done.push(peer);
                            }
                        }
                        let _ = reply.send(done);
                    });
                }
            },
            _ = sweep.tick() => responder.expire(&ctx, None),
            _ = tick.tick() => {
                if let Some(peer) = next_peer(&ctx, &mut turn).await {
                    children.spawn(session_logged(ctx.clone(), peer, Duration::ZERO));
                }
            }
            Some(_) = children.join_next(), if !children.is_empty() => {}
        }
    }
    children.shutdown().await;
}

/// Fills the node's cached sync set.
async fn warm(ctx: SyncContext) {
    let params = ctx.checker.params;
    let began = std::time::Instant::now();
    match ctx.checker.store.sync_set(crate::clock::now_ms(), &params).await {
        Ok(set) => tracing::info!(
            items = set.entries().len(),
            ms = began.elapsed().as_millis() as u64,
            "sync set read"
        ),
        Err(e) => tracing::debug!(error = %e, "sync set not read ahead"),
    }
}

/// The timer's next peer: ready peers in turn, skipping those in doubt
/// (nothing heard lately: a session would only wait out its timeout) and
/// those in session already.
async fn next_peer(ctx: &SyncContext, turn: &mut usize) -> Option<PeerId> {
    let (reply, answer) = oneshot::channel();
    ctx.swarm_tx.send(MeshCommand::Peers(reply)).await.ok()?;
    let peers = answer.await.ok()?;
    let mut ready: Vec<PeerId> =
        peers.iter().filter(|p| p.ready && !p.in_doubt).map(|p| p.peer).collect();
    ready.sort();
    if ready.is_empty() {
        return None;
    }
    *turn = turn.wrapping_add(1);
    let peer = ready[*turn % ready.len()];
    let tracker = Tracker(ctx.checker.stats.clone());
    if tracker.in_session(&peer) || tracker.initiating_full() || tracker.catching_up() {
        tracker.skip();
        return None;
    }
    Some(peer)
}

/// One initiator session with `peer`, waiting up to `wait` for a session
/// running with it to end.
async fn session(ctx: &SyncContext, peer: PeerId, wait: Duration) -> Result<Outcome, String> {
    let guard = initiator::begin(ctx, peer, wait).await.map_err(|e| match e {
        NotStarted::InSession => "a session with this peer runs".to_owned(),
        NotStarted::Busy => "this node runs as many sessions as it may".to_owned(),
    })?;
    run_session(ctx, peer, guard).await
}

/// Runs the session `guard` registered, and logs how it ended.
async fn run_session(ctx: &SyncContext, peer: PeerId, guard: Guard) -> Result<Outcome, String> {
    let outcome = initiator::initiate(ctx, peer, &guard).await;
    let ended = guard.tracker.end(guard.id);
    if ended.as_ref().is_some_and(|p| p.records >= crate::memory::TRIM_AFTER_RECORDS) {
        // A join: the pages the writer cached as it stored the set go too.
        ctx.checker.store.shrink_caches().await;
        crate::memory::release_freed();
    }
    if let Some(p) = ended {
        match &outcome {
            Ok(Outcome::Done { pushed, pulled }) => tracing::info!(
                target: "banmesh::events::synced",
                %peer, pushed, pulled, records = p.records, bytes = p.bytes,
                secs = crate::clock::now_ms().saturating_sub(p.started_ms) / 1000, "sync finished"
            ),
            Ok(Outcome::Declined(reason)) => tracing::debug!(%peer, reason, "sync declined"),
            Err(e) => {
                tracing::debug!(%peer, error = %e, records = p.records, "sync did not finish")
            }
        }
    }
    outcome
}

async fn session_logged(ctx: SyncContext, peer: PeerId, wait: Duration) {
    let _ = session(&ctx, peer, wait).await;
}

/// Fetches `items` and packs them into gossip-format batches carrying the
/// certificates of the records' origins.
async fn batches_of(
    ctx: &SyncContext,
    items: Vec<(u64, [u8; 32])>,
) -> Result<Vec<Vec<u8>>, String> {
    let (records, certs, revocations) = ctx
        .checker
        .store
        .read(move |c, p| sync_set::fetch_items(c, p, &items))
        .await
        .map_err(|e| e.to_string())?;
    let mut encoded = trust_batches(&certs, &revocations);
    let trust = ctx.checker.trust.read().unwrap_or_else(PoisonError::into_inner).clone();
    let cert_of = |origin: Origin| trust.cert_of_origin(&origin).cloned();
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
