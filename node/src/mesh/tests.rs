//! Unit tests of the gossip batch format, of the trust rules a received
//! batch is judged by, and of the never-ban list.

use banmesh_crdt::{Hlc, Kind, Metadata, Origin, Params, Statement};
use banmesh_keys::{Certificate, Revocation, Roles, SecretKey, sign_record};

use super::batch::{Batch, BatchError, MAX_MESSAGE, pack};
use super::trust::{Trust, Verdict};

const NOW: u64 = 1_800_000_000_000;
const DAY: u64 = 86_400_000;

fn statement(kind: Kind, key: &str, at: u64) -> Statement {
    Statement {
        key: key.parse().unwrap(),
        kind,
        issued_at: Hlc::from_millis(at),
        expires_at: kind.expires().then_some(at + 60_000),
        strikes: u32::from(kind == Kind::Ban),
        meta: Metadata::default(),
        origin: Origin::default(),
    }
}

struct Cluster {
    key: SecretKey,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster { key: SecretKey::generate().unwrap() }
    }

    fn enroll(&self, node: &SecretKey, roles: &str) -> Certificate {
        let roles: Roles = roles.parse().unwrap();
        Certificate::issue(&self.key, node.public(), "n1", roles, NOW - DAY, NOW + DAY, None)
            .unwrap()
    }
}

#[test]
fn batches_round_trip_and_decode_strictly() {
    let c = Cluster::new();
    let node = SecretKey::generate().unwrap();
    let records: Vec<_> = (0..10)
        .map(|i| sign_record(&node, statement(Kind::Ban, &format!("10.0.0.{i}"), NOW)))
        .collect();
    let batch = Batch::of_records(vec![c.enroll(&node, "ban")], records);
    let bytes = batch.encode();
    assert_eq!(Batch::decode(&bytes).unwrap(), batch);
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(Batch::decode(&trailing), Err(BatchError::Decode(_))));
    assert!(matches!(Batch::decode(&bytes[..bytes.len() - 1]), Err(BatchError::Decode(_))));
    assert!(matches!(Batch::decode(&vec![1; MAX_MESSAGE + 1]), Err(BatchError::Oversize(_))));
    assert!(matches!(Batch::decode(&[1, 0, 0, 0, 0, 0, 0]), Err(BatchError::Empty)));
    assert!(Batch::decode(&[]).is_err());
    for garbage in [&[9u8, 0, 0][..], &[1, 0, 1, 0, 3, 1, 2, 3, 0, 1]] {
        assert!(Batch::decode(garbage).is_err());
    }
}

#[test]
fn pack_splits_under_the_limit_and_carries_certificates() {
    let c = Cluster::new();
    let nodes: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate().unwrap()).collect();
    let certs: Vec<Certificate> = nodes.iter().map(|n| c.enroll(n, "ban")).collect();
    let records: Vec<_> = (0..2_000u32)
        .map(|i| {
            let key = format!("10.{}.{}.1", i / 200, i % 200);
            sign_record(&nodes[i as usize % 3], statement(Kind::Ban, &key, NOW))
        })
        .collect();
    let messages =
        pack(records.clone(), |o| certs.iter().find(|c| c.node().to_bytes() == o.0).cloned());
    assert!(messages.len() > 1);
    let mut seen = Vec::new();
    for m in &messages {
        assert!(m.len() <= MAX_MESSAGE, "{} bytes", m.len());
        let batch = Batch::decode(m).unwrap();
        for r in &batch.records {
            assert!(
                batch.certs.iter().any(|c| c.node().to_bytes() == r.origin().0),
                "cert missing"
            );
        }
        seen.extend(batch.records);
    }
    assert_eq!(seen, records);
}

