//! One simulated node of the sync simulation: its key and certificate, a
//! real store, the sync context and responder it runs sessions with, and a
//! crash (the store closed and opened again, the sessions forgotten).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use banmesh_crdt::Params;
use banmesh_keys::cert::Certificate;
use banmesh_keys::{PublicKey, SecretKey};
use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::now_ms;
use crate::mesh::limit::OriginLimits;
use crate::mesh::swarm::{MeshCommand, MeshStats};
use crate::mesh::sync::SyncContext;
use crate::mesh::sync::responder::Responder;
use crate::mesh::sync::sessions::Tracker;
use crate::mesh::verifier::Checker;
use crate::store::Store;
use crate::store::sync_set::each_sync_item;

/// One simulated node: its key and certificate, and its parts while up.
pub(super) struct Node {
    pub(super) secret: SecretKey,
    pub(super) cert: Certificate,
    pub(super) peer: PeerId,
    pub(super) dir: tempfile::TempDir,
    pub(super) up: Option<Up>,
}

/// A started node's parts.
pub(super) struct Up {
    pub(super) ctx: SyncContext,
    pub(super) swarm_rx: mpsc::Receiver<MeshCommand>,
    pub(super) responder: Responder,
    pub(super) writer: JoinHandle<()>,
}

impl Node {
    pub(super) fn up(&mut self) -> &mut Up {
        self.up.as_mut().expect("a node is started before use")
    }

    pub(super) fn ctx(&self) -> SyncContext {
        self.up.as_ref().expect("started").ctx.clone()
    }

    pub(super) async fn start(&mut self, cluster: PublicKey) {
        let params = Params::default();
        let (store, writer) = Store::open(self.dir.path(), params, now_ms()).await.expect("store");
        let trust = store.load_trust(cluster).await.expect("trust");
        store.add_certificate(self.cert.clone()).await.expect("own certificate");
        let stats = Arc::new(Mutex::new(MeshStats::default()));
        let (swarm_tx, swarm_rx) = mpsc::channel(16);
        let checker = Checker {
            store,
            trust,
            params,
            limits: Arc::new(OriginLimits::new(u64::MAX / 4, u64::MAX / 4)),
            stats: stats.clone(),
        };
        let ctx = SyncContext { checker, swarm_tx, local: self.peer };
        self.up = Some(Up { ctx, swarm_rx, responder: Responder::new(Tracker(stats)), writer });
    }

    /// A crash: every handle on the store dropped, the writer finishing
    /// what it acknowledged, then a fresh start on the same file.
    pub(super) async fn crash(&mut self, cluster: PublicKey) {
        if let Some(up) = self.up.take() {
            let Up { ctx, swarm_rx, responder, writer } = up;
            let closer = ctx.checker.store.closer();
            drop((ctx, swarm_rx, responder));
            // Every handle is gone; should one linger, the writer still ends.
            closer.close().await;
            writer.await.expect("store writer");
        }
        self.start(cluster).await;
    }

    /// The sync set's items, as (time, id).
    pub(super) async fn set(&self) -> BTreeSet<(u64, [u8; 32])> {
        let store = self.ctx().checker.store;
        let horizon = now_ms();
        let params = Params::default();
        store
            .read(move |c, p| {
                let mut items = BTreeSet::new();
                each_sync_item(c, p, horizon, &params, |item| {
                    items.insert((item.at, item.id));
                })?;
                Ok(items)
            })
            .await
            .expect("sync set")
    }
}
