//! Every `/banmesh/sync/1` frame: raw bytes through the same CBOR codec and
//! 512 KiB limit the node uses, as a `SyncRequest` and as a
//! `SyncResponse`; every batch a decoded frame carries is decoded and
//! judged like gossip.
#![no_main]

use banmesh_fuzz::{NOW_MS, fixture, params};
use banmesh_node::mesh::batch::Batch;
use banmesh_node::mesh::sync::{MAX_FRAME, SYNC_PROTOCOL, SyncRequest, SyncResponse};
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use libp2p::StreamProtocol;
use libp2p::request_response::Codec as _;
use libp2p::request_response::cbor::codec::Codec;

fn judge(batch: &[u8]) {
    if let Ok(batch) = Batch::decode(batch) {
        let _ = fixture().trust.judge(batch, NOW_MS, &params());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut codec = Codec::<SyncRequest, SyncResponse>::default()
        .set_request_size_maximum(MAX_FRAME)
        .set_response_size_maximum(MAX_FRAME);
    let protocol = StreamProtocol::new(SYNC_PROTOCOL);
    let request = block_on(codec.read_request(&protocol, &mut futures::io::Cursor::new(data)));
    if let Ok(SyncRequest::Push { batch }) = &request {
        judge(batch);
    }
    let response = block_on(codec.read_response(&protocol, &mut futures::io::Cursor::new(data)));
    if let Ok(SyncResponse::Items { batches } | SyncResponse::Page { batches, .. }) = &response {
        batches.iter().for_each(|b| judge(b));
    }
});
