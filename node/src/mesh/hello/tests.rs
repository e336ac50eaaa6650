//! Unit tests of hello judging (certificate, revocation, cluster constants),
//! of the refusal told to the refused peer, of the `status` warning built
//! from the refusals this node was told, and of the hello's wire form
//! across versions.

use std::collections::BTreeMap;

use banmesh_crdt::Params;
use banmesh_keys::{Certificate, Revocation, Roles, SecretKey};
use libp2p::PeerId;
use libp2p::futures::io::Cursor;
use libp2p::request_response::{Codec, cbor};
use serde::Serialize;
use serde_bytes::ByteBuf;

use super::*;

const NOW: u64 = 1_800_000_000_000;
const DAY: u64 = 86_400_000;

struct Setup {
    cluster: SecretKey,
    node: SecretKey,
    peer: PeerId,
    trust: Trust,
}

fn setup() -> Setup {
    let cluster = SecretKey::generate().unwrap();
    let node = SecretKey::generate().unwrap();
    let peer = peer_id_of(&node.public()).unwrap();
    let trust = Trust::new(cluster.public());
    Setup { cluster, node, peer, trust }
}

fn cert(cluster: &SecretKey, node: &SecretKey, from: u64, to: u64) -> Certificate {
    let roles: Roles = "ban".parse().unwrap();
    Certificate::issue(cluster, node.public(), "n2", roles, from, to, None).unwrap()
}

fn hello(cert: &Certificate, constants: Option<Constants>) -> Hello {
    Hello {
        version: HELLO_VERSION,
        cert: ByteBuf::from(cert.to_bytes()),
        clock_ms: NOW,
        revocations: Vec::new(),
        addrs: Vec::new(),
        constants,
        refused: None,
        by: None,
    }
}

fn ours() -> Constants {
    Params::default().into()
}

#[test]
fn judge_admits_a_good_hello_and_refuses_bad_certificates() {
    let s = setup();
    let good = cert(&s.cluster, &s.node, NOW - DAY, NOW + DAY);
    let welcome = judge(&hello(&good, Some(ours())), &s.peer, &s.trust, &ours(), NOW).unwrap();
    assert_eq!(welcome.cert, good);
    let verdict = |h: &Hello| judge(h, &s.peer, &s.trust, &ours(), NOW).err();

    let mut old = hello(&good, Some(ours()));
    old.version = HELLO_VERSION + 1;
    assert_eq!(verdict(&old), Some(Refusal::Version));
    let mut empty = hello(&good, Some(ours()));
    empty.cert = ByteBuf::new();
    assert_eq!(verdict(&empty), Some(Refusal::NotEnrolled));
    let other = SecretKey::generate().unwrap();
    let borrowed = cert(&s.cluster, &other, NOW - DAY, NOW + DAY);
    assert_eq!(verdict(&hello(&borrowed, None)), Some(Refusal::NotThePeers));
    let foreign = cert(&SecretKey::generate().unwrap(), &s.node, NOW - DAY, NOW + DAY);
    assert_eq!(verdict(&hello(&foreign, None)), Some(Refusal::ForeignCluster));
    let expired = cert(&s.cluster, &s.node, NOW - 2 * DAY, NOW - DAY);
    let refusal = verdict(&hello(&expired, None)).unwrap();
    assert_eq!(refusal, Refusal::NotValidNow);
    assert_eq!(refusal.told(), "certificate not valid now");

    let mut revoked = hello(&good, Some(ours()));
    let revocation = Revocation::issue(&s.cluster, s.node.public(), NOW, "gone").unwrap();
    revoked.revocations.push(ByteBuf::from(revocation.to_bytes()));
    assert_eq!(verdict(&revoked), Some(Refusal::Revoked));
}

