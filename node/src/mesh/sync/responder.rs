//! The responder side of `/banmesh/sync/1`: sessions answering negentropy
//! rounds, pulls, pushes and closes, and streams of the whole set for an
//! empty node. One session with each peer at a time and at most
//! [`MAX_RESPONDING`](super::sessions::MAX_RESPONDING) at once, opened at
//! a bounded rate per peer, dropped when it stalls, and answering what its
//! set justifies and no more ([`hostile`](super::hostile)).

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::Duration;

// Tokio's clock (the machine's, unless a test pauses it: the sync
// simulation moves it between sessions).
use tokio::time::Instant;

use banmesh_crdt::Origin;
use libp2p::PeerId;
use negentropy::Negentropy;
use serde_bytes::ByteBuf;

use super::hostile::{self, Budget, OpenRate, SESSION_IDLE, Strike};
use super::initiator::{EMPTY, IN_SESSION};
use super::sessions::{NotStarted, Role, Tracker};
use super::storage::Shared;
use super::{
    NEGENTROPY_FRAME, PAGE_RECORDS, PULL_IDS, SyncContext, SyncRequest, SyncResponse, batches_of,
    trust_batches,
};
use crate::clock::now_ms;
use crate::mesh::batch::{MAX_MESSAGE, pack};
use crate::mesh::verifier;
use crate::store::{query, sync_set};

/// A peer's session idle this long gives way to a new one it opens (it
/// reconnected, or its side gave up): back-to-back Opens are still refused.
const STALE: Duration = Duration::from_secs(5);

/// A reconciliation a peer opened.
pub(super) struct Session {
    peer: PeerId,
    negentropy: Negentropy<'static, Shared>,
    storage: Shared,
    used: Instant,
    progress: u64,
    budget: Budget,
}

/// A stream a peer is being sent.
pub(super) struct Stream {
    used: Instant,
    began: Instant,
    progress: u64,
}

/// The responder's sessions, owned by the sync task.
pub(super) struct Responder {
    sessions: HashMap<u64, Session>,
    streams: HashMap<PeerId, Stream>,
    next_session: u64,
    tracker: Tracker,
    rate: OpenRate,
}

/// An answer, and the session this node registered to open with the
/// asking peer (it declined a reconciliation because it is empty).
pub(super) struct Answer {
    pub response: SyncResponse,
    pub then_initiate: Option<u64>,
}

fn refused(reason: &str) -> SyncResponse {
    SyncResponse::Refused { reason: reason.to_owned() }
}

impl Responder {
    pub(super) fn new(tracker: Tracker) -> Responder {
        let next_session = u64::from(std::process::id()) << 32;
        let rate = OpenRate::default();
        Responder { sessions: HashMap::new(), streams: HashMap::new(), next_session, tracker, rate }
    }

    /// Drops sessions idle for [`SESSION_IDLE`] or older than
    /// [`SESSION_MAX`](hostile::SESSION_MAX) (counted and logged as
    /// stalled), and `peer`'s idle for [`STALE`] (it opens a new one).
    pub(super) fn expire(&mut self, ctx: &SyncContext, peer: Option<PeerId>) {
        let now = Instant::now();
        let tracker = &self.tracker;
        let live = |of: PeerId, used: Instant, too_old: bool, progress: u64| {
            let idle = now.duration_since(used);
            let limit = if Some(of) == peer { STALE } else { SESSION_IDLE };
            let live = idle < limit && !too_old;
            if !live {
                let moved = tracker.end(progress).map_or(0, |p| p.records);
                if idle >= SESSION_IDLE || too_old {
                    hostile::count(ctx, hostile::STALLED);
                    tracing::warn!(
                        target: "banmesh::events::sync_stalled", peer = %of, idle_s = idle.as_secs(),
                        records = moved, "sync session dropped: the peer stalled or held it too long"
                    );
                }
            }
            live
        };
        self.sessions.retain(|_, s| live(s.peer, s.used, s.budget.too_old(now), s.progress));
        let old = |began: Instant| now.saturating_duration_since(began) >= hostile::SESSION_MAX;
        self.streams.retain(|of, s| live(*of, s.used, old(s.began), s.progress));
        self.rate.prune(now);
    }

