//! `banmesh config ...` (placeholder: being written).

use clap::Subcommand;

/// The `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {}

/// Runs one `config` subcommand.
pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {}
}
