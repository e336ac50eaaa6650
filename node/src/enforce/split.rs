//! Splitting a banned network around the addresses it must not cover (an
//! allowed address, a never-ban entry) into the largest sub-networks that
//! leave them out, and leaving out entries inside others. Pure: no I/O.

use std::collections::BTreeSet;

use banmesh_crdt::Key;
use ipnet::IpNet;

/// Why a network was not split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("splitting {net} around the addresses it must not cover takes more than {cap} pieces")]
pub struct TooManyPieces {
    /// The network.
    pub net: IpNet,
    /// The limit.
    pub cap: usize,
}

/// Whether two networks share an address (one contains the other).
fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// The largest sub-networks of `net` that overlap none of `holes`, in
/// address order: `net` itself when no hole touches it, nothing when a
/// hole covers it. More than `cap` pieces is an error (the caller skips
/// that ban rather than hand Fail2Ban thousands of entries).
pub fn split_excluding(
    net: IpNet,
    holes: &[IpNet],
    cap: usize,
) -> Result<Vec<IpNet>, TooManyPieces> {
    let net = net.trunc();
    let relevant: Vec<IpNet> = holes.iter().filter(|h| overlaps(&net, h)).copied().collect();
    let mut out = Vec::new();
    if split_into(net, &relevant, cap, &mut out) {
        Ok(out)
    } else {
        Err(TooManyPieces { net, cap })
    }
}

/// Adds the pieces of `net` to `out`; false once there are more than `cap`.
fn split_into(net: IpNet, holes: &[IpNet], cap: usize, out: &mut Vec<IpNet>) -> bool {
    let inside: Vec<IpNet> = holes.iter().filter(|h| overlaps(&net, h)).copied().collect();
    if inside.is_empty() {
        out.push(net);
        return out.len() <= cap;
    }
    if inside.iter().any(|h| h.contains(&net)) {
        return true;
    }
    // Some hole lies strictly inside `net`, so `net` is wider than a single
    // address and has two halves.
    let Ok(halves) = net.subnets(net.prefix_len() + 1) else {
        return true;
    };
    for half in halves {
        if !split_into(half, &inside, cap, out) {
            return false;
        }
    }
    true
}

/// `keys` without those inside another of them (a ban on 10.0.0.5 while
/// 10.0.0.0/24 is banned): an nftables set with `flags interval` refuses
/// overlapping entries, and the wider one blocks both.
pub fn outermost(keys: BTreeSet<Key>) -> BTreeSet<Key> {
    let mut nets: Vec<(IpNet, Key)> = keys.into_iter().map(|k| (k.net(), k)).collect();
    // By first address, the wider network first: a network's entries
    // inside it follow it, before any entry past its end.
    nets.sort_by_key(|(net, _)| (net.network(), net.prefix_len()));
    let mut out = BTreeSet::new();
    let mut last: Option<IpNet> = None;
    for (net, key) in nets {
        if last.is_some_and(|l| l.contains(&net)) {
            continue;
        }
        last = Some(net);
        out.insert(key);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn one_address_out_of_a_slash_24() {
        let pieces =
            split_excluding("10.0.0.0/24".parse().unwrap(), &nets(&["10.0.0.5/32"]), 256).unwrap();
        assert_eq!(
            pieces,
            nets(&[
                "10.0.0.0/30",
                "10.0.0.4/32",
                "10.0.0.6/31",
                "10.0.0.8/29",
                "10.0.0.16/28",
                "10.0.0.32/27",
                "10.0.0.64/26",
                "10.0.0.128/25",
            ])
        );
    }

    #[test]
    fn untouched_covered_and_several_holes() {
        let net: IpNet = "10.0.0.0/24".parse().unwrap();
        assert_eq!(split_excluding(net, &nets(&["10.1.0.1/32", "::1/128"]), 8).unwrap(), vec![net]);
        assert_eq!(split_excluding(net, &nets(&["10.0.0.0/16"]), 8).unwrap(), vec![]);
        assert_eq!(split_excluding(net, &nets(&["10.0.0.0/24"]), 8).unwrap(), vec![]);
        let pieces = split_excluding(net, &nets(&["10.0.0.0/25", "10.0.0.128/26"]), 8).unwrap();
        assert_eq!(pieces, nets(&["10.0.0.192/26"]));
        let pieces = split_excluding(net, &nets(&["10.0.0.0/32", "10.0.0.255/32"]), 64).unwrap();
        assert_eq!(pieces.len(), 14);
        assert!(
            pieces.iter().all(|p| !p.contains(&"10.0.0.0".parse::<std::net::IpAddr>().unwrap()))
        );
    }

    #[test]
    fn pieces_cover_exactly_the_rest() {
        let net: IpNet = "192.0.2.0/26".parse().unwrap();
        let holes = nets(&["192.0.2.7/32", "192.0.2.16/30", "192.0.2.40/32"]);
        let pieces = split_excluding(net, &holes, 256).unwrap();
        let covered: u32 = pieces.iter().map(|p| 1u32 << (32 - p.prefix_len())).sum();
        assert_eq!(covered, 64 - 1 - 4 - 1);
        for host in net.hosts().chain([net.network(), net.broadcast()]) {
            let in_hole = holes.iter().any(|h| h.contains(&host));
            let in_piece = pieces.iter().filter(|p| p.contains(&host)).count();
            assert_eq!(in_piece, usize::from(!in_hole), "{host}");
        }
    }

    #[test]
    fn beyond_the_cap_is_refused() {
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        let hole = nets(&["2001:db8::1/128"]);
        assert_eq!(split_excluding(v6, &hole, 256).unwrap().len(), 96);
        assert_eq!(split_excluding(v6, &hole, 50), Err(TooManyPieces { net: v6, cap: 50 }));
    }
}