    /// A fresh connection from `peer` was admitted after it had none: its
    /// open burst is refilled ([`OpenRate::reconnected`]).
    pub(super) fn reconnected(&mut self, peer: PeerId) {
        self.rate.reconnected(peer, Instant::now());
    }

    /// Whether `peer` may open a session now: none of its runs (after
    /// dropping its stale one), and its open rate allows one more.
    fn admit(&mut self, ctx: &SyncContext, peer: PeerId) -> Result<(), SyncResponse> {
        self.expire(ctx, Some(peer));
        if self.tracker.in_session(&peer) {
            self.tracker.refuse();
            return Err(refused(IN_SESSION));
        }
        if !self.rate.take(peer, Instant::now()) {
            self.tracker.refuse();
            hostile::count(ctx, hostile::OVER_RATE);
            return Err(refused("too many sessions: slow down"));
        }
        Ok(())
    }

    /// Registers a new session with `peer`, or the refusal to send.
    fn begin(&mut self, peer: PeerId, stream: bool) -> Result<u64, SyncResponse> {
        match self.tracker.begin(peer, Role::Responder, stream) {
            Ok(id) => Ok(id),
            Err(NotStarted::InSession) => Err(refused(IN_SESSION)),
            Err(NotStarted::Busy) => Err(refused("busy")),
        }
    }

    /// Answers one inbound request.
    pub(super) async fn respond(
        &mut self,
        ctx: &SyncContext,
        peer: PeerId,
        request: SyncRequest,
    ) -> Answer {
        let plain = |response| Answer { response, then_initiate: None };
        match request {
            SyncRequest::Open { horizon_ms, msg, records } => {
                self.open(ctx, peer, horizon_ms, &msg, records).await
            }
            SyncRequest::Round { session, msg } => plain(self.round(ctx, peer, session, &msg)),
            SyncRequest::Pull { session, ids } => plain(self.pull(ctx, peer, session, &ids).await),
            SyncRequest::Push { batch } => plain(self.push(ctx, peer, &batch).await),
            SyncRequest::Stream { horizon_ms, after } => {
                plain(self.stream(ctx, peer, horizon_ms, after).await)
            }
            SyncRequest::Close { session } => {
                if self.end(session, peer).is_some() {
                    // A reconciliation with the peer finished, on this side too.
                    let mut stats =
                        ctx.checker.stats.lock().unwrap_or_else(PoisonError::into_inner);
                    stats.last_sync.insert(peer, now_ms());
                }
                plain(SyncResponse::Done)
            }
        }
    }

    fn session(&mut self, session: u64, peer: PeerId) -> Option<&mut Session> {
        let s = self.sessions.get_mut(&session).filter(|s| s.peer == peer)?;
        s.used = Instant::now();
        Some(s)
    }

    /// Ends `peer`'s session `session`; the session, if it was one.
    fn end(&mut self, session: u64, peer: PeerId) -> Option<Session> {
        if self.sessions.get(&session).is_none_or(|s| s.peer != peer) {
            return None;
        }
        let s = self.sessions.remove(&session)?;
        self.tracker.end(s.progress);
        Some(s)
    }

    /// A session that asked for more than its set justifies ends.
    fn over_budget(&mut self, ctx: &SyncContext, session: u64, peer: PeerId) -> SyncResponse {
        self.end(session, peer);
        hostile::count(ctx, hostile::OVER_BUDGET);
        tracing::warn!(target: "banmesh::events::sync_over_budget", %peer, "sync session asked for more than its set: ended");
        refused("session over its budget")
    }

    /// The answer to a later negentropy message.
    fn round(&mut self, ctx: &SyncContext, peer: PeerId, session: u64, msg: &[u8]) -> SyncResponse {
        let Some(s) = self.session(session, peer) else {
            hostile::count(ctx, hostile::UNKNOWN_SESSION);
            return refused("unknown session");
        };
        if !s.budget.round() {
            return self.over_budget(ctx, session, peer);
        }
        match s.negentropy.reconcile(msg) {
            Ok(answer) => SyncResponse::Round { session, msg: ByteBuf::from(answer) },
            Err(_) => {
                self.end(session, peer);
                hostile::strike(ctx, peer, Strike::Negentropy);
                refused(Strike::Negentropy.reason())
            }
        }
    }

