//! Unit tests of the gossip batch format, of the trust rules a received
//! batch is judged by, and of the never-ban list.

use banmesh_crdt::{Hlc, Kind, Metadata, Origin, Params, Statement};
use banmesh_keys::{Certificate, Revocation, Roles, SecretKey, sign_record};

use super::batch::{Batch, BatchError, MAX_MESSAGE, pack};
use super::trust::{Skip, Trust, Verdict};

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

/// The records `verdict` stores and why it skipped the others; panics on a
/// Reject.
fn stored_and_skipped(verdict: Verdict) -> (Vec<banmesh_crdt::Record>, Vec<Skip>) {
    match verdict {
        Verdict::Store(judged) => (judged.records, judged.skipped),
        Verdict::Reject(reason) => panic!("rejected: {reason}"),
    }
}

#[test]
fn judge_follows_the_trust_rules_record_by_record() {
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
        matches!(judge(vec![cert.clone()], vec![ban.clone()]), Verdict::Store(j) if j.certs.len() == 1 && j.records.len() == 1)
    );
    let (stored, skipped) = stored_and_skipped(judge(vec![], vec![ban.clone()]));
    assert!(stored.is_empty());
    assert_eq!(skipped, [Skip::UnknownCertificate]);
    // A record's own fault leaves that record out, and only that one.
    let allow = sign_record(&node, statement(Kind::Allow, "10.0.0.1", NOW));
    let wide = sign_record(&node, statement(Kind::Ban, "10.0.0.0/8", NOW));
    let future = sign_record(&node, statement(Kind::Ban, "10.0.0.2", NOW + 10 * 60_000));
    let mut long = statement(Kind::Ban, "10.0.0.3", NOW);
    long.expires_at = Some(NOW + params.max_ttl_ms + 1);
    let long = sign_record(&node, long);
    let (stored, skipped) =
        stored_and_skipped(judge(vec![cert.clone()], vec![allow, ban.clone(), wide, future, long]));
    assert_eq!(stored, std::slice::from_ref(&ban));
    assert_eq!(
        skipped,
        [Skip::MissingRole, Skip::PrefixTooWide, Skip::FutureDated, Skip::ClusterRule]
    );
    // A forgery is what no honest peer passes on: the whole batch goes.
    let mut forged = ban.statement().clone();
    forged.strikes = 9;
    let forged = banmesh_crdt::Record::new(forged, *ban.signature());
    assert!(matches!(
        judge(vec![cert.clone()], vec![ban.clone(), forged]),
        Verdict::Reject("bad signature")
    ));
    let other = Cluster::new();
    let foreign = other.enroll(&node, "ban");
    assert!(matches!(judge(vec![foreign], vec![ban.clone()]), Verdict::Reject("bad certificate")));
}

#[test]
fn batches_judged_on_many_threads_keep_their_own_verdicts_in_order() {
    let c = Cluster::new();
    let params = Params::default();
    let node = SecretKey::generate().unwrap();
    let cert = c.enroll(&node, "ban");
    let trust = Trust::new(c.key.public());
    let batch_of = |b: u32| -> Vec<banmesh_crdt::Record> {
        (0..100)
            .map(|i| sign_record(&node, statement(Kind::Ban, &format!("10.{b}.{i}.1"), NOW)))
            .collect()
    };
    // Twelve batches, enough bytes to be shared out among threads: one
    // malformed, one with a forged record, one without its certificate.
    let mut data: Vec<Vec<u8>> =
        (0..12).map(|b| Batch::of_records(vec![cert.clone()], batch_of(b)).encode()).collect();
    assert!(data.iter().map(Vec::len).sum::<usize>() > 64 * 1024);
    data[3] = vec![9, 0, 0];
    let mut records = batch_of(7);
    let mut forged = records[50].statement().clone();
    forged.strikes = 9;
    records[50] = banmesh_crdt::Record::new(forged, *records[50].signature());
    data[7] = Batch::of_records(vec![cert.clone()], records).encode();
    data[10] = Batch::of_records(vec![], batch_of(10)).encode();

    let verdicts = super::verifier::judge_all(&data, &trust, NOW, &params);
    assert_eq!(verdicts.len(), data.len());
    for (b, verdict) in verdicts.into_iter().enumerate() {
        match (b, verdict) {
            (3, verdict) => assert!(matches!(verdict, Err("malformed batch")), "{verdict:?}"),
            (7, verdict) => assert!(matches!(verdict, Ok(Verdict::Reject("bad signature")))),
            (b, Ok(verdict)) => {
                let (stored, skipped) = stored_and_skipped(verdict);
                if b == 10 {
                    assert!(stored.is_empty());
                    assert_eq!(skipped.len(), 100);
                } else {
                    assert_eq!(stored, batch_of(b as u32), "batch {b}");
                }
            }
            (b, Err(e)) => panic!("batch {b}: {e}"),
        }
    }
}

