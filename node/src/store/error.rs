//! What the store can fail with: every error names the file and says what
//! to do.

use std::path::PathBuf;

/// Why the store could not do what was asked. Every variant names the file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The file is not a database, or fails its integrity check.
    #[error(
        "the store {} is damaged ({detail}): stop the node, move the file aside (keep it for \
         diagnosis) and start again; the node refills from its peers",
        path.display()
    )]
    Damaged {
        /// The store file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The file was written by a newer banmesh.
    #[error(
        "the store {} has schema version {found}, newer than this build's {known}: upgrade \
         banmesh, or move the file aside to start empty",
        path.display()
    )]
    NewerSchema {
        /// The store file.
        path: PathBuf,
        /// The file's schema version.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },
    /// The filesystem is full.
    #[error(
        "no space left to write the store {}: free space on its filesystem; records already \
         stored are kept",
        path.display()
    )]
    DiskFull {
        /// The store file.
        path: PathBuf,
    },
    /// The file or its directory cannot be written.
    #[error(
        "cannot write the store {} ({detail}): make the data directory writable by the node's \
         user (is it mounted read-only?)",
        path.display()
    )]
    Unwritable {
        /// The store file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// Another process holds the file's lock.
    #[error(
        "the store {} is locked by another process: is another banmesh node using this data dir?",
        path.display()
    )]
    Busy {
        /// The store file.
        path: PathBuf,
    },
    /// Any other SQLite failure.
    #[error("store {}: {detail}", path.display())]
    Sqlite {
        /// The store file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The writer task has stopped (the node is shutting down).
    #[error("the store's writer has stopped")]
    Closed,
}