    /// Stores a pushed batch: only within a session the peer holds here
    /// (an initiator pushes between its Open and its Close), so pushes are
    /// bounded by the sessions a peer may open.
    async fn push(&mut self, ctx: &SyncContext, peer: PeerId, batch: &[u8]) -> SyncResponse {
        let Some(session) = self.sessions.values_mut().find(|s| s.peer == peer) else {
            hostile::count(ctx, hostile::PUSH_OUTSIDE);
            return refused("no session: open one first");
        };
        session.used = Instant::now();
        if batch.len() > MAX_MESSAGE {
            hostile::strike(ctx, peer, Strike::Batch);
            return refused("batch over 64 KiB");
        }
        match verifier::verify(batch, &peer, &ctx.checker).await.0 {
            Ok(_) => SyncResponse::Done,
            Err(reason) => {
                hostile::strike(ctx, peer, Strike::Batch);
                refused(reason)
            }
        }
    }

    async fn open(
        &mut self,
        ctx: &SyncContext,
        peer: PeerId,
        horizon_ms: u64,
        msg: &[u8],
        peer_has_records: bool,
    ) -> Answer {
        let plain = |response| Answer { response, then_initiate: None };
        if horizon_ms > now_ms().saturating_add(ctx.checker.params.skew_bound_ms) {
            return plain(refused("horizon in the future"));
        }
        if self.tracker.catching_up() {
            self.tracker.refuse();
            return plain(refused("busy: catching up"));
        }
        if let Err(response) = self.admit(ctx, peer) {
            return plain(response);
        }
        if peer_has_records {
            let params = ctx.checker.params;
            let has = ctx
                .checker
                .store
                .read(move |c, p| sync_set::has_records(c, p, horizon_ms, &params));
            if matches!(has.await, Ok(false)) {
                // Streaming the set from the peer beats being pushed it
                // record by record: decline, and open a session that streams.
                // Registered here, before the next request is answered, so
                // a second peer's Open finds this node catching up.
                return match self.tracker.begin(peer, Role::Initiator, true) {
                    Ok(id) => Answer { response: refused(EMPTY), then_initiate: Some(id) },
                    Err(_) => plain(refused("busy")),
                };
            }
        }
        let progress = match self.begin(peer, false) {
            Ok(id) => id,
            Err(response) => return plain(response),
        };
        let storage = match Shared::build(ctx, horizon_ms).await {
            Ok(s) => s,
            Err(e) => {
                self.tracker.end(progress);
                return plain(refused(&e));
            }
        };
        let size = storage.item_count();
        let answer =
            Negentropy::owned(storage.clone(), NEGENTROPY_FRAME).map_err(|_| None).and_then(
                |mut n| n.reconcile(msg).map(|a| (n, a)).map_err(|_| Some(Strike::Negentropy)),
            );
        match answer {
            Ok((negentropy, answer)) => {
                self.next_session = self.next_session.wrapping_add(1);
                let session = self.next_session;
                let (used, budget) = (Instant::now(), Budget::new(size));
                let s = Session { peer, negentropy, storage, used, progress, budget };
                self.sessions.insert(session, s);
                plain(SyncResponse::Round { session, msg: ByteBuf::from(answer) })
            }
            Err(strike) => {
                self.tracker.end(progress);
                if let Some(strike) = strike {
                    hostile::strike(ctx, peer, strike);
                }
                plain(refused(strike.map_or("internal", Strike::reason)))
            }
        }
    }

    async fn pull(
        &mut self,
        ctx: &SyncContext,
        peer: PeerId,
        session: u64,
        ids: &[ByteBuf],
    ) -> SyncResponse {
        let parsed: Vec<[u8; 32]> =
            ids.iter().filter_map(|id| <[u8; 32]>::try_from(id.as_slice()).ok()).collect();
        if ids.len() > PULL_IDS || parsed.len() != ids.len() {
            self.end(session, peer);
            hostile::strike(ctx, peer, Strike::Ids);
            return refused(Strike::Ids.reason());
        }
        let Some(s) = self.session(session, peer) else {
            hostile::count(ctx, hostile::UNKNOWN_SESSION);
            return refused("unknown session");
        };
        if !s.budget.pull(parsed.len()) {
            return self.over_budget(ctx, session, peer);
        }
        let (items, progress) = (s.storage.find(&parsed), s.progress);
        let count = items.len();
        match batches_of(ctx, items).await {
            Ok(batches) => {
                self.tracker.add(progress, count, batches.iter().map(Vec::len).sum());
                SyncResponse::Items { batches: batches.into_iter().map(ByteBuf::from).collect() }
            }
            Err(e) => refused(&e),
        }
    }

