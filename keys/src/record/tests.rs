use banmesh_crdt::{Hlc, Metadata, Params};

use super::*;
use crate::revocation::Revocation;
use crate::roles::{MaxPrefix, Roles};

const DAY_MS: u64 = 86_400_000;

fn statement(kind: Kind, key: &str, issued_ms: u64) -> Statement {
    Statement {
        key: key.parse().unwrap(),
        kind,
        issued_at: Hlc::from_millis(issued_ms),
        expires_at: kind.expires().then_some(issued_ms + 60_000),
        strikes: u32::from(kind == Kind::Ban),
        meta: Metadata::default(),
        origin: Origin::default(),
    }
}

struct Fixture {
    cluster: SecretKey,
    node: SecretKey,
    revocations: Revocations,
}

impl Fixture {
    fn new() -> Fixture {
        let cluster = SecretKey::generate().unwrap();
        let revocations = Revocations::new(cluster.public());
        Fixture { cluster, node: SecretKey::generate().unwrap(), revocations }
    }

    fn cert(&self, roles: &str, max_prefix: Option<MaxPrefix>) -> Certificate {
        let roles: Roles = roles.parse().unwrap();
        let node = self.node.public();
        Certificate::issue(&self.cluster, node, "web1", roles, DAY_MS, 10 * DAY_MS, max_prefix)
            .unwrap()
    }
}

#[test]
fn a_signed_record_verifies_and_any_change_breaks_it() {
    let f = Fixture::new();
    let r = sign_record(&f.node, statement(Kind::Ban, "192.0.2.7", 2 * DAY_MS));
    assert_eq!(r.origin(), origin_of(&f.node.public()));
    assert_eq!(verify_record(&r), Ok(()));
    assert!(r.statement().validate(&Params::default()).is_ok());
    let mut other = r.statement().clone();
    other.strikes = 2;
    let forged = Record::new(other, *r.signature());
    assert!(matches!(verify_record(&forged), Err(RecordCheckError::BadSignature { .. })));
    let mut wire = r.encode();
    let last = wire.len() - 1;
    wire[last] ^= 1;
    let bad_sig = Record::decode(&wire).unwrap();
    assert!(matches!(verify_record(&bad_sig), Err(RecordCheckError::BadSignature { .. })));
}

#[test]
fn batch_verification_accepts_good_batches_and_names_the_bad_record() {
    let f = Fixture::new();
    let other = SecretKey::generate().unwrap();
    let mut batch: Vec<Record> = (0..50u64)
        .map(|i| {
            let signer = if i % 2 == 0 { &f.node } else { &other };
            sign_record(signer, statement(Kind::Ban, &format!("10.0.0.{i}"), 2 * DAY_MS + i))
        })
        .collect();
    assert_eq!(verify_batch(&batch), Ok(()));
    assert_eq!(verify_batch(&[]), Ok(()));
    let mut changed = batch[17].statement().clone();
    changed.key = "10.9.9.9".parse().unwrap();
    batch[17] = Record::new(changed, *batch[17].signature());
    let (index, err) = verify_batch(&batch).unwrap_err();
    assert_eq!(index, 17);
    assert!(matches!(err, RecordCheckError::BadSignature { .. }));
}

#[test]
fn an_origin_that_is_no_point_is_refused() {
    // y = 2 is not the y-coordinate of any point on the curve.
    let mut s = statement(Kind::Ban, "192.0.2.7", 2 * DAY_MS);
    let mut bytes = [0u8; 32];
    bytes[0] = 2;
    s.origin = Origin(bytes);
    let r = Record::new(s, [0; 64]);
    assert!(matches!(verify_record(&r), Err(RecordCheckError::BadOrigin { .. })));
    assert!(verify_batch(&[r]).is_err());
}

#[test]
fn record_valid_applies_the_trust_rule() {
    let mut f = Fixture::new();
    let cert = f.cert("ban", None);
    let at = 2 * DAY_MS;
    let ban = sign_record(&f.node, statement(Kind::Ban, "192.0.2.7", at));
    assert_eq!(record_valid(&ban, &cert, &f.revocations), Ok(()));
    let unban = sign_record(&f.node, statement(Kind::Unban, "192.0.2.7", at));
    assert_eq!(record_valid(&unban, &cert, &f.revocations), Ok(()));

    let allow = sign_record(&f.node, statement(Kind::Allow, "192.0.2.7", at));
    assert!(matches!(
        record_valid(&allow, &cert, &f.revocations),
        Err(RecordCheckError::Cert(CertError::MissingRole { .. }))
    ));

    // Validity is judged at issued_at, not at the time of checking.
    let early = sign_record(&f.node, statement(Kind::Ban, "192.0.2.7", DAY_MS - 1));
    assert!(matches!(
        record_valid(&early, &cert, &f.revocations),
        Err(RecordCheckError::Cert(CertError::NotYetValid { .. }))
    ));
    let late = sign_record(&f.node, statement(Kind::Ban, "192.0.2.7", 10 * DAY_MS));
    assert!(matches!(
        record_valid(&late, &cert, &f.revocations),
        Err(RecordCheckError::Cert(CertError::Expired { .. }))
    ));

    let stranger =
        sign_record(&SecretKey::generate().unwrap(), statement(Kind::Ban, "192.0.2.7", at));
    assert!(matches!(
        record_valid(&stranger, &cert, &f.revocations),
        Err(RecordCheckError::WrongOrigin { .. })
    ));

    let revocation = Revocation::issue(&f.cluster, f.node.public(), 5 * DAY_MS, "stolen").unwrap();
    f.revocations.insert(revocation).unwrap();
    // A revocation voids past records too.
    assert!(matches!(
        record_valid(&ban, &cert, &f.revocations),
        Err(RecordCheckError::Cert(CertError::Revoked { .. }))
    ));
}

#[test]
fn the_prefix_cap_follows_the_certificate() {
    let f = Fixture::new();
    let at = 2 * DAY_MS;
    let plain = f.cert("ban,allow", None);
    let wide = f.cert("ban,allow,wide-prefix", None);
    let capped = f.cert("ban,allow,wide-prefix", Some(MaxPrefix { v4: 8, v6: 32 }));
    let check = |key: &str, cert: &Certificate| {
        let r = sign_record(&f.node, statement(Kind::Ban, key, at));
        record_valid(&r, cert, &f.revocations)
    };
    assert_eq!(check("10.1.0.0/16", &plain), Ok(()));
    assert_eq!(check("2001:db8::/48", &plain), Ok(()));
    assert_eq!(
        check("10.0.0.0/15", &plain),
        Err(RecordCheckError::PrefixTooWide { prefix_len: 15, widest: 16 })
    );
    assert_eq!(
        check("2001:db8::/47", &plain),
        Err(RecordCheckError::PrefixTooWide { prefix_len: 47, widest: 48 })
    );
    assert_eq!(check("0.0.0.0/0", &wide), Ok(()));
    assert_eq!(check("10.0.0.0/8", &capped), Ok(()));
    assert_eq!(
        check("10.0.0.0/7", &capped),
        Err(RecordCheckError::PrefixTooWide { prefix_len: 7, widest: 8 })
    );
}
