//! The metrics' names and values as a scrape shows them.

use prometheus_client::encoding::text::encode;

use super::{Direction, Metrics, Registry};
use crate::control::views::{PeerState, PeerView, StatusView};

fn text(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

#[test]
fn event_counters_show_under_banmesh_and_libp2p_is_registered() {
    let mut registry = Registry::default();
    let metrics = Metrics::registered(&mut registry);
    metrics.received("gossip", [120, 30_000].into_iter());
    metrics.gossip_bytes(Direction::In, 300);
    metrics.request("/add_ips".to_owned(), 200);
    let text = text(&registry);
    assert!(text.contains("banmesh_records_received_total{via=\"gossip\"} 2"), "{text}");
    assert!(text.contains("banmesh_propagation_delay_seconds_count{via=\"gossip\"} 2"), "{text}");
    assert!(text.contains("banmesh_gossip_bytes_total{direction=\"in\"} 300"), "{text}");
    assert!(
        text.contains("banmesh_gateway_requests_total{endpoint=\"/add_ips\",status=\"200\"} 1")
    );
    assert!(text.contains("# TYPE libp2p_swarm_listener_error counter"), "{text}");
    assert!(text.contains("banmesh_errors_total{what=\"store\"} 0"), "{text}");
}

#[test]
fn the_snapshot_counts_peers_by_state_and_records_by_kind() {
    let peer = |state| PeerView {
        peer_id: "p".into(),
        name: None,
        state,
        addrs: Vec::new(),
        last_sync_ms: None,
        clock_offset_ms: None,
    };
    let status = StatusView {
        peers: vec![
            peer(PeerState::Connected),
            peer(PeerState::Connected),
            peer(PeerState::Blocked),
        ],
        record_counts: [("ban".to_owned(), 7)].into(),
        rejects: [("bad signature".to_owned(), 3)].into(),
        certificate_expires_at_ms: Some(1_900_000_000_000),
        ..StatusView::default()
    };
    let text = text(&super::scrape::snapshot(&status));
    assert!(text.contains("banmesh_peers{state=\"connected\"} 2"), "{text}");
    assert!(text.contains("banmesh_peers{state=\"blocked\"} 1"), "{text}");
    assert!(text.contains("banmesh_peers{state=\"pending\"} 0"), "{text}");
    assert!(text.contains("banmesh_records{kind=\"ban\"} 7"), "{text}");
    assert!(text.contains("banmesh_refused_total{reason=\"bad signature\"} 3"), "{text}");
    assert!(text.contains("banmesh_sync_sessions_total{outcome=\"refused\"} 0"), "{text}");
    assert!(text.contains("banmesh_certificate_expiry_timestamp_seconds 1900000000"), "{text}");
    assert!(text.contains("banmesh_health 0"), "{text}");
}
