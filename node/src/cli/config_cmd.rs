//! `banmesh config example` prints the commented example configuration;
//! `banmesh config check` validates a file, checks the node key, the
//! certificate and the cluster key it names belong together, and prints
//! what is in effect.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::{self, Config, Overrides};

/// The `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the commented example configuration (every value the default).
    Example,
    /// Validate a configuration, check the node key, certificate and cluster
    /// key it names belong together, and print the configuration in effect.
    Check(CheckArgs),
}

/// Arguments of `config check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The file to check; without it, the built-in defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Command-line values the node would lay over the file.
    #[command(flatten)]
    overrides: Overrides,
}

/// Runs one `config` subcommand.
pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Example => {
            print!("{}", config::EXAMPLE);
            Ok(())
        }
        ConfigCommand::Check(args) => check(&args),
    }
}

/// Prints a header naming the source, each warning as a comment, then the
/// effective configuration as TOML: the whole output is a valid file.
fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), &args.overrides)?;
    let identity = super::membership::check(&config, super::keys::now_ms()?)?;
    match &args.config {
        Some(path) => println!("# {}: ok", path.display()),
        None => println!("# no --config given: the built-in defaults"),
    }
    for warning in &config.warnings {
        println!("# warning: {warning}");
    }
    for line in identity {
        println!("{line}");
    }
    println!("# the configuration in effect:");
    print!("{}", config.to_toml());
    Ok(())
}
