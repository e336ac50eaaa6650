//! The initiator side of `/banmesh/sync/1`: an empty node is first
//! streamed the whole set page by page; then negentropy rounds, each
//! round's differences pushed and pulled before the next round, so no
//! session holds more than a frame's worth of ids or a page of records.

use std::sync::PoisonError;
use std::time::Duration;

use libp2p::PeerId;
use negentropy::Negentropy;
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};

use super::hostile::{self, Strike};
use super::sessions::{Guard, NotStarted, Role, Tracker};
use super::storage::Shared;
use super::{
    MAX_ROUNDS, NEGENTROPY_FRAME, PULL_IDS, SyncContext, SyncRequest, SyncResponse, batches_of,
};
use crate::clock::now_ms;
use crate::mesh::swarm::MeshCommand;
use crate::mesh::verifier::{self, JudgedBatches};
use crate::store::sync_set;

/// Refusals that mean "not now, a session with you runs": the first
/// request is tried again for a while.
pub(super) const IN_SESSION: &str = "in session";
/// Refusal of an empty node, which streams from the initiator instead.
pub(super) const EMPTY: &str = "empty: it streams from you";
const RETRIES: usize = 30;
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// How a session ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// It ran; records pushed and pulled.
    Done { pushed: usize, pulled: usize },
    /// Declined: the peer is empty (and streams from this node) or busy, or
    /// this node is streamed the set by another peer.
    Declined(String),
}

pub(super) async fn request(
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

/// [`request`], tried again while the peer says a session with this node
/// still runs (its own, ending).
async fn first_request(
    ctx: &SyncContext,
    peer: PeerId,
    req: SyncRequest,
) -> Result<SyncResponse, String> {
    for _ in 0..RETRIES {
        match request(ctx, peer, req.clone()).await {
            Err(e) if e.ends_with(IN_SESSION) => tokio::time::sleep(RETRY_AFTER).await,
            other => return other,
        }
    }
    Err(format!("refused: {IN_SESSION}"))
}

/// Registers a session with `peer`, waiting up to `wait` for one running
/// with it (or the cap) to end.
pub(super) async fn begin(
    ctx: &SyncContext,
    peer: PeerId,
    wait: Duration,
) -> Result<Guard, NotStarted> {
    let tracker = Tracker(ctx.checker.stats.clone());
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tracker.begin(peer, Role::Initiator, false) {
            Ok(id) => return Ok(Guard { tracker, id }),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(RETRY_AFTER).await,
        }
    }
}

/// One initiator session with `peer`: stream if empty, then reconcile.
pub(super) async fn initiate(
    ctx: &SyncContext,
    peer: PeerId,
    guard: &Guard,
) -> Result<Outcome, String> {
    let horizon_ms = now_ms();
    let params = ctx.checker.params;
    let has = ctx.checker.store.read(move |c, p| sync_set::has_records(c, p, horizon_ms, &params));
    let mut records = has.await.map_err(|e| e.to_string())?;
    guard.tracker.phase(guard.id, false, None);
    if !records {
        if !guard.tracker.start_stream(guard.id) {
            return Ok(Outcome::Declined("this node is streamed the set by another peer".into()));
        }
        records = stream_from(ctx, peer, horizon_ms, guard).await? > 0;
    }
    let storage = Shared::build(ctx, horizon_ms).await?;
    let mut negentropy =
        Negentropy::owned(storage.clone(), NEGENTROPY_FRAME).map_err(|e| e.to_string())?;
    let first = negentropy.initiate().map_err(|e| e.to_string())?;
    let open = SyncRequest::Open { horizon_ms, msg: ByteBuf::from(first), records };
    let (session, msg) = match first_request(ctx, peer, open).await {
        Ok(SyncResponse::Round { session, msg }) => (session, msg),
        Ok(_) => return Err("unexpected answer to open".into()),
        Err(e) if e.ends_with(EMPTY) || e.contains("refused: busy") => {
            return Ok(Outcome::Declined(e));
        }
        Err(e) => return Err(e),
    };
    let result = reconcile(ctx, peer, session, &mut negentropy, &storage, msg, guard).await;
    let _ = request(ctx, peer, SyncRequest::Close { session }).await;
    let (pushed, pulled) = result?;
    let mut stats = ctx.checker.stats.lock().unwrap_or_else(PoisonError::into_inner);
    stats.last_sync.insert(peer, now_ms());
    Ok(Outcome::Done { pushed, pulled })
}

/// Negentropy rounds; each round's differences are pushed and pulled
/// before the next. Returns records pushed and pulled.
async fn reconcile(
    ctx: &SyncContext,
    peer: PeerId,
    session: u64,
    negentropy: &mut Negentropy<'static, Shared>,
    storage: &Shared,
    mut msg: ByteBuf,
    guard: &Guard,
) -> Result<(usize, usize), String> {
    let (mut pushed, mut pulled) = (0, 0);
    for _ in 0..MAX_ROUNDS {
        let (mut have, mut need) = (Vec::new(), Vec::new());
        let next = negentropy.reconcile_with_ids(&msg, &mut have, &mut need).map_err(|e| {
            hostile::strike(ctx, peer, Strike::Negentropy);
            e.to_string()
        })?;
        let have: Vec<[u8; 32]> = have.iter().map(|id| id.to_bytes()).collect();
        for chunk in have.chunks(PULL_IDS) {
            pushed += push(ctx, peer, storage.find(chunk), guard).await?;
        }
        for chunk in need.chunks(PULL_IDS) {
            let ids = chunk.iter().map(|id| ByteBuf::from(id.to_bytes().to_vec())).collect();
            let SyncResponse::Items { batches } =
                request(ctx, peer, SyncRequest::Pull { session, ids }).await?
            else {
                return Err("unexpected answer to pull".into());
            };
            pulled += receive(ctx, peer, batches, guard).await?;
        }
        let Some(next) = next else { break };
        let SyncResponse::Round { msg: answer, .. } =
            request(ctx, peer, SyncRequest::Round { session, msg: ByteBuf::from(next) }).await?
        else {
            return Err("unexpected answer to round".into());
        };
        msg = answer;
    }
    Ok((pushed, pulled))
}

