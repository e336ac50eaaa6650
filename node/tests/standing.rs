//! A node's own standing in `banmesh status`: its certificate expired or not
//! yet valid, its own key revoked, and revocation files in its data dir that
//! it could not read, each a warning (and a log line for the files) rather
//! than a node that silently runs refused by every peer.

mod common;

use common::{SOON, TestCluster, wait_until};

#[test]
fn standing_damaged_revocation_files_are_named_and_a_bom_is_accepted() {
    let mut cluster = TestCluster::new();
    let spec = cluster.spec("node1", &[]);
    let dir = spec.data_dir.join("revocations");
    std::fs::create_dir_all(&dir).expect("revocations dir");
    cluster.enroll("node2");
    let (own, other) = (cluster.path("node1.rev"), cluster.path("node2.rev"));
    cluster.revoke("node1", &own);
    cluster.revoke("node2", &other);
    let own = std::fs::read_to_string(own).expect("revocation");
    let other = std::fs::read_to_string(other).expect("revocation");
    // Saved by an editor that writes a byte-order mark: still a revocation.
    std::fs::write(dir.join("node1.rev"), format!("\u{feff}{own}")).expect("write");
    std::fs::write(dir.join("cut.rev"), &other[..other.len() / 2]).expect("write");
    std::fs::write(dir.join("junk.rev"), b"\xef\xbb\xbfnot a revocation at all").expect("write");
    cluster.start(spec);
    let node = cluster.node(0);
    let warnings = node.status()["warnings"].to_string();
    for file in ["cut.rev", "junk.rev"] {
        assert!(warnings.contains(&format!("{file}: malformed revocation")), "{file}: {warnings}");
    }
    assert!(!warnings.contains("node1.rev"), "a revocation with a BOM was refused: {warnings}");
    assert!(warnings.contains("this node's key is revoked by the cluster key"), "{warnings}");
    let log = node.log_text();
    assert!(log.contains("revocation file skipped") && log.contains("cut.rev"), "{log}");
}

#[test]
fn standing_an_expired_certificate_is_a_warning() {
    let mut cluster = TestCluster::new();
    cluster.start(cluster.spec_valid_for("node1", "2s"));
    let node = cluster.node(0);
    let warned = wait_until(SOON, || {
        node.status()["warnings"].to_string().contains("this node's certificate expired at")
    });
    assert!(warned, "no warning for an expired certificate: {}", node.status()["warnings"]);
}

#[test]
fn standing_a_certificate_not_yet_valid_is_a_warning() {
    let mut cluster = TestCluster::new();
    let mut spec = cluster.spec("node1", &[]);
    // The host's clock two hours behind: the certificate enrolled now is
    // not valid yet for it.
    spec.clock_offset = Some("-2h".into());
    cluster.start(spec);
    let warnings = cluster.node(0).status()["warnings"].to_string();
    assert!(warnings.contains("this node's certificate is not valid before"), "{warnings}");
    assert!(!warnings.contains("expired"), "{warnings}");
}
