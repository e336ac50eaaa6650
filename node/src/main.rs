//! The `banmesh` binary: parses the command line, runs the command, and turns
//! an error into `Error: ...` on stderr and a non-zero exit status.

use std::process::ExitCode;

use banmesh_node::cli;
use clap::Parser as _;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
