//! The maintenance task: runs the GC rule (DESIGN.md "GC") on the store at
//! start and then every `[store] gc_interval`. `Store::gc` deletes the
//! records the rule lets go and drops from the index the keys that decide
//! nothing any more; `banmesh status` shows what it collected
//! (`Store::gc_report`). Sync keeps no state of its own to collect: each
//! session builds its set from the store at its horizon, and the set leaves
//! out every record GC may collect, so no peer is ever asked for one.

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::store::Store;

/// Runs GC every `every` until `shutdown` fires. A failed run (the store
/// cannot be written) is logged and tried again at the next tick; `status`
/// already warns about the store.
pub async fn run(store: Store, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.gc(now_ms()).await {
            Ok(0) => tracing::debug!("gc: nothing to collect"),
            Ok(records) => {
                let report = store.gc_report();
                tracing::info!(
                    records,
                    keys = report.last_keys,
                    total = report.total_collected,
                    "gc collected records past the GC rule's horizon"
                );
            }
            Err(error) => tracing::warn!(%error, "gc: cannot collect old records"),
        }
    }
}
