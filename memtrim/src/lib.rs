//! Gives the heap memory the C allocator keeps after it is freed back to
//! the system. glibc's `malloc` keeps freed memory in its arenas for reuse
//! (one arena per thread that allocated, up to eight per core), so after a
//! burst of work (a node streamed a million records, or a set read again)
//! the process stays as large as at its peak. `malloc_trim(0)` walks every
//! arena and returns the pages of its free chunks (`madvise`), which takes
//! milliseconds: call it after such a burst, not per request.
//!
//! The workspace forbids unsafe code; this crate holds its only FFI call,
//! kept apart so that the rest stays forbidden.

/// Returns the freed heap pages of every arena to the system; whether any
/// memory was returned. Does nothing (and returns `false`) where the C
/// library is not glibc.
pub fn release_freed() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes no pointers and only locks and walks
        // the allocator's own arenas; it is safe to call from any thread
        // at any time.
        #[allow(unsafe_code)]
        let released = unsafe { libc::malloc_trim(0) };
        released == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
