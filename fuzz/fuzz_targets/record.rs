//! The record decoder on raw bytes: never panics; whatever decodes is
//! canonical (encodes back to the same bytes) and its signature check and
//! validity judgement never panic either.
#![no_main]

use banmesh_crdt::Record;
use banmesh_fuzz::{fixture, params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: banmesh_fuzz::write_seeds_if_asked(), |data: &[u8]| {
    let Ok(record) = Record::decode(data) else { return };
    assert_eq!(record.encode(), data, "a decoded record is canonical");
    let _ = record.statement().validate(&params());
    let _ = banmesh_keys::verify_record(&record);
    let _ = fixture().trust.check_record(&record, &params());
});
