//! Running a node as a sysadmin does: Prometheus metrics (`metrics.rs`),
//! connection caps under a flood of raw TCP connections (`limits.rs`),
//! lifting a block and hearing why a peer refused (`unblock.rs`), and log
//! lines journald can sort by priority (`journal.rs`).

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod journal;
mod limits;
mod metrics;
mod unblock;
