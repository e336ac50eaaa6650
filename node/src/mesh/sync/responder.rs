//! The responder side of `/banmesh/sync/1`: sessions answering negentropy
//! rounds, pulls, pushes and closes, and streams of the whole set for an
//! empty node. One session with each peer at a time and at most
//! [`MAX_RESPONDING`](super::sessions::MAX_RESPONDING) at once; an idle
//! one is dropped after [`SESSION_IDLE`].

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use banmesh_crdt::Origin;
use libp2p::PeerId;
use negentropy::Negentropy;
use serde_bytes::ByteBuf;

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

/// How long a session lives without a request.
pub(super) const SESSION_IDLE: Duration = Duration::from_secs(30);
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
}

/// A stream a peer is being sent.
pub(super) struct Stream {
    used: Instant,
    progress: u64,
}

/// The responder's sessions, owned by the sync task.
pub(super) struct Responder {
    sessions: HashMap<u64, Session>,
    streams: HashMap<PeerId, Stream>,
    next_session: u64,
    tracker: Tracker,
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
        Responder { sessions: HashMap::new(), streams: HashMap::new(), next_session, tracker }
    }

    /// Drops sessions idle for [`SESSION_IDLE`], and `peer`'s idle for
    /// [`STALE`].
    pub(super) fn expire(&mut self, peer: Option<PeerId>) {
        let now = Instant::now();
        let tracker = &self.tracker;
        let live = |of: PeerId, used: Instant, progress: u64| {
            let limit = if Some(of) == peer { STALE } else { SESSION_IDLE };
            let live = now.duration_since(used) < limit;
            if !live {
                tracker.end(progress);
            }
            live
        };
        self.sessions.retain(|_, s| live(s.peer, s.used, s.progress));
        self.streams.retain(|of, s| live(*of, s.used, s.progress));
    }

    /// Registers a new session with `peer`, or the refusal to send.
    fn begin(&mut self, peer: PeerId, stream: bool) -> Result<u64, SyncResponse> {
        self.expire(Some(peer));
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
            SyncRequest::Round { session, msg } => plain(match self.session(session, peer) {
                Some(s) => match s.negentropy.reconcile(&msg) {
                    Ok(answer) => SyncResponse::Round { session, msg: ByteBuf::from(answer) },
                    Err(_) => refused("malformed negentropy message"),
                },
                None => refused("unknown session"),
            }),
            SyncRequest::Pull { session, ids } => plain(self.pull(ctx, peer, session, &ids).await),
            SyncRequest::Push { batch } => plain(if batch.len() > MAX_MESSAGE {
                refused("batch over 64 KiB")
            } else {
                match verifier::verify(&batch, &peer, &ctx.checker).await.0 {
                    Ok(_) => SyncResponse::Done,
                    Err(reason) => refused(reason),
                }
            }),
            SyncRequest::Stream { horizon_ms, after } => {
                plain(self.stream(ctx, peer, horizon_ms, after).await)
            }
            SyncRequest::Close { session } => {
                if self.sessions.get(&session).is_some_and(|s| s.peer == peer)
                    && let Some(s) = self.sessions.remove(&session)
                {
                    self.tracker.end(s.progress);
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
        if peer_has_records && !self.tracker.in_session(&peer) {
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
        let answer = Negentropy::owned(storage.clone(), NEGENTROPY_FRAME)
            .map_err(|_| "internal")
            .and_then(|mut n| {
                n.reconcile(msg).map(|a| (n, a)).map_err(|_| "malformed negentropy message")
            });
        match answer {
            Ok((negentropy, answer)) => {
                self.next_session = self.next_session.wrapping_add(1);
                let session = self.next_session;
                let used = Instant::now();
                self.sessions
                    .insert(session, Session { peer, negentropy, storage, used, progress });
                plain(SyncResponse::Round { session, msg: ByteBuf::from(answer) })
            }
            Err(reason) => {
                self.tracker.end(progress);
                plain(refused(reason))
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
        if ids.len() > PULL_IDS {
            return refused("too many ids");
        }
        let Some(s) = self.session(session, peer) else { return refused("unknown session") };
        let ids: Vec<[u8; 32]> =
            ids.iter().filter_map(|id| <[u8; 32]>::try_from(id.as_slice()).ok()).collect();
        let (items, progress) = (s.storage.find(&ids), s.progress);
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
            match self.begin(peer, true) {
                Ok(progress) => {
                    self.streams.insert(peer, Stream { used: Instant::now(), progress });
                }
                Err(response) => return response,
            }
        }
        let Some(stream) = self.streams.get_mut(&peer) else {
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
            Err(e) => refused(&e),
        }
    }
}

/// One page of the set for [`SyncRequest::Stream`], with its record count,
/// bytes and (on the first page) the set's size.
async fn page(
    ctx: &SyncContext,
    horizon_ms: u64,
    after: Option<(u64, ByteBuf)>,
) -> Result<(SyncResponse, usize, usize, Option<u64>), String> {
    let cursor = match &after {
        Some((at, id)) => {
            Some((*at, <[u8; 32]>::try_from(id.as_slice()).map_err(|_| "bad cursor".to_owned())?))
        }
        None => None,
    };
    let params = ctx.checker.params;
    let (records, next) = ctx
        .checker
        .store
        .read(move |c, p| query::records_after(c, p, horizon_ms, &params, cursor, PAGE_RECORDS))
        .await
        .map_err(|e| e.to_string())?;
    let (mut batches, mut total) = (Vec::new(), None);
    if after.is_none() {
        let (certs, revocations) =
            ctx.checker.store.read(query::trust_items).await.map_err(|e| e.to_string())?;
        batches.extend(trust_batches(&certs, &revocations));
        let count =
            ctx.checker.store.read(move |c, p| sync_set::count_records(c, p, horizon_ms, &params));
        total = count.await.ok();
    }
    let count = records.len();
    let trust = ctx.checker.trust.read().unwrap_or_else(PoisonError::into_inner).clone();
    batches.extend(pack(records, |origin: Origin| {
        banmesh_keys::PublicKey::from_bytes(&origin.0).ok().and_then(|k| trust.cert_of(&k).cloned())
    }));
    let bytes = batches.iter().map(Vec::len).sum();
    let response = SyncResponse::Page {
        batches: batches.into_iter().map(ByteBuf::from).collect(),
        next: next.map(|(at, id)| (at, ByteBuf::from(id.to_vec()))),
        total,
    };
    Ok((response, count, bytes, total))
}