#[test]
fn judge_refuses_other_cluster_constants_and_names_them_on_both_sides() {
    let s = setup();
    let good = cert(&s.cluster, &s.node, NOW - DAY, NOW + DAY);
    let theirs = Constants { max_ttl_ms: 14 * DAY, ..ours() };
    let refusal = judge(&hello(&good, Some(theirs)), &s.peer, &s.trust, &ours(), NOW).unwrap_err();
    assert_eq!(refusal.kind(), "cluster constants differ");
    assert_eq!(refusal.to_string(), "cluster constants differ: max_ttl 5w here, 2w there");
    // The refused peer is told in its own terms.
    assert_eq!(refusal.told(), "cluster constants differ: max_ttl 2w here, 5w there");

    let all = Constants { max_ttl_ms: 14 * DAY, retention_ms: DAY, skew_bound_ms: 60_000 };
    let refusal = judge(&hello(&good, Some(all)), &s.peer, &s.trust, &ours(), NOW).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "cluster constants differ: max_ttl 5w here, 2w there; retention 1w here, 1d there; \
         skew_bound 30s here, 1m there"
    );
    // A hello from a node that does not send its constants is admitted.
    assert!(judge(&hello(&good, None), &s.peer, &s.trust, &ours(), NOW).is_ok());
}

#[test]
fn refusals_told_by_peers_are_kept_short_and_printable() {
    assert_eq!(heard("revoked"), "revoked");
    assert_eq!(heard("a\nb\u{1b}[31mc"), "a b [31mc");
    let long = "x".repeat(MAX_REASON + 50);
    let kept = heard(&long);
    assert_eq!(kept.chars().count(), MAX_REASON + 1);
    assert!(kept.ends_with('…'));
}

#[test]
fn the_warning_says_every_peer_refuses_and_why() {
    let mut refused_by = BTreeMap::new();
    assert_eq!(refused_warning(&refused_by, 0), None);
    let peer = PeerId::random();
    refused_by.insert(peer, "certificate not valid now".to_owned());
    let warning = refused_warning(&refused_by, 0).unwrap();
    assert!(warning.contains("every peer refuses this node's hello"), "{warning}");
    assert!(warning.contains(&format!("{peer}: certificate not valid now")), "{warning}");
    let some = refused_warning(&refused_by, 2).unwrap();
    assert!(some.starts_with("1 peer(s) refuse this node's hello"), "{some}");
    for _ in 0..10 {
        refused_by.insert(PeerId::random(), "revoked".to_owned());
    }
    assert!(refused_warning(&refused_by, 0).unwrap().ends_with("and 7 more)"));
}

/// The hello as nodes built before the constants and refusals sent it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct OldHello {
    version: u32,
    cert: ByteBuf,
    clock_ms: u64,
    revocations: Vec<ByteBuf>,
    addrs: Vec<String>,
}

async fn cbor_round<A, B>(value: A) -> B
where
    A: Serialize + serde::de::DeserializeOwned + Send + 'static,
    B: Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let protocol = libp2p::StreamProtocol::new("/banmesh/hello/1");
    let mut bytes = Vec::new();
    let mut writer = cbor::codec::Codec::<A, A>::default();
    writer.write_request(&protocol, &mut bytes, value).await.unwrap();
    let mut reader = cbor::codec::Codec::<B, B>::default();
    reader.read_request(&protocol, &mut Cursor::new(bytes)).await.unwrap()
}

#[tokio::test]
async fn hellos_decode_across_versions() {
    let s = setup();
    let good = cert(&s.cluster, &s.node, NOW - DAY, NOW + DAY);
    let new = hello(&good, Some(ours()));
    let old: OldHello = cbor_round(new.clone()).await;
    assert_eq!(old.cert, new.cert);
    let back: Hello = cbor_round(old).await;
    assert_eq!((back.constants, back.refused), (None, None));
    let told: Hello = cbor_round(Hello::refusal("revoked".to_owned(), None, NOW)).await;
    assert_eq!(told.refused.as_deref(), Some("revoked"));
}