    /// One page of a stream: the first page opens the stream (one per
    /// peer, counted against the cap), the last ends it.
    async fn stream(
        &mut self,
        ctx: &SyncContext,
        peer: PeerId,
        horizon_ms: u64,
        after: Option<(u64, ByteBuf)>,
    ) -> SyncResponse {
        if horizon_ms > now_ms().saturating_add(ctx.checker.params.skew_bound_ms) {
            return refused("horizon in the future");
        }
        if after.is_none() {
            if let Err(response) = self.admit(ctx, peer) {
                return response;
            }
            match self.begin(peer, true) {
                Ok(progress) => {
                    let now = Instant::now();
                    self.streams.insert(peer, Stream { used: now, began: now, progress });
                }
                Err(response) => return response,
            }
        }
        let Some(stream) = self.streams.get_mut(&peer) else {
            hostile::count(ctx, hostile::UNKNOWN_SESSION);
            return refused("unknown session");
        };
        stream.used = Instant::now();
        let progress = stream.progress;
        match page(ctx, horizon_ms, after).await {
            Ok((response, records, bytes, total)) => {
                self.tracker.add(progress, records, bytes);
                if total.is_some() {
                    self.tracker.phase(progress, true, total);
                }
                if matches!(response, SyncResponse::Page { next: None, .. }) {
                    self.streams.remove(&peer);
                    self.tracker.end(progress);
                }
                response
            }
            Err(PageError::Cursor) => {
                if let Some(s) = self.streams.remove(&peer) {
                    self.tracker.end(s.progress);
                }
                hostile::strike(ctx, peer, Strike::Cursor);
                refused(Strike::Cursor.reason())
            }
            Err(PageError::Store(e)) => refused(&e),
        }
    }
}

/// Why a page could not be sent.
enum PageError {
    /// The cursor is not (timestamp, 32-byte id).
    Cursor,
    /// The store failed.
    Store(String),
}

/// One page of the set for [`SyncRequest::Stream`], with its record count,
/// bytes and (on the first page) the set's size.
async fn page(
    ctx: &SyncContext,
    horizon_ms: u64,
    after: Option<(u64, ByteBuf)>,
) -> Result<(SyncResponse, usize, usize, Option<u64>), PageError> {
    let cursor = match &after {
        Some((at, id)) => {
            Some((*at, <[u8; 32]>::try_from(id.as_slice()).map_err(|_| PageError::Cursor)?))
        }
        None => None,
    };
    let store = |e: crate::store::StoreError| PageError::Store(e.to_string());
    let params = ctx.checker.params;
    let (records, next) = ctx
        .checker
        .store
        .read(move |c, p| query::records_after(c, p, horizon_ms, &params, cursor, PAGE_RECORDS))
        .await
        .map_err(store)?;
    let (mut batches, mut total) = (Vec::new(), None);
    if after.is_none() {
        let (certs, revocations) =
            ctx.checker.store.read(query::trust_items).await.map_err(store)?;
        batches.extend(trust_batches(&certs, &revocations));
        let count =
            ctx.checker.store.read(move |c, p| sync_set::count_records(c, p, horizon_ms, &params));
        total = count.await.ok();
    }
    let count = records.len();
    let trust = ctx.checker.trust.read().unwrap_or_else(PoisonError::into_inner).clone();
    batches.extend(pack(records, |origin: Origin| trust.cert_of_origin(&origin).cloned()));
    let bytes = batches.iter().map(Vec::len).sum();
    let response = SyncResponse::Page {
        batches: batches.into_iter().map(ByteBuf::from).collect(),
        next: next.map(|(at, id)| (at, ByteBuf::from(id.to_vec()))),
        total,
    };
    Ok((response, count, bytes, total))
}