#[test]
fn a_revoked_or_unknown_origin_never_keeps_other_origins_records_out() {
    let c = Cluster::new();
    let params = Params::default();
    let nodes: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate().unwrap()).collect();
    let certs: Vec<Certificate> = nodes[..2].iter().map(|n| c.enroll(n, "ban")).collect();
    let mut trust = Trust::new(c.key.public());
    trust.add_certificate(certs[0].clone()).unwrap();
    trust
        .add_revocation(Revocation::issue(&c.key, nodes[0].public(), NOW, "gone").unwrap())
        .unwrap();
    // Mixed in (issued_at, id) order as sync packs them: revoked nodes[0],
    // valid nodes[1], unknown nodes[2].
    let records: Vec<_> = (0..30u64)
        .map(|i| {
            let key = format!("10.1.0.{i}");
            sign_record(&nodes[i as usize % 3], statement(Kind::Ban, &key, NOW - 1_000 + i))
        })
        .collect();
    let batch = Batch::of_records(vec![certs[1].clone()], records.clone());
    let (stored, mut skipped) = stored_and_skipped(trust.judge(batch, NOW, &params));
    let valid: Vec<_> = records.iter().skip(1).step_by(3).cloned().collect();
    assert_eq!(stored, valid);
    skipped.sort();
    assert_eq!(skipped.len(), 20);
    assert_eq!(skipped.iter().filter(|s| **s == Skip::RevokedOrigin).count(), 10);
    assert_eq!(skipped.iter().filter(|s| **s == Skip::UnknownCertificate).count(), 10);
}

#[test]
fn any_certificate_valid_at_issue_makes_a_record_valid() {
    // A node re-enrolled with a later-ending certificate without the allow
    // role: its allow from the overlap stays valid whichever certificates a
    // node knows, so learning one more never voids a stored record.
    let c = Cluster::new();
    let params = Params::default();
    let node = SecretKey::generate().unwrap();
    let with_allow = c.enroll(&node, "ban,allow");
    let roles: Roles = "ban".parse().unwrap();
    let later =
        Certificate::issue(&c.key, node.public(), "n1", roles, NOW - DAY, NOW + 2 * DAY, None)
            .unwrap();
    let allow = sign_record(&node, statement(Kind::Allow, "10.0.0.1", NOW));
    let mut trust = Trust::new(c.key.public());
    trust.add_certificate(later).unwrap();
    assert_eq!(trust.check_record(&allow, &params), Err(Skip::MissingRole));
    trust.add_certificate(with_allow).unwrap();
    assert_eq!(trust.check_record(&allow, &params), Ok(()));
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
    let judged = match trust.judge(batch, NOW, &params) {
        Verdict::Store(judged) => judged,
        Verdict::Reject(reason) => panic!("rejected: {reason}"),
    };
    assert_eq!((judged.revocations.len(), judged.records.len()), (1, 0));
    assert_eq!(judged.skipped, [Skip::RevokedOrigin]);
    let foreign = Revocation::issue(&Cluster::new().key, node.public(), NOW, "x").unwrap();
    let bad = Batch { certs: vec![], revocations: vec![foreign], records: vec![] };
    assert!(matches!(trust.judge(bad, NOW, &params), Verdict::Reject("bad revocation")));
}

#[test]
fn never_ban_holds_configured_loopback_own_and_admitted_peers_observed_addresses() {
    use super::PeerState;
    use super::never_ban::{Parts, never_ban_list};
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
    let local =
        ["127.0.0.1".parse().unwrap(), "10.1.2.3".parse().unwrap(), "fd00::2".parse().unwrap()];
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
    let stored = ["198.51.100.7".parse().unwrap(), "198.51.100.20".parse().unwrap()];
    let parts = Parts {
        configured: &configured,
        local: &local,
        listen: &listen,
        peers: &peers,
        stored: &stored,
    };
    let list: Vec<String> = never_ban_list(&parts).iter().map(ToString::to_string).collect();
    assert_eq!(
        list,
        [
            "10.0.0.0/8",
            "192.0.2.1",
            "127.0.0.0/8",
            "::1",
            "127.0.0.1",
            "10.1.2.3",
            "fd00::2",
            "2001:db8::5",
            "198.51.100.7",
            "198.51.100.20"
        ]
    );
}

#[test]
fn origins_are_looked_up_by_their_bytes_and_a_bad_point_is_still_told_apart() {
    let c = Cluster::new();
    let params = Params::default();
    let (known, unknown) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
    let mut trust = Trust::new(c.key.public());
    trust.add_certificate(c.enroll(&known, "ban")).unwrap();
    let ban = |node: &SecretKey| sign_record(node, statement(Kind::Ban, "10.0.0.1", NOW));
    assert_eq!(trust.check_record(&ban(&known), &params), Ok(()));
    assert_eq!(trust.check_record(&ban(&unknown), &params), Err(Skip::UnknownCertificate));
    let off_curve = banmesh_crdt::Record::new(
        Statement { origin: Origin([0xff; 32]), ..statement(Kind::Ban, "10.0.0.1", NOW) },
        [0; 64],
    );
    assert_eq!(trust.check_record(&off_curve, &params), Err(Skip::BadOrigin));
    let origin = Origin(known.public().to_bytes());
    assert_eq!(trust.cert_of_origin(&origin), trust.cert_of(&known.public()));
    assert!(trust.cert_of_origin(&origin).is_some());
    let revocation = Revocation::issue(&c.key, known.public(), NOW, "stolen").unwrap();
    trust.add_revocation(revocation).unwrap();
    assert_eq!(trust.check_record(&ban(&known), &params), Err(Skip::RevokedOrigin));
}
