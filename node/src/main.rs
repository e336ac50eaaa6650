//! The `banmesh` binary: parses the command line, runs the command, and turns
//! an error into `Error: ...` on stderr and a non-zero exit status.

use std::process::ExitCode;

use banmesh_node::cli;
use clap::Parser as _;

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `banmesh records | head` closes stdout early; `println!` then panics.
/// Exit quietly, as a shell tool does on SIGPIPE, instead of printing a
/// panic about it.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
