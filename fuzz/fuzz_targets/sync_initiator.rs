//! An initiator sync session in-process against a hostile peer: a fresh,
//! empty store (so the session first streams the whole set) fed the peer's
//! answers in order: pages and items of signed-record batches or raw
//! bytes, negentropy rounds, refusals. Nothing panics and the session ends.
#![no_main]

use arbitrary::Arbitrary;
use banmesh_fuzz::{ArbStatement, fixture, params, signed_batch};
use banmesh_node::mesh::sync::SyncResponse;
use banmesh_node::mesh::sync::fuzz::{context, initiate_against};
use banmesh_node::store::Store;
use libfuzzer_sys::fuzz_target;
use libp2p::PeerId;
use serde_bytes::ByteBuf;

#[derive(Debug, Arbitrary)]
enum Batches {
    Signed { records: Vec<ArbStatement>, certs: u8 },
    Raw(Vec<Vec<u8>>),
}

impl Batches {
    fn bytes(&self) -> Vec<ByteBuf> {
        match self {
            Batches::Signed { records, certs } => {
                vec![ByteBuf::from(signed_batch(records, 32, *certs, false).encode())]
            }
            Batches::Raw(raw) => raw.iter().take(8).map(|b| ByteBuf::from(b.clone())).collect(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Resp {
    Round { session: u64, msg: Vec<u8> },
    Items(Batches),
    Page { batches: Batches, next: Option<(u64, Vec<u8>)>, total: Option<u64> },
    Done,
    Refused(String),
}

impl Resp {
    fn response(&self) -> SyncResponse {
        match self {
            Resp::Round { session, msg } => {
                SyncResponse::Round { session: *session, msg: ByteBuf::from(msg.clone()) }
            }
            Resp::Items(b) => SyncResponse::Items { batches: b.bytes() },
            Resp::Page { batches, next, total } => SyncResponse::Page {
                batches: batches.bytes(),
                next: next.as_ref().map(|(at, id)| (*at, ByteBuf::from(id.clone()))),
                total: *total,
            },
            Resp::Done => SyncResponse::Done,
            Resp::Refused(reason) => SyncResponse::Refused { reason: reason.clone() },
        }
    }
}

fuzz_target!(|resps: Vec<Resp>| {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    // A fresh store each run, in memory where there is /dev/shm.
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).expect("tempdir");
    let responses: Vec<SyncResponse> = resps.iter().take(16).map(Resp::response).collect();
    runtime.block_on(async {
        let (store, _writer) =
            Store::open(dir.path(), params(), banmesh_fuzz::NOW_MS).await.expect("store");
        let (ctx, mut swarm_rx) = context(store, fixture().trust.clone(), params());
        let _ = initiate_against(&ctx, &mut swarm_rx, PeerId::random(), responses).await;
    });
});
