//! Records signed for real from fuzzer-chosen fields, then optionally one
//! byte changed: a signed record round-trips through its encoding, and a
//! changed one either fails to decode, fails its signature, or is another
//! canonical record. Judging never panics.
#![no_main]

use arbitrary::Arbitrary;
use banmesh_crdt::Record;
use banmesh_fuzz::{ArbStatement, fixture, params};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    statement: ArbStatement,
    /// A byte to change: (position, xor mask).
    flip: Option<(u16, u8)>,
}

fuzz_target!(|input: Input| {
    let record = input.statement.sign();
    let mut bytes = record.encode();
    if record.statement().validate(&params()).is_ok() {
        let decoded = Record::decode(&bytes).expect("a valid signed record decodes");
        assert_eq!(decoded, record);
    }
    if let Some((at, mask)) = input.flip
        && !bytes.is_empty()
    {
        let at = usize::from(at) % bytes.len();
        bytes[at] ^= mask.max(1);
    }
    let Ok(decoded) = Record::decode(&bytes) else { return };
    assert_eq!(decoded.encode(), bytes, "a decoded record is canonical");
    let signed = banmesh_keys::verify_record(&decoded);
    if input.flip.is_some() && decoded != record {
        assert!(signed.is_err(), "a changed record keeps no valid signature");
    }
    let _ = fixture().trust.check_record(&decoded, &params());
});
