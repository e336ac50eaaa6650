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
            eprintln!("{}Error: {}", cli::logging::error_prefix(), message(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, leaving out a cause the message before it
/// already quotes (many errors name their cause in their own message).
fn message(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
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

#[cfg(test)]
mod tests {
    use super::message;

    #[test]
    fn a_cause_the_message_quotes_is_not_repeated() {
        let io = std::io::Error::other("no such file");
        let quoted = anyhow::Error::new(io).context("cannot bind s.sock: no such file");
        assert_eq!(message(&quoted), "cannot bind s.sock: no such file");
        let plain = anyhow::anyhow!("no such file").context("cannot bind s.sock");
        assert_eq!(message(&plain), "cannot bind s.sock: no such file");
    }
}
