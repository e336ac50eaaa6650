//! The responder side of `/banmesh/sync/1`: sessions answering negentropy
//! rounds, pulls, pushes, closes, and pages of the whole set for an empty
//! node.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::Instant;

use banmesh_crdt::Origin;
use libp2p::PeerId;
use negentropy::Negentropy;
use serde_bytes::ByteBuf;

use super::{
    MAX_SESSIONS, NEGENTROPY_FRAME, PAGE_RECORDS, PULL_IDS, Session, SyncContext, SyncRequest,
    SyncResponse, batches_of, storage_of, trust_batches,
};
use crate::clock::now_ms;
use crate::mesh::batch::{MAX_MESSAGE, pack};
use crate::mesh::verifier;
use crate::store::query::{self, SyncItem};

/// Answers one inbound request.
pub(super) async fn respond(
    ctx: &SyncContext,
    sessions: &mut HashMap<u64, Session>,
    next_session: &mut u64,
    peer: PeerId,
    request: SyncRequest,
) -> SyncResponse {
    let refused = |reason: &str| SyncResponse::Refused { reason: reason.to_owned() };
    match request {
        SyncRequest::Open { horizon_ms, msg } => {
            let limit = now_ms().saturating_add(ctx.checker.params.skew_bound_ms);
            if horizon_ms > limit {
                return refused("horizon in the future");
            }
            if sessions.len() >= MAX_SESSIONS {
                return refused("busy");
            }
            let (storage, items) = match storage_of(ctx, horizon_ms).await {
                Ok(s) => s,
                Err(e) => return refused(&e),
            };
            let Ok(mut negentropy) = Negentropy::owned(storage, NEGENTROPY_FRAME) else {
                return refused("internal");
            };
            match negentropy.reconcile(&msg) {
                Ok(answer) => {
                    *next_session = next_session.wrapping_add(1);
                    let session = *next_session;
                    sessions
                        .insert(session, Session { peer, negentropy, items, used: Instant::now() });
                    SyncResponse::Round { session, msg: ByteBuf::from(answer) }
                }
                Err(_) => refused("malformed negentropy message"),
            }
        }
        SyncRequest::Round { session, msg } => match sessions.get_mut(&session) {
            Some(s) if s.peer == peer => {
                s.used = Instant::now();
                match s.negentropy.reconcile(&msg) {
                    Ok(answer) => SyncResponse::Round { session, msg: ByteBuf::from(answer) },
                    Err(_) => refused("malformed negentropy message"),
                }
            }
            _ => refused("unknown session"),
        },
        SyncRequest::Pull { session, ids } => {
            let Some(s) = sessions.get_mut(&session).filter(|s| s.peer == peer) else {
                return refused("unknown session");
            };
            if ids.len() > PULL_IDS {
                return refused("too many ids");
            }
            s.used = Instant::now();
            let items: Vec<SyncItem> = ids
                .iter()
                .filter_map(|id| <[u8; 32]>::try_from(id.as_slice()).ok())
                .filter_map(|id| s.items.get(&id).copied())
                .collect();
            match batches_of(ctx, items).await {
                Ok(batches) => SyncResponse::Items {
                    batches: batches.into_iter().map(ByteBuf::from).collect(),
                },
                Err(e) => refused(&e),
            }
        }
        SyncRequest::Push { batch } => {
            if batch.len() > MAX_MESSAGE {
                return refused("batch over 64 KiB");
            }
            match verifier::verify(&batch, &peer, &ctx.checker).await.0 {
                Ok(_) => SyncResponse::Done,
                Err(reason) => refused(reason),
            }
        }
        SyncRequest::Stream { horizon_ms, after } => {
            if horizon_ms > now_ms().saturating_add(ctx.checker.params.skew_bound_ms) {
                return refused("horizon in the future");
            }
            page(ctx, horizon_ms, after).await.unwrap_or_else(|e| refused(&e))
        }
        SyncRequest::Close { session } => {
            sessions.retain(|id, s| !(*id == session && s.peer == peer));
            SyncResponse::Done
        }
    }
}

/// One page of the set for [`SyncRequest::Stream`].
async fn page(
    ctx: &SyncContext,
    horizon_ms: u64,
    after: Option<(u64, ByteBuf)>,
) -> Result<SyncResponse, String> {
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
    let mut batches = Vec::new();
    if after.is_none() {
        let (certs, revocations) =
            ctx.checker.store.read(query::trust_items).await.map_err(|e| e.to_string())?;
        batches.extend(trust_batches(&certs, &revocations));
    }
    let trust = ctx.checker.trust.read().unwrap_or_else(PoisonError::into_inner).clone();
    batches.extend(pack(records, |origin: Origin| {
        banmesh_keys::PublicKey::from_bytes(&origin.0).ok().and_then(|k| trust.cert_of(&k).cloned())
    }));
    Ok(SyncResponse::Page {
        batches: batches.into_iter().map(ByteBuf::from).collect(),
        next: next.map(|(at, id)| (at, ByteBuf::from(id.to_vec()))),
    })
}
