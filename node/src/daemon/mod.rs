//! The node daemon: `banmesh node`. Starts the store, the mesh and the
//! control socket, answers control commands, and shuts everything down when
//! its token fires.
//!
//! Tasks (all named, in one [`Tasks`] set, none detached; the store writer
//! beside them): the mesh swarm, verifier, sync and never-ban tasks, the
//! control server (which runs reads itself through
//! [`Queries`](queries::Queries)), the maintenance task (GC on schedule), the Fail2Ban
//! applier (with `[fail2ban] apply`, handing reconcile's bans to the node
//! task through the same [`NodeHandle`](crate::api::NodeHandle) as the
//! control server and the gateway), the gateway's, and the node task
//! itself, which owns the clock and the node key and answers the handle's
//! requests one at a time (so records it issues get strictly
//! increasing timestamps). Shutdown: the root token fires (SIGTERM/SIGINT,
//! or a test), every task ends, the control socket is removed, the store
//! handles drop and the writer closes the file.
//!
//! With `NOTIFY_SOCKET` set (systemd's `Type=notify`), `READY=1` goes out
//! once every task is started, and the `systemd-notify` task sends status
//! lines and watchdog pings ([`notify`]).
//!
//! Supervision: a task that ends before the root token fires, or panics, is
//! logged (ERROR, by name) and cancels the root token; the node then stops
//! as above and `run` returns [`DaemonError::TaskEnded`], so the process
//! exits non-zero and systemd starts it again.

