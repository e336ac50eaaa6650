//! The gossip batch decoder on raw bytes: never panics; what decodes is
//! canonical; judging it against a fixed trust never panics.
#![no_main]

use banmesh_fuzz::{NOW_MS, fixture, params};
use banmesh_node::mesh::batch::Batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = Batch::decode(data) else { return };
    assert_eq!(batch.encode(), data, "a decoded batch is canonical");
    let _ = fixture().trust.judge(batch, NOW_MS, &params());
});
