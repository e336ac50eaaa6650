//! Starting what enforces mesh bans on this host: the enforce task (when
//! any backend is enabled in `[enforce] backends`) and each backend's task,
//! the Fail2Ban applier and the nftables backend, all following the one
//! published target.

use std::sync::{Arc, Mutex};

use banmesh_crdt::Origin;
use tokio_util::sync::CancellationToken;

use super::queries::BackendStatus;
use crate::api::NodeHandle;
use crate::config::{Backend, Config};
use crate::enforce::{Enforcer, NeverBan};
use crate::fail2ban;
use crate::mesh::MeshHandle;
use crate::nftables::{NftStatus, Nftables};
use crate::store::{Store, StoreError};
use crate::tasks::Tasks;

/// Spawns the enforce task and the enabled backends into `tasks`; their
/// status for `banmesh status`. Nothing runs when no backend is enabled.
pub async fn start(
    config: &Config,
    store: &Store,
    mesh: &MeshHandle,
    node: &NodeHandle,
    origin: Origin,
    tasks: &mut Tasks,
    shutdown: &CancellationToken,
) -> Result<BackendStatus, StoreError> {
    let mut status = BackendStatus::default();
    if config.enforce.backends.is_empty() {
        return Ok(status);
    }
    let enforcer = Enforcer {
        store: store.clone(),
        never_ban: NeverBan::Mesh(Box::new(mesh.clone()), config.safety.never_ban.clone()),
        enforce: config.safety.enforce,
        apply_jails: config.fail2ban.apply_jails.clone(),
    };
    let (target, enforce_task) = enforcer.start(shutdown.child_token()).await?;
    tasks.spawn("enforce", enforce_task);
    status.target = Some(target.clone());
    if config.enforce.has(Backend::Fail2Ban) {
        let task = fail2ban::Applier {
            config: config.fail2ban.clone(),
            store: store.clone(),
            target: target.clone(),
            status: status.fail2ban.clone(),
            node: node.clone(),
            origin,
        };
        tasks.spawn("fail2ban-applier", task.run(shutdown.child_token()));
    }
    if config.enforce.has(Backend::Nftables) {
        let shared = Arc::new(Mutex::new(NftStatus::default()));
        let task = Nftables { config: config.nftables.clone(), target, status: shared.clone() };
        tasks.spawn("nftables", task.run(shutdown.child_token()));
        status.nftables = Some(shared);
    }
    Ok(status)
}
