//! The verifier task: takes gossip messages from the swarm task, decodes
//! and judges each batch off the swarm loop (signatures in a blocking
//! thread), stores what is valid, and sends back Accept (something new),
//! Ignore or Reject. Ends when its token fires or the swarm task is gone.

use std::sync::{Arc, PoisonError, RwLock};

use banmesh_crdt::Params;
use banmesh_keys::PublicKey;
use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::batch::Batch;
use super::trust::{Trust, Verdict};
use crate::clock::now_ms;
use crate::store::Store;

/// A gossip message to judge.
pub struct Inbound {
    /// Gossipsub's id for it.
    pub id: MessageId,
    /// The peer that forwarded it.
    pub source: PeerId,
    /// The batch bytes.
    pub data: Vec<u8>,
}

/// The verdict on one message.
pub struct Outcome {
    /// Gossipsub's id for it.
    pub id: MessageId,
    /// The peer that forwarded it.
    pub source: PeerId,
    /// `Ok(true)`: valid and new (Accept); `Ok(false)`: Ignore; `Err`: Reject, why.
    pub verdict: Result<bool, &'static str>,
    /// Nodes revoked by this message: drop their connections.
    pub revoked: Vec<PublicKey>,
}

/// The verifier's loop.
pub async fn run(
    mut inbound_rx: mpsc::Receiver<Inbound>,
    outcome_tx: mpsc::Sender<Outcome>,
    store: Store,
    trust: Arc<RwLock<Trust>>,
    params: Params,
    shutdown: CancellationToken,
) {
    loop {
        let inbound = tokio::select! {
            () = shutdown.cancelled() => break,
            inbound = inbound_rx.recv() => match inbound {
                Some(inbound) => inbound,
                None => break,
            },
        };
        let (verdict, revoked) =
            verify(&inbound.data, &inbound.source, &store, &trust, &params).await;
        let outcome = Outcome { id: inbound.id, source: inbound.source, verdict, revoked };
        if outcome_tx.send(outcome).await.is_err() {
            break;
        }
    }
}

/// Decodes, judges and stores one batch (from gossip or sync): `Ok(true)`
/// if it held something new, `Ok(false)` to ignore, `Err` to reject; and
/// the nodes it revoked.
pub async fn verify(
    data: &[u8],
    from: &PeerId,
    store: &Store,
    trust: &Arc<RwLock<Trust>>,
    params: &Params,
) -> (Result<bool, &'static str>, Vec<PublicKey>) {
    let batch = match Batch::decode(data) {
        Ok(batch) => batch,
        Err(e) => {
            tracing::warn!(target: "banmesh::events::record_rejected", error = %e, "malformed gossip");
            return (Err("malformed batch"), Vec::new());
        }
    };
    let snapshot = trust.read().unwrap_or_else(PoisonError::into_inner).clone();
    let params_copy = *params;
    let now = now_ms();
    let judged =
        tokio::task::spawn_blocking(move || snapshot.judge(batch, now, &params_copy)).await;
    let (certs, revocations, records) = match judged {
        Ok(Verdict::Store { certs, revocations, records }) => (certs, revocations, records),
        Ok(Verdict::Ignore(reason)) => {
            tracing::debug!(target: "banmesh::events::record_ignored", reason, "gossip ignored");
            return (Ok(false), Vec::new());
        }
        Ok(Verdict::Reject(reason)) => {
            tracing::warn!(target: "banmesh::events::record_rejected", reason, "gossip rejected");
            return (Err(reason), Vec::new());
        }
        Err(_) => return (Ok(false), Vec::new()),
    };
    let mut changed = false;
    let mut revoked = Vec::new();
    for cert in certs {
        let _ = trust.write().unwrap_or_else(PoisonError::into_inner).add_certificate(cert.clone());
        changed |= store.add_certificate(cert).await.unwrap_or(false);
    }
    for revocation in revocations {
        let node = *revocation.node();
        let _ = trust
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .add_revocation(revocation.clone());
        if store.add_revocation(revocation).await.unwrap_or(false) {
            changed = true;
            revoked.push(node);
        }
    }
    match store.apply_from(records, now, from.to_string()).await {
        Ok(applied) => {
            for r in &applied.new {
                tracing::info!(
                    target: "banmesh::events::record_applied",
                    key = %r.key(), kind = %r.kind(), origin = %r.origin(), issued_at = r.issued_at().0,
                    "record applied"
                );
            }
            (Ok(changed || !applied.new.is_empty()), revoked)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store gossiped records");
            (Ok(false), revoked)
        }
    }
}