mod backends;
mod handler;
pub mod identity;
pub mod issue;
mod maintenance;
mod notify;
pub mod own_cert;
pub mod queries;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banmesh_crdt::{Hlc, HlcClock};
use banmesh_keys::Certificate;
use libp2p::Multiaddr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::clock::now_ms;
use crate::config::{Config, ConfigSource};
use crate::control::server;
use crate::gateway::{self, GatewayDeps, GatewayStatus};
use crate::mesh::{self, MeshSettings};
use crate::metrics::{self, Metrics};
use crate::store::{SharedTrust, Store, StoreError, query};
use crate::tasks::{Ended, Tasks};

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another node holds this data dir.
    #[error("another banmesh node is running on the data dir {}: stop it first, or pass a different --data-dir", .0.display())]
    AlreadyRunning(PathBuf),
    /// The lock file could not be made.
    #[error("cannot lock the data dir {}: {error}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// Keys or certificates.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The control socket.
    #[error(transparent)]
    Control(#[from] server::ControlError),
    /// The mesh.
    #[error(transparent)]
    Mesh(#[from] mesh::MeshError),
    /// A listen or peer address.
    #[error("invalid {what} address {text:?}: {error}; write it like /ip4/192.0.2.1/tcp/4646")]
    Address {
        /// `listen` or `peer`.
        what: &'static str,
        /// The text.
        text: String,
        /// What the parser said.
        error: String,
    },
    /// The revocations directory.
    #[error(transparent)]
    Revocations(#[from] banmesh_keys::FileError),
    /// The REST gateway.
    #[error(transparent)]
    Gateway(#[from] gateway::GatewayError),
    /// The metrics listener.
    #[error(transparent)]
    Metrics(#[from] metrics::server::MetricsError),
    /// A task ended while the node was running: the node stopped, so that
    /// its service manager starts it again.
    #[error("the node stopped because its task {task} {ended}")]
    TaskEnded {
        /// The task's name.
        task: &'static str,
        /// How it ended.
        ended: Ended,
    },
}

/// Holds the data dir's lock for as long as it lives.
struct DataDirLock(#[allow(dead_code)] File);

fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock, DaemonError> {
    use std::os::unix::fs::DirBuilderExt;
    let path = data_dir.join("banmesh.lock");
    let fail = |error| DaemonError::Lock { path: path.clone(), error };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir).map_err(fail)?;
    let file =
        File::options().create(true).truncate(false).write(true).open(&path).map_err(fail)?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(DaemonError::AlreadyRunning(data_dir.to_owned()))
        }
        Err(std::fs::TryLockError::Error(error)) => Err(fail(error)),
    }
}

fn addrs(what: &'static str, texts: &[String]) -> Result<Vec<Multiaddr>, DaemonError> {
    texts
        .iter()
        .map(|text| {
            text.parse().map_err(|e: libp2p::multiaddr::Error| DaemonError::Address {
                what,
                text: text.clone(),
                error: e.to_string(),
            })
        })
        .collect()
}

/// Runs the node until `shutdown` fires. Returns once every task has ended
/// and the store is closed. `source` is where `config` came from, read again
/// on SIGHUP for the gateway's tokens.
pub async fn run(
    config: Config,
    source: ConfigSource,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let began = std::time::Instant::now();
    let _lock = lock_data_dir(&config.node.data_dir)?;
    let listen = addrs("listen", &config.node.listen)?;
    let peers = addrs("peer", &config.node.peers)?;
    let now = now_ms();
    let mut identity = identity::load(
        &identity::IdentityPaths {
            data_dir: &config.node.data_dir,
            node_key: &config.node.node_key,
            node_cert: &config.node.node_cert,
            cluster_pub: config.cluster.public_key.as_deref(),
        },
        now,
    )?;
    for notice in &identity.notices {
        tracing::warn!("{notice}");
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let (store, writer) = Store::open(&config.node.data_dir, config.cluster.params, now).await?;
    let (trust, skipped) = load_trust(&store, &identity, &config.node.data_dir).await?;
    identity.notices.extend(skipped);
    let origin = banmesh_keys::origin_of(&identity.secret.public());
    let clock_read = std::time::Instant::now();
    let high_water = store.read(move |c, p| query::greatest_issued_by(c, p, origin)).await?;
    let clock_ms = clock_read.elapsed().as_millis();
    let skew_bound_ms = config.cluster.params.skew_bound_ms;
    if let Some(warning) = queries::clock::ahead_warning(high_water, now, skew_bound_ms) {
        tracing::warn!("{warning}");
    }
    let clock = HlcClock::new(high_water.unwrap_or(Hlc(0)));

    let mut tasks = Tasks::new();
    let listener = server::bind(&config.node.socket).await?;
    let (metrics, scrape) = metrics_start(&config).await?;
    let (node_handle, requests) = api::channel(64);
    let gc = maintenance::run(store.clone(), config.store.gc_interval, shutdown.child_token());
    tasks.spawn("maintenance", gc);
    let own_cert = identity.cert.as_ref().map(Certificate::to_bytes).unwrap_or_default();
    let mesh = mesh::start(
        MeshSettings {
            listen,
            peers,
            hello_timeout: config.sync.hello_timeout,
            params: config.cluster.params,
            sync_interval: config.sync.interval,
            origin_rate: config.sync.origin_rate,
            origin_burst: config.sync.origin_burst,
            limits: config.limits,
            discovery: config.mesh,
            metrics: metrics.clone(),
        },
        &identity.secret,
        own_cert,
        trust.clone(),
        store.clone(),
        &mut tasks,
        shutdown.child_token(),
    )?;
    let start_ms = began.elapsed().as_millis();
    tracing::info!(peer_id = %mesh.peer_id, socket = %config.node.socket.display(), start_ms, clock_ms, "banmesh node started");
    let started =
        backends::start(&config, &store, &mesh, &node_handle, origin, &mut tasks, &shutdown);
    let backends = match started.await {
        Ok(backends) => backends,
        Err(error) => {
            shutdown.cancel();
            while tasks.join_next().await.is_some() {}
            return Err(error.into());
        }
    };
    let gateway_status =
        config.gateway.listen.map(|_| Arc::new(Mutex::new(GatewayStatus::default())));
    let standing = Arc::new(std::sync::RwLock::new(queries::Standing::of(&identity)));
    let queries = queries::Queries::new(
        config.clone(),
        standing.clone(),
        store.clone(),
        mesh.clone(),
        trust.clone(),
        backends,
        gateway_status.clone(),
    );
    if let Some((listener, registry)) = scrape {
        let serve = metrics::server::serve(
            listener,
            registry,
            queries.clone(),
            metrics.clone(),
            shutdown.child_token(),
        );
        tasks.spawn("metrics-server", serve);
    }
    let control =
        server::serve(listener, node_handle.clone(), queries.clone(), shutdown.child_token());
    tasks.spawn("control-server", control);
    if let Some((listen, status)) = config.gateway.listen.zip(gateway_status) {
        let deps = GatewayDeps {
            store: store.clone(),
            node: node_handle.clone(),
            params: config.cluster.params,
            source,
            status: status.clone(),
            metrics,
            queries: queries.clone(),
        };
        let started =
            gateway::start(&config.gateway, listen, deps, &mut tasks, shutdown.child_token()).await;
        if let Err(error) = started {
            shutdown.cancel();
            while tasks.join_next().await.is_some() {}
            return Err(error.into());
        }
    }
    let notify = notify::wanted().then(|| {
        notify::run(node_handle.clone(), mesh.clone(), store.clone(), shutdown.child_token())
    });
    // Only the control server, the applier, the gateway and the notify
    // task hold the handle; only tasks hold the reads (they hold the store,
    // whose writer ends at the stop only once every copy is gone).
    drop(node_handle);
    drop(queries);
    let node = handler::Node::new(config, identity, store.clone(), clock, mesh, trust)
        .with_standing(standing);
    tasks.spawn("node", node.run(requests, shutdown.child_token()));
    if let Some(notify) = notify {
        // Last: it says READY=1 first.
        tasks.spawn("systemd-notify", notify);
    }

    let failure = supervise(&mut tasks, writer, store, &shutdown).await;
    match failure {
        None => {
            tracing::info!("banmesh node stopped");
            Ok(())
        }
        Some((task, ended)) => Err(DaemonError::TaskEnded { task, ended }),
    }
}

/// The metrics handle, and with `[metrics] listen` the bound listener and
/// the registry it serves (bound first, so a taken port stops the start).
async fn metrics_start(
    config: &Config,
) -> Result<(Metrics, Option<(tokio::net::TcpListener, metrics::Registry)>), DaemonError> {
    let Some(addr) = config.metrics.listen else { return Ok((Metrics::default(), None)) };
    let listener = metrics::server::bind(addr).await?;
    let mut registry = metrics::Registry::default();
    let metrics = Metrics::registered(&mut registry);
    Ok((metrics, Some((listener, registry))))
}

/// How long the other tasks have to stop once one failed, before they are
/// aborted.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Watches the tasks and the store writer until `shutdown` fires, then
/// waits for them all to end and the store to close. A task (or the
/// writer) that ends before `shutdown`, or panics at any time, is logged by
/// name and cancels `shutdown`; the first panic is returned, else the first
/// task that ended early.
async fn supervise(
    tasks: &mut Tasks,
    mut writer: JoinHandle<()>,
    store: Store,
    shutdown: &CancellationToken,
) -> Option<(&'static str, Ended)> {
    let mut failure = None;
    let mut writer_done = false;
    tokio::select! {
        // A stop asked for comes first: tasks end because of it, and one
        // that ended so is not a failure (a SIGTERM during start-up).
        biased;
        () = shutdown.cancelled() => {}
        Some((task, ended)) = tasks.join_next() => failure = Some((task, ended)),
        joined = &mut writer => {
            writer_done = true;
            failure = Some(("store-writer", writer_ended(joined)));
        }
    }
    if let Some((task, ended)) = &failure {
        tracing::error!(task, "task {task} {ended}: stopping every task");
        shutdown.cancel();
    }
    let stopping = async {
        while let Some((task, ended)) = tasks.join_next().await {
            if let Ended::Panicked(_) = ended {
                tracing::error!(task, "task {task} {ended}");
                // A panic is the cause rather than a task that returned
                // because the panicked one dropped its channel.
                if !matches!(failure, Some((_, Ended::Panicked(_)))) {
                    failure = Some((task, ended));
                }
            }
        }
    };
    if tokio::time::timeout(STOP_GRACE, stopping).await.is_err() {
        tracing::error!(tasks = ?tasks.running(), "tasks still running {STOP_GRACE:?} after the stop: aborted");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let closer = store.closer();
    drop(store);
    if !writer_done && let Err(error) = close_store(writer, &closer).await {
        tracing::error!(task = "store-writer", %error, "the store writer failed while closing");
        failure.get_or_insert(("store-writer", writer_ended(Err(error))));
    }
    failure
}

/// Waits for the store writer, which ends once the last handle is gone; a
/// handle still held [`STOP_GRACE`] after the tasks stopped (a defect: every
/// holder is a task) is logged and the writer told to close anyway, so the
/// stop never hangs on it.
async fn close_store(
    mut writer: JoinHandle<()>,
    closer: &crate::store::Closer,
) -> Result<(), tokio::task::JoinError> {
    if let Ok(joined) = tokio::time::timeout(STOP_GRACE, &mut writer).await {
        return joined;
    }
    tracing::error!(
        "a store handle is still held {STOP_GRACE:?} after every task stopped: closing the store anyway"
    );
    closer.close().await;
    writer.await
}

fn writer_ended(joined: Result<(), tokio::task::JoinError>) -> Ended {
    joined.map_or_else(crate::tasks::ended_by, |()| Ended::Returned)
}

/// The trust at start, kept by the store writer: certificates and
/// revocations from the store, this node's own certificate, and revocation
/// files in `DATA_DIR/revocations/` (stored like any other); with what to
/// warn about the files that are not revocations.
async fn load_trust(
    store: &Store,
    identity: &identity::Identity,
    data_dir: &Path,
) -> Result<(SharedTrust, Vec<String>), DaemonError> {
    let trust = store.load_trust(identity.cluster).await?;
    if let Some(cert) = &identity.cert {
        store.add_certificate(cert.clone()).await?;
    }
    let dir = data_dir.join("revocations");
    let mut skipped = Vec::new();
    if dir.is_dir() {
        let from_files = banmesh_keys::files::read_revocations(&dir, &identity.cluster)?;
        for error in from_files.skipped {
            tracing::warn!(%error, "revocation file skipped");
            skipped.push(format!("revocation file skipped, so it revokes nothing: {error}"));
        }
        for revocation in from_files.revocations.iter() {
            if store.add_revocation(revocation.clone()).await? {
                tracing::info!(node = %revocation.node().short(), "revocation loaded from {}", dir.display());
            }
        }
    }
    Ok((trust, skipped))
}