#[test]
fn judge_follows_the_trust_rules() {
    let c = Cluster::new();
    let params = Params::default();
    let node = SecretKey::generate().unwrap();
    let cert = c.enroll(&node, "ban");
    let trust = Trust::new(c.key.public());
    let ban = sign_record(&node, statement(Kind::Ban, "10.0.0.1", NOW));
    let judge = |certs: Vec<Certificate>, records| {
        trust.judge(Batch::of_records(certs, records), NOW, &params)
    };

    assert!(
        matches!(judge(vec![cert.clone()], vec![ban.clone()]), Verdict::Store { certs, .. } if certs.len() == 1)
    );
    assert!(matches!(judge(vec![], vec![ban.clone()]), Verdict::Ignore("unknown certificate")));
    let allow = sign_record(&node, statement(Kind::Allow, "10.0.0.1", NOW));
    assert!(matches!(
        judge(vec![cert.clone()], vec![ban.clone(), allow]),
        Verdict::Reject("missing role")
    ));
    let mut forged = ban.statement().clone();
    forged.strikes = 9;
    let forged = banmesh_crdt::Record::new(forged, *ban.signature());
    assert!(matches!(
        judge(vec![cert.clone()], vec![ban.clone(), forged]),
        Verdict::Reject("bad signature")
    ));
    let wide = sign_record(&node, statement(Kind::Ban, "10.0.0.0/8", NOW));
    assert!(matches!(judge(vec![cert.clone()], vec![wide]), Verdict::Reject("prefix too wide")));
    let future = sign_record(&node, statement(Kind::Ban, "10.0.0.2", NOW + 10 * 60_000));
    assert!(matches!(judge(vec![cert.clone()], vec![future]), Verdict::Ignore("future-dated")));
    let other = Cluster::new();
    let foreign = other.enroll(&node, "ban");
    assert!(matches!(judge(vec![foreign], vec![ban.clone()]), Verdict::Reject("bad certificate")));

    let mut revoked = Trust::new(c.key.public());
    revoked.add_certificate(cert).unwrap();
    revoked.add_revocation(Revocation::issue(&c.key, node.public(), NOW, "gone").unwrap()).unwrap();
    assert!(matches!(
        revoked.judge(Batch::of_records(vec![], vec![ban]), NOW, &params),
        Verdict::Ignore("revoked origin")
    ));
}

#[test]
fn revocations_travel_in_batches_and_void_their_origin() {
    let c = Cluster::new();
    let params = Params::default();
    let node = SecretKey::generate().unwrap();
    let cert = c.enroll(&node, "ban");
    let ban = sign_record(&node, statement(Kind::Ban, "10.0.0.1", NOW));
    let revocation = Revocation::issue(&c.key, node.public(), NOW, "stolen").unwrap();
    let batch =
        Batch { certs: vec![cert], revocations: vec![revocation.clone()], records: vec![ban] };
    assert_eq!(Batch::decode(&batch.encode()).unwrap(), batch);
    let trust = Trust::new(c.key.public());
    assert!(matches!(trust.judge(batch, NOW, &params), Verdict::Ignore("revoked origin")));
    let alone = Batch { certs: vec![], revocations: vec![revocation], records: vec![] };
    let decoded = Batch::decode(&alone.encode()).unwrap();
    assert!(
        matches!(trust.judge(decoded, NOW, &params), Verdict::Store { revocations, .. } if revocations.len() == 1)
    );
    let foreign = Revocation::issue(&Cluster::new().key, node.public(), NOW, "x").unwrap();
    let bad = Batch { certs: vec![], revocations: vec![foreign], records: vec![] };
    assert!(matches!(trust.judge(bad, NOW, &params), Verdict::Reject("bad revocation")));
}

#[test]
fn never_ban_holds_configured_own_and_admitted_peers_observed_addresses() {
    use super::{PeerState, never_ban_list};
    // Each peer claims 203.0.113.66 in its hello; only where it connects
    // from counts.
    let peer = |remote: &str, ready: bool, blocked: bool| PeerState {
        peer: libp2p::PeerId::random(),
        name: None,
        ready,
        offset_ms: None,
        connected_ms: 0,
        addrs: vec!["/ip4/203.0.113.66/tcp/4646".parse().unwrap()],
        remote: Some(remote.parse().unwrap()),
        connected: true,
        blocked,
        in_doubt: false,
        last_seen_ms: None,
    };
    let configured = vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.1".parse().unwrap()];
    let listen = vec![
        "/ip4/0.0.0.0/tcp/4646".parse().unwrap(),
        "/ip4/192.0.2.1/tcp/4646".parse().unwrap(),
        "/ip6/2001:db8::5/tcp/4646".parse().unwrap(),
    ];
    let peers = [
        peer("/ip4/198.51.100.7/tcp/50123", true, false),
        peer("/ip4/198.51.100.8/tcp/4646", false, false),
        peer("/ip4/198.51.100.9/tcp/4646", true, true),
    ];
    let list: Vec<String> =
        never_ban_list(&configured, &listen, &peers).iter().map(ToString::to_string).collect();
    assert_eq!(list, ["10.0.0.0/8", "192.0.2.1", "2001:db8::5", "198.51.100.7"]);
}
