//! `banmesh trace IP`, nftables' part: whether the kernel holds the
//! address now, and in which of banmesh's sets (`nft get element`, one
//! call per set of its family: never a listing of the whole table), and
//! whether a local pardon leaves it out.

use std::net::IpAddr;

use banmesh_crdt::Key;
use banmesh_keys::time::format_rfc3339;

use super::NftStatus;
use super::elements::Set;
use super::kernel::{self, NftError};
use crate::config::NftablesConfig;

/// Lines saying what the kernel holds for `addr`, and its pardons.
pub async fn lookup(config: &NftablesConfig, status: &NftStatus, addr: IpAddr) -> Vec<String> {
    let key = Key::from_addr(addr);
    let table = &config.table;
    let mut out = Vec::new();
    for set in Set::ALL.into_iter().filter(|s| s.is_v4() == key.is_v4()) {
        let element = format!("{{ {key} }}");
        let args = ["get", "element", "inet", table, set.name(), element.as_str()];
        match kernel::run(&config.nft, &args, "").await {
            Ok(listing) => out.push(format!(
                "nftables: the kernel holds {} in set {} of inet {table}",
                held_element(&listing).unwrap_or_else(|| key.to_string()),
                set.name()
            )),
            Err(NftError::Refused { stderr, .. }) if stderr.contains("No such file") => {}
            Err(error) => {
                out.push(format!("nftables: cannot read set {}: {error}", set.name()));
                break;
            }
        }
    }
    if out.is_empty() {
        out.push(format!("nftables: no set of inet {table} holds {key}"));
    }
    for (pardoned, until) in &status.pardoned {
        if pardoned.net().contains(&addr) {
            out.push(format!(
                "nftables: {pardoned} pardoned on this host (deleted from the set by hand) until {}; banmesh unban lifts a ban mesh-wide",
                format_rfc3339(*until)
            ));
        }
    }
    out
}

/// The element as `nft get element` prints it: `X timeout 1h expires 59m`.
fn held_element(listing: &str) -> Option<String> {
    let rest = listing.split("elements = { ").nth(1)?;
    Some(rest.split(" }").next()?.trim().to_owned())
}
