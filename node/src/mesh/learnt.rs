//! What hellos teach about trust (a peer's certificate, the revocations it
//! knows), kept in the store like any certificate or revocation from gossip
//! or sync, so it survives a restart and the store's decisions follow it.
//!
//! Task: the swarm sends a [`Learnt`] on a bounded channel (it never waits
//! on the store; when the queue is full the item is dropped and learnt again
//! from a later hello, gossip or sync, since the trust still lacks it) and
//! [`run`] stores it. The store writer then adds it to the in-memory trust:
//! only the writer changes trust. It ends when the node's token fires.

use banmesh_keys::{Certificate, Revocation};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// How many hellos' teachings may wait for the store.
pub const QUEUE: usize = 64;

/// What one hello taught that the trust did not know.
#[derive(Debug, Clone, Default)]
pub struct Learnt {
    /// The peer's certificate (checked against the cluster key).
    pub cert: Option<Certificate>,
    /// Revocations that verified.
    pub revocations: Vec<Revocation>,
}

impl Learnt {
    /// Whether it holds nothing to store.
    pub fn is_empty(&self) -> bool {
        self.cert.is_none() && self.revocations.is_empty()
    }
}

/// Stores everything that arrives on `learnt_rx` until `shutdown` fires.
pub async fn run(store: Store, mut learnt_rx: mpsc::Receiver<Learnt>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            learnt = learnt_rx.recv() => match learnt {
                Some(learnt) => keep(&store, learnt).await,
                None => break,
            },
        }
    }
}

/// Stores one hello's teachings; failures are logged (the trust still lacks
/// them, so they are learnt again).
pub async fn keep(store: &Store, learnt: Learnt) {
    if let Some(cert) = learnt.cert
        && let Err(error) = store.add_certificate(cert).await
    {
        tracing::warn!(%error, "cannot store a certificate a hello carried");
    }
    for revocation in learnt.revocations {
        let node = *revocation.node();
        match store.add_revocation(revocation).await {
            Ok(true) => {
                tracing::info!(node = %node.short(), "revocation learnt from a hello stored")
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot store a revocation a hello carried"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use banmesh_crdt::Params;
    use banmesh_keys::SecretKey;

    use super::*;

    const T0: u64 = 1_800_000_000_000;
    const DAY: u64 = 86_400_000;

    /// A revocation and a certificate that only a hello carried are in the
    /// store, and so in the trust loaded after a restart; the trust in
    /// memory follows the store.
    #[tokio::test]
    async fn what_a_hello_teaches_is_stored_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = SecretKey::generate().unwrap();
        let (peer, bad) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
        let cert = Certificate::issue(
            &cluster,
            peer.public(),
            "peer",
            "ban".parse().unwrap(),
            T0 - DAY,
            T0 + DAY,
            None,
        )
        .unwrap();
        let revocation = Revocation::issue(&cluster, bad.public(), T0, "stolen").unwrap();

        let (store, writer) = Store::open(dir.path(), Params::default(), T0).await.unwrap();
        let trust = store.load_trust(cluster.public()).await.unwrap();
        let (learnt_tx, learnt_rx) = mpsc::channel(QUEUE);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(store.clone(), learnt_rx, shutdown.clone()));
        let learnt = Learnt { cert: Some(cert.clone()), revocations: vec![revocation] };
        learnt_tx.try_send(learnt).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !trust.read().unwrap().is_revoked(&bad.public()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the revocation never reached the trust"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(trust.read().unwrap().knows(&cert));
        shutdown.cancel();
        task.await.unwrap();
        drop(store);
        writer.await.unwrap();

        let (store, _writer) = Store::open(dir.path(), Params::default(), T0).await.unwrap();
        let trust = store.load_trust(cluster.public()).await.unwrap();
        let trust = trust.read().unwrap();
        assert!(trust.is_revoked(&bad.public()), "the revocation was lost at restart");
        assert!(trust.knows(&cert), "the certificate was lost at restart");
    }
}
