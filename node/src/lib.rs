//! The banmesh node: the store, the mesh, the Fail2Ban applier, the REST
//! gateway and the control socket; plus the command line of the one
//! `banmesh` binary.

pub mod api;
pub mod blocklist;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod enforce;
pub mod fail2ban;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod gateway;
pub mod memory;
pub mod mesh;
pub mod metrics;
pub mod nftables;
pub mod parallel;
pub mod store;
pub mod tasks;
#[cfg(test)]
pub(crate) mod test_rng;
