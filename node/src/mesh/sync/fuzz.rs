//! Both sides of `/banmesh/sync/1` for the fuzz targets (`fuzzing` feature
//! only): the responder answering a peer's requests, and an initiator
//! session fed a peer's responses, against a real store.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use banmesh_crdt::Params;
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::responder::Responder;
use super::sessions::Tracker;
use super::{SyncContext, SyncRequest, SyncResponse, session};
use crate::mesh::limit::OriginLimits;
use crate::mesh::swarm::{MeshCommand, MeshStats};
use crate::mesh::trust::Trust;
use crate::mesh::verifier::Checker;
use crate::store::Store;

/// A context over `store` and `trust`, and the swarm's receiving end
/// (what [`initiate_against`] answers from).
pub fn context(
    store: Store,
    trust: Trust,
    params: Params,
) -> (SyncContext, mpsc::Receiver<MeshCommand>) {
    let (swarm_tx, swarm_rx) = mpsc::channel(16);
    let checker = Checker {
        store,
        trust: Arc::new(RwLock::new(trust)),
        params,
        limits: Arc::new(OriginLimits::new(u64::MAX / 4, u64::MAX / 4)),
        stats: Arc::new(Mutex::new(MeshStats::default())),
    };
    (SyncContext { checker, swarm_tx, local: PeerId::random() }, swarm_rx)
}

/// Answers `requests` from `peer` in order, as the sync task does, with
/// sessions that live for this call only.
pub async fn respond_all(
    ctx: &SyncContext,
    peer: PeerId,
    requests: Vec<SyncRequest>,
) -> Vec<SyncResponse> {
    let mut responder = Responder::new(Tracker(ctx.checker.stats.clone()));
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        answers.push(responder.respond(ctx, peer, request).await.response);
    }
    answers
}

/// Runs one initiator session with `peer`, whose answers are `responses` in
/// order (then errors); returns how it ended.
pub async fn initiate_against(
    ctx: &SyncContext,
    swarm_rx: &mut mpsc::Receiver<MeshCommand>,
    peer: PeerId,
    responses: Vec<SyncResponse>,
) -> Result<(), String> {
    let mut responses = responses.into_iter();
    let answer = async {
        while let Some(command) = swarm_rx.recv().await {
            if let MeshCommand::SyncRequest { reply, .. } = command {
                let _ = reply.send(responses.next().ok_or_else(|| "no more answers".to_owned()));
            }
        }
    };
    tokio::select! {
        result = session(ctx, peer, Duration::ZERO) => result.map(|_| ()),
        () = answer => Err("swarm gone".into()),
    }
}
