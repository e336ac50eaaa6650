//! Telling systemd how the node is (`Type=notify`, the `sd-notify` crate):
//! `READY=1` once the store is open, the listeners bound and every task
//! started; `STATUS=` lines ("3 of 4 peers ready, 120 records"); `STOPPING=1`
//! at shutdown; and `WATCHDOG=1`, only while a round trip through the node
//! task and one through the store writer both answer, and only when systemd
//! asked for it (`WATCHDOG_USEC`, set by `WatchdogSec=`).
//!
//! Every call is a no-op without `NOTIFY_SOCKET` (the node run by hand or by
//! tests), and the task is not even spawned then. A failed send is logged at
//! debug and never stops the node.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::api::NodeHandle;
use crate::mesh::MeshHandle;
use crate::store::Store;

/// How often the status line is refreshed when no watchdog asks for more.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Whether systemd listens (`NOTIFY_SOCKET` is set).
pub fn wanted() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends `states`; a failure is only logged.
fn send(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::debug!(%error, "cannot notify systemd");
    }
}

/// What the node is doing, in one line: peers ready and records stored.
async fn status_line(mesh: &MeshHandle, store: &Store) -> String {
    let peers = mesh.peers().await;
    let ready = peers.iter().filter(|p| p.ready && p.connected).count();
    let records = match store.counts().await {
        Ok(counts) => counts.records.to_string(),
        Err(_) => "unknown (store unreadable)".to_owned(),
    };
    format!("{ready} of {} peers ready, {records} records", peers.len())
}

/// The notify task, to be spawned once every other task is: says
/// `READY=1`, then refreshes the status line and pings the watchdog until
/// `shutdown`, then says `STOPPING=1`.
pub async fn run(node: NodeHandle, mesh: MeshHandle, store: Store, shutdown: CancellationToken) {
    let line = status_line(&mesh, &store).await;
    send(&[NotifyState::Ready, NotifyState::Status(&line)]);
    let watchdog = sd_notify::watchdog_enabled();
    // Ping twice per watchdog period, as sd_watchdog_enabled(3) advises.
    let every = watchdog.map_or(STATUS_EVERY, |period| (period / 2).min(STATUS_EVERY));
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        // The first tick is at once: a second status line right after READY.
        let line = status_line(&mesh, &store).await;
        match answers(&node, &store, every).await {
            Ok(()) if watchdog.is_some() => {
                send(&[NotifyState::Watchdog, NotifyState::Status(&line)]);
            }
            Ok(()) => send(&[NotifyState::Status(&line)]),
            Err(stuck) => {
                tracing::warn!("{stuck} does not answer: the systemd watchdog is not pinged");
                send(&[NotifyState::Status(&format!("{stuck} does not answer; {line}"))]);
            }
        }
    }
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// A round trip through the node task and one through the store writer,
/// each within `limit`; else which one did not answer.
async fn answers(node: &NodeHandle, store: &Store, limit: Duration) -> Result<(), &'static str> {
    match tokio::time::timeout(limit, node.ping()).await {
        Ok(Ok(())) => {}
        _ => return Err("the node task"),
    }
    match tokio::time::timeout(limit, store.ping()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err("the store writer"),
    }
}
