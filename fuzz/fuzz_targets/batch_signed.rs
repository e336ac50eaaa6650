//! Gossip batches of really signed records, with the fixture's certificates
//! and revocation as the fuzzer picks, optionally one byte changed, decoded
//! and judged: nothing panics, an encoded batch decodes to itself, and no
//! record with a bad signature is ever stored.
#![no_main]

use arbitrary::Arbitrary;
use banmesh_fuzz::{ArbStatement, NOW_MS, fixture, params, signed_batch};
use banmesh_node::mesh::batch::Batch;
use banmesh_node::mesh::trust::Verdict;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    records: Vec<ArbStatement>,
    /// Which of the three certificates ride along (bits).
    certs: u8,
    revocation: bool,
    /// Judge with an empty trust (only the cluster key) instead.
    fresh_trust: bool,
    flip: Option<(u16, u8)>,
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let batch = signed_batch(&input.records, 64, input.certs, input.revocation);
    let mut bytes = batch.encode();
    if let Ok(decoded) = Batch::decode(&bytes) {
        assert_eq!(decoded, batch, "an encoded batch decodes to itself");
    }
    if let Some((at, mask)) = input.flip {
        let at = usize::from(at) % bytes.len();
        bytes[at] ^= mask.max(1);
    }
    let Ok(decoded) = Batch::decode(&bytes) else { return };
    let trust = if input.fresh_trust {
        banmesh_node::mesh::Trust::new(f.cluster.public())
    } else {
        f.trust.clone()
    };
    if let Verdict::Store(judged) = trust.judge(decoded, NOW_MS, &params()) {
        for record in &judged.records {
            assert!(banmesh_keys::verify_record(record).is_ok(), "stored a forged record");
        }
    }
});
