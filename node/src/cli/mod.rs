//! The command line of the one `banmesh` binary: the clap definitions and the
//! dispatch to each command's module. Commands return `anyhow` errors.

mod check;
mod config_cmd;
mod control;
mod docs;
mod enroll;
mod fail2ban;
mod import;
mod import_seed;
mod issue_batch;
mod keys;
mod listing;
pub mod logging;
mod membership;
mod node_cmd;
mod record;
mod show;
mod store;
mod sync_status;
mod table;

#[cfg(feature = "fuzzing")]
pub use import_seed::fuzz_rows;

use clap::{Parser, Subcommand};

/// banmesh: a mesh of Fail2Ban hosts sharing signed ban records.
#[derive(Debug, Parser)]
#[command(name = "banmesh", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node daemon in the foreground.
    #[command(after_help = "Examples:
  banmesh node --config /etc/banmesh/banmesh.toml
  RUST_LOG=banmesh_node=debug banmesh node --config ./banmesh.toml --data-dir ./data")]
    Node(node_cmd::NodeArgs),
    /// Make and inspect keys, certificates and revocations.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Sign a record offline, or check one as a receiving node would.
    #[command(subcommand)]
    Record(record::RecordCommand),
    /// Inspect a stopped node's store.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// What Fail2Ban's banmesh action runs: hand a local ban or unban to the node.
    #[command(subcommand, name = "fail2ban")]
    Fail2Ban(fail2ban::Fail2BanCommand),
    /// Print or check the node's configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Import a Fail2BanSync server's database (ip_management.db) into the
    /// running node.
    ImportSeed(import_seed::ImportSeedArgs),
    /// Ban every address and network of a blocklist (a file or - for
    /// standard input) through the running node.
    Import(import::ImportArgs),
    /// Ask the running node (over its control socket).
    #[command(flatten)]
    Control(control::ControlCommand),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(docs::CompletionsArgs),
    /// Write the man pages (banmesh.1 and one per subcommand).
    Man(docs::ManArgs),
}

/// Runs the command the user asked for.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Node(args) => node_cmd::run(args),
        Command::Keys(command) => keys::run(command),
        Command::Record(command) => record::run(command),
        Command::Store(command) => store::run(command),
        Command::Config(command) => config_cmd::run(command),
        Command::Fail2Ban(command) => fail2ban::run(command),
        Command::ImportSeed(args) => import_seed::run(args),
        Command::Import(args) => import::run(args),
        Command::Control(command) => control::run(command),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
    }
}
