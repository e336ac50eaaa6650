//! Giving memory back after a burst of work: a join streamed or pushed
//! tens of thousands of records, or the sync set was read again. The heap
//! the work freed stays in the C allocator's arenas (see
//! [`banmesh_memtrim`]) unless it is returned; this returns it, off the
//! async threads, one call at a time.

use std::sync::atomic::{AtomicBool, Ordering};

/// A session that moved this many records or more is followed by a trim.
pub const TRIM_AFTER_RECORDS: u64 = 10_000;

/// Set while a trim runs; a trim asked for meanwhile sets [`AGAIN`].
static TRIMMING: AtomicBool = AtomicBool::new(false);
/// A trim was asked for since the running one began: it runs once more.
static AGAIN: AtomicBool = AtomicBool::new(false);

/// Returns the freed heap to the system: on a blocking thread when called
/// inside a Tokio runtime, else here. Calls while a trim runs make it run
/// once more when done, so bursts ending together trim once or twice.
pub fn release_freed() {
    AGAIN.store(true, Ordering::Release);
    if TRIMMING.swap(true, Ordering::AcqRel) {
        return;
    }
    let trim = || {
        loop {
            AGAIN.store(false, Ordering::Release);
            let started = std::time::Instant::now();
            let released = banmesh_memtrim::release_freed();
            tracing::debug!(released, ms = started.elapsed().as_millis(), "freed heap returned");
            TRIMMING.store(false, Ordering::Release);
            if !AGAIN.load(Ordering::Acquire) || TRIMMING.swap(true, Ordering::AcqRel) {
                break;
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(trim)),
        Err(_) => trim(),
    }
}

/// [`release_freed`], waited for: before a large allocation, so the heap
/// the last burst freed is returned first rather than held beside it.
pub async fn release_freed_now() {
    let trim = tokio::task::spawn_blocking(banmesh_memtrim::release_freed);
    if let Ok(released) = trim.await {
        tracing::debug!(released, "freed heap returned before a large read");
    }
}
