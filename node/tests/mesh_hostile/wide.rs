//! Bans wider than the certificate allows, from an enrolled rogue (issue
//! 17, item 2). Without the `wide-prefix` role a node may act on no network
//! wider than /16 (IPv4) or /48 (IPv6). Its /8 and /32 bans are valid
//! signatures on invalid records: every node skips them (counted under
//! `prefix too wide`, per record, not held against the batch or the
//! sender), stores none and enforces none, while the /16 beside them in
//! the same batch is stored and enforced everywhere.

use super::common::{SOON, holds_for, now_ms, wait_until};
use super::metrics::{skipped, star_with_metrics};
use super::rogue::{Rogue, RogueKey};
use super::{WATCH, ban, keys_of, rejects, stored_of};
use banmesh_node::mesh::batch::Batch;

#[test]
fn mesh_bans_wider_than_the_prefix_cap_are_skipped_everywhere_and_never_enforced() {
    let (cluster, metrics) = star_with_metrics(2);
    let key = RogueKey::read(&cluster.enroll("rogue"));
    let rogue = Rogue::new(&key, true);
    // The rogue gossips to every node directly.
    for node in &cluster.nodes {
        rogue.join(node);
    }
    let too_wide = skipped("prefix too wide");
    let before = metrics.value(&too_wide);
    let now = now_ms();
    let wide = vec![
        ban(&key.secret, "10.0.0.0/8", now, "all of ten"),
        ban(&key.secret, "2001:db8::/32", now, "a whole v6 block"),
    ];
    let allowed = ban(&key.secret, "10.9.0.0/16", now, "at the cap");
    let records = vec![wide[0].clone(), allowed.clone(), wide[1].clone()];
    rogue.publish_ok(Batch::of_records(vec![key.certificate()], records).encode());
    super::wait_stored_everywhere(&cluster, &keys_of(&[allowed]), "the /16 ban");

    let counted = wait_until(SOON, || {
        cluster.nodes.iter().all(|n| n.status()["skipped"]["prefix too wide"].as_u64() >= Some(2))
    });
    let seen: Vec<String> =
        cluster.nodes.iter().map(|n| n.status()["skipped"].to_string()).collect();
    assert!(counted, "not every node skipped both wide bans: {seen:?}");
    let shown = metrics.value(&too_wide);
    assert!(shown >= before + 2.0, "node1's /metrics counts {shown} too-wide records");
    let wide_keys = keys_of(&wide);
    let never = holds_for(WATCH, || {
        cluster.nodes.iter().all(|n| {
            stored_of(n, &wide_keys).is_empty()
                && n.is_not_banned("10.1.2.3")
                && n.is_not_banned("2001:db8:1::1")
        })
    });
    assert!(never, "a wide ban was stored or enforced: node1 says {}", node1_decision(&cluster));
    for node in &cluster.nodes {
        assert!(node.is_banned("10.9.1.1"), "{} does not enforce the /16", node.name);
        let rejects = rejects(node).to_string();
        assert!(
            !rejects.contains("repeated"),
            "{}: a skipped record cost a strike: {rejects}",
            node.name
        );
    }
    assert!(
        cluster.node(0).connected_peers().contains(&rogue.peer_id.to_string()),
        "a skipped record cost the rogue its connection: {:?}",
        cluster.node(0).peers()
    );
    eprintln!(
        "node1 after the wide bans: skipped {seen:?}; /metrics {}",
        metrics.lines("banmesh_records_skipped")
    );
}

/// node1's decision on an address inside the /8, for messages.
fn node1_decision(cluster: &super::common::TestCluster) -> String {
    cluster.node(0).decision("10.1.2.3")
}
