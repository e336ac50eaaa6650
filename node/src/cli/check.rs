//! `banmesh status --check`: one line for a monitoring system and the
//! Nagios exit status: 0 healthy, 1 warning, 2 critical. The node decides
//! what is wrong (`StatusView::checks`); a node that does not answer is
//! critical.

use std::path::Path;

use crate::control::PeerState;
use crate::control::views::CheckLevel;
use crate::control::{self, Command, Response, StatusView};

/// Asks the node at `socket`, prints the line and exits with its status.
pub fn run(socket: &Path) -> ! {
    let (code, line) = match ask(socket) {
        Ok(status) => verdict(&status),
        Err(error) => (2, format!("CRITICAL: the node does not answer: {error}")),
    };
    println!("{line}");
    std::process::exit(code)
}

fn ask(socket: &Path) -> Result<StatusView, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    match runtime.block_on(control::call(socket, Command::Status)) {
        Ok(Response::Status(status)) => Ok(*status),
        Ok(Response::Error { message }) => Err(message),
        Ok(_) => Err("unexpected answer to status".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

/// The exit status and the line: the worst problem (and how many more), or
/// what a healthy node is doing.
fn verdict(status: &StatusView) -> (i32, String) {
    let Some(worst) = status.checks.iter().max_by_key(|c| c.level) else {
        let ready = status.peers.iter().filter(|p| p.state == PeerState::Connected).count();
        let records: u64 = status.record_counts.values().sum();
        return (0, format!("OK: {ready} peers ready, {records} records"));
    };
    let (code, label) = match worst.level {
        CheckLevel::Warning => (1, "WARNING"),
        CheckLevel::Critical => (2, "CRITICAL"),
    };
    let more = match status.checks.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more: `banmesh status`)"),
    };
    (code, format!("{label}: {}{more}", worst.message))
}