/// Judges and stores received batches; returns how many records they held.
async fn receive(
    ctx: &SyncContext,
    peer: PeerId,
    batches: Vec<ByteBuf>,
    guard: &Guard,
) -> Result<usize, String> {
    let page = judge_page(ctx, batches).await;
    store_page(ctx, peer, page, guard).await
}

/// Received batches judged, not stored yet, and their size in bytes.
struct JudgedPage {
    batches: JudgedBatches,
    bytes: usize,
}

/// Judges received batches (signatures on every core); stores nothing.
async fn judge_page(ctx: &SyncContext, batches: Vec<ByteBuf>) -> JudgedPage {
    let bytes = batches.iter().map(|b| b.len()).sum();
    let data: Vec<Vec<u8>> = batches.into_iter().map(ByteBuf::into_vec).collect();
    JudgedPage { batches: verifier::judge_many(data, &ctx.checker).await, bytes }
}

/// Stores judged batches; a bad one strikes the peer and ends the
/// session. Returns how many records they held.
async fn store_page(
    ctx: &SyncContext,
    peer: PeerId,
    page: JudgedPage,
    guard: &Guard,
) -> Result<usize, String> {
    let JudgedPage { batches, bytes } = page;
    let records = batches.records();
    let sources = vec![peer; batches.len()];
    for (verdict, _) in verifier::store_judged(batches, &sources, &ctx.checker, false).await {
        verdict.map_err(|reason| {
            hostile::strike(ctx, peer, Strike::Batch);
            format!("peer sent a bad batch: {reason}")
        })?;
    }
    guard.tracker.add(guard.id, records, bytes);
    Ok(records)
}

/// Pushes these items, as gossip-format batches; returns how many.
async fn push(
    ctx: &SyncContext,
    peer: PeerId,
    items: Vec<(u64, [u8; 32])>,
    guard: &Guard,
) -> Result<usize, String> {
    if items.is_empty() {
        return Ok(0);
    }
    let count = items.len();
    for batch in batches_of(ctx, items).await? {
        let bytes = batch.len();
        request(ctx, peer, SyncRequest::Push { batch: ByteBuf::from(batch) }).await?;
        guard.tracker.add(guard.id, 0, bytes);
    }
    Ok(count)
}

/// Pages fetched but not yet judged, and judged but not yet stored: with
/// the page being fetched, judged and stored, at most seven are held.
const PAGES_QUEUED: usize = 2;

/// Streams the peer's whole set into this (empty) node, page by page;
/// returns how many records it stored. Three stages run side by side,
/// joined by short queues so none waits on a slower page of another: the
/// peer is asked for the next page as soon as one arrives; pages are
/// judged (signatures on every core) as they come; judged pages are
/// stored one at a time, in order. An error in any stage stops the other
/// two: the queues close behind and before it.
async fn stream_from(
    ctx: &SyncContext,
    peer: PeerId,
    horizon_ms: u64,
    guard: &Guard,
) -> Result<usize, String> {
    let (fetched_tx, mut fetched_rx) = mpsc::channel::<Vec<ByteBuf>>(PAGES_QUEUED);
    let (judged_tx, mut judged_rx) = mpsc::channel::<JudgedPage>(PAGES_QUEUED);
    let fetch = async move {
        let mut after = None;
        loop {
            let first = after.is_none();
            let page = SyncRequest::Stream { horizon_ms, after };
            let answer = if first {
                first_request(ctx, peer, page).await
            } else {
                request(ctx, peer, page).await
            };
            let SyncResponse::Page { batches, next, total } = answer? else {
                return Err("unexpected answer to stream".to_owned());
            };
            if first && total.is_some() {
                guard.tracker.phase(guard.id, true, total);
            }
            if fetched_tx.send(batches).await.is_err() || next.is_none() {
                return Ok(());
            }
            after = next;
        }
    };
    let judge = async move {
        while let Some(batches) = fetched_rx.recv().await {
            if judged_tx.send(judge_page(ctx, batches).await).await.is_err() {
                break;
            }
        }
    };
    let store = async move {
        let mut stored = 0;
        while let Some(page) = judged_rx.recv().await {
            stored += store_page(ctx, peer, page, guard).await?;
        }
        Ok::<usize, String>(stored)
    };
    let (fetched, (), stored) = tokio::join!(fetch, judge, store);
    let stored = stored?;
    fetched?;
    guard.tracker.phase(guard.id, false, None);
    tracing::info!(target: "banmesh::events::streamed", %peer, records = stored, "streamed the whole set");
    Ok(stored)
}
