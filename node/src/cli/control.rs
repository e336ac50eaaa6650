//! The commands that ask a running node over its control socket
//! (placeholder: being written).

use clap::Subcommand;

/// Commands answered by the running node.
#[derive(Debug, Subcommand)]
pub enum ControlCommand {}

/// Runs one control command.
pub fn run(command: ControlCommand) -> anyhow::Result<()> {
    match command {}
}
