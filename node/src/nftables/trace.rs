//! `banmesh trace IP`, nftables' part: which of banmesh's sets hold the
//! address (an element equal to it or a network covering it), and whether
//! a local pardon leaves it out. Read from the backend's shadow copy, which
//! every reconcile checks against the kernel and repairs it to: asking
//! nft itself (`nft get element`) took over a minute on a set of 100,000
//! elements (nft 1.0.6).

use std::net::IpAddr;

use banmesh_crdt::Key;
use banmesh_keys::time::format_rfc3339;

use super::NftStatus;
use super::elements::Set;

/// Lines saying which sets hold `addr`, and its pardons.
pub fn lookup(status: &NftStatus, addr: IpAddr) -> Vec<String> {
    let table = &status.table;
    let mut out = Vec::new();
    for key in Key::covering(addr) {
        for set in Set::ALL.into_iter().filter(|s| s.is_v4() == key.is_v4()) {
            if let Some(until) = status.held.0.get(&(set, key)) {
                let end =
                    until.map_or(String::new(), |u| format!(", timeout to {}", format_rfc3339(u)));
                out.push(format!("nftables: set {} of {table} holds {key}{end}", set.name()));
            }
        }
    }
    if out.is_empty() {
        out.push(format!("nftables: no set of {table} holds {addr}"));
    }
    for (pardoned, until) in status.pardoned.iter().filter(|(k, _)| k.net().contains(&addr)) {
        out.push(format!(
            "nftables: {pardoned} pardoned on this host (deleted from the set by hand) until {}; banmesh unban lifts a ban mesh-wide",
            format_rfc3339(*until)
        ));
    }
    if let Some(error) = &status.last_error {
        out.push(format!("nftables: failing, the kernel may differ: {error}"));
    }
    out
}
