use super::*;

fn ban(key: &str, issued_ms: u64, ttl_ms: u64) -> Statement {
    Statement {
        key: key.parse().unwrap(),
        kind: Kind::Ban,
        issued_at: Hlc::from_millis(issued_ms),
        expires_at: Some(issued_ms + ttl_ms),
        strikes: 1,
        meta: Metadata { jail: "sshd".into(), reason: "5 failures".into(), source: "cli".into() },
        origin: Origin([7; 32]),
    }
}

#[test]
fn encoding_is_fixed_and_round_trips() {
    let r = Record::new(ban("192.0.2.7", 1_000, 60_000), [9; 64]);
    let bytes = r.encode();
    // A golden prefix: version, kind, family, prefix, address, issued_at.
    assert_eq!(&bytes[..8], &[1, 1, 4, 32, 192, 0, 2, 7]);
    assert_eq!(&bytes[8..16], &(1_000u64 << 16).to_be_bytes());
    assert_eq!(Record::decode(&bytes).unwrap(), r);
    assert_eq!(r.statement().signed_bytes()[..RECORD_DOMAIN.len()], *RECORD_DOMAIN);
    assert!(bytes.len() <= MAX_RECORD_BYTES);
    // The id is the SHA-256 of the signed bytes, not of the wire bytes.
    let expected: [u8; 32] = Sha256::digest(r.statement().signed_bytes()).into();
    assert_eq!(r.id().0, expected);
}

#[test]
fn decoding_is_strict() {
    let bytes = Record::new(ban("192.0.2.7", 1_000, 60_000), [9; 64]).encode();
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(Record::decode(&trailing), Err(DecodeError::TrailingBytes));
    for cut in 0..bytes.len() {
        assert_eq!(Record::decode(&bytes[..cut]), Err(DecodeError::Truncated), "cut {cut}");
    }
    let mut version = bytes.clone();
    version[0] = 2;
    assert_eq!(Record::decode(&version), Err(DecodeError::UnknownVersion(2)));
    let mut kind = bytes.clone();
    kind[1] = 9;
    assert_eq!(Record::decode(&kind), Err(DecodeError::UnknownKind(9)));
    let mut host_bits = bytes.clone();
    host_bits[3] = 24;
    assert_eq!(Record::decode(&host_bits), Err(DecodeError::NonCanonicalKey));
    let mut flag = bytes.clone();
    flag[16] = 2;
    assert_eq!(Record::decode(&flag), Err(DecodeError::BadField("expires_at")));
    let mut unban_with_expiry = bytes;
    unban_with_expiry[1] = Kind::Unban as u8;
    assert_eq!(Record::decode(&unban_with_expiry), Err(DecodeError::BadField("expires_at")));
}

#[test]
fn oversize_and_control_text_is_refused() {
    let mut s = ban("192.0.2.7", 1_000, 60_000);
    s.meta.jail = "j".repeat(MAX_JAIL + 1);
    let bytes = Record::new(s.clone(), [0; 64]).encode();
    assert_eq!(Record::decode(&bytes), Err(DecodeError::Oversize { field: "jail", max: MAX_JAIL }));
    assert!(matches!(s.validate(&Params::default()), Err(RecordError::Decode(_))));
    s.meta.jail = "ss\nhd".into();
    let bytes = Record::new(s, [0; 64]).encode();
    assert_eq!(Record::decode(&bytes), Err(DecodeError::BadText("jail")));
}

#[test]
fn validate_applies_expiry_and_strike_rules() {
    let p = Params::default();
    assert_eq!(ban("10.0.0.1", 1_000, p.max_ttl_ms).validate(&p), Ok(()));
    assert_eq!(
        ban("10.0.0.1", 1_000, p.max_ttl_ms + 1).validate(&p),
        Err(RecordError::PastMaxTtl { ttl_ms: p.max_ttl_ms + 1, max_ttl_ms: p.max_ttl_ms })
    );
    let mut zero = ban("10.0.0.1", 1_000, 0);
    assert!(matches!(zero.validate(&p), Err(RecordError::ExpiresBeforeIssue { .. })));
    zero.expires_at = None;
    assert_eq!(zero.validate(&p), Err(RecordError::Expiry { kind: Kind::Ban }));
    let mut unban = ban("10.0.0.1", 1_000, 10);
    unban.kind = Kind::Unban;
    unban.strikes = 0;
    assert_eq!(unban.validate(&p), Err(RecordError::Expiry { kind: Kind::Unban }));
    unban.expires_at = None;
    assert_eq!(unban.validate(&p), Ok(()));
    unban.strikes = 2;
    assert_eq!(unban.validate(&p), Err(RecordError::Strikes));
    let far = ban("10.0.0.1", MAX_TIME_MS, 10);
    assert_eq!(far.validate(&p), Err(RecordError::TimeOutOfRange));
    assert_eq!(ban("10.0.0.1", MAX_TIME_MS - 10, 10).validate(&p), Ok(()));
    let mut no_strikes = ban("10.0.0.1", 1_000, 10);
    no_strikes.strikes = 0;
    assert_eq!(no_strikes.validate(&p), Err(RecordError::Strikes));
}

#[test]
fn order_is_issued_at_then_origin_then_id() {
    let a = Record::new(ban("10.0.0.1", 1_000, 10), [0; 64]);
    let mut later = ban("10.0.0.1", 1_001, 10);
    later.origin = Origin([0; 32]);
    let b = Record::new(later, [0; 64]);
    assert!(a.order_cmp(&b).is_lt());
    let mut other_origin = ban("10.0.0.1", 1_000, 10);
    other_origin.origin = Origin([8; 32]);
    let c = Record::new(other_origin, [0; 64]);
    assert!(a.order_cmp(&c).is_lt());
    // Same instant, same origin (a cloned key): the id decides.
    let d = Record::new(ban("10.0.0.2", 1_000, 10), [0; 64]);
    assert_eq!(a.order_cmp(&d), a.id().cmp(&d.id()));
}
