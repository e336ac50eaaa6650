//! The sync responder in-process: a peer's sequence of requests (decoded
//! from CBOR frames, or built with real negentropy messages and batches of
//! signed records) answered against a real store holding a few records.
//! Nothing panics; every answer encodes within the frame limit.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use banmesh_fuzz::{ArbStatement, fixture, params, signed_batch};
use banmesh_node::mesh::sync::fuzz::{context, respond_all};
use banmesh_node::mesh::sync::{MAX_FRAME, SyncRequest};
use banmesh_node::store::Store;
use libfuzzer_sys::fuzz_target;
use libp2p::PeerId;
use serde_bytes::ByteBuf;

#[derive(Debug, Arbitrary)]
enum Req {
    Open {
        horizon_ms: u64,
        msg: Vec<u8>,
        records: bool,
    },
    /// An Open with a real initiator message over these items.
    OpenReal {
        items: Vec<(u64, [u8; 32])>,
        records: bool,
    },
    Round {
        session: u8,
        msg: Vec<u8>,
    },
    Pull {
        session: u8,
        ids: Vec<[u8; 32]>,
        short: Vec<u8>,
    },
    Push {
        records: Vec<ArbStatement>,
        certs: u8,
        raw: Option<Vec<u8>>,
    },
    Stream {
        horizon_ms: u64,
        after: Option<(u64, Vec<u8>)>,
    },
    Close {
        session: u8,
    },
}

impl Req {
    fn request(&self) -> SyncRequest {
        match self {
            Req::Open { horizon_ms, msg, records } => SyncRequest::Open {
                horizon_ms: *horizon_ms,
                msg: ByteBuf::from(msg.clone()),
                records: *records,
            },
            Req::OpenReal { items, records } => SyncRequest::Open {
                horizon_ms: banmesh_fuzz::NOW_MS,
                msg: ByteBuf::from(initial(items)),
                records: *records,
            },
            Req::Round { session, msg } => {
                SyncRequest::Round { session: u64::from(*session), msg: ByteBuf::from(msg.clone()) }
            }
            Req::Pull { session, ids, short } => {
                let mut ids: Vec<ByteBuf> = ids.iter().map(|i| ByteBuf::from(i.to_vec())).collect();
                ids.push(ByteBuf::from(short.clone()));
                SyncRequest::Pull { session: u64::from(*session), ids }
            }
            Req::Push { records, certs, raw } => {
                let batch = match raw {
                    Some(raw) => raw.clone(),
                    None => signed_batch(records, 32, *certs, false).encode(),
                };
                SyncRequest::Push { batch: ByteBuf::from(batch) }
            }
            Req::Stream { horizon_ms, after } => SyncRequest::Stream {
                horizon_ms: *horizon_ms,
                after: after.as_ref().map(|(at, id)| (*at, ByteBuf::from(id.clone()))),
            },
            Req::Close { session } => SyncRequest::Close { session: u64::from(*session) },
        }
    }
}

/// A real initiator's first message over `items` (empty when they do not
/// make a set).
fn initial(items: &[(u64, [u8; 32])]) -> Vec<u8> {
    use negentropy::{Id, Negentropy, NegentropyStorageVector};
    let mut storage = NegentropyStorageVector::with_capacity(items.len());
    for (at, id) in items.iter().take(256) {
        if storage.insert(*at, Id::from_byte_array(*id)).is_err() {
            return Vec::new();
        }
    }
    if storage.seal().is_err() {
        return Vec::new();
    }
    Negentropy::owned(storage, 400 * 1024).and_then(|mut n| n.initiate()).unwrap_or_default()
}

struct World {
    runtime: tokio::runtime::Runtime,
    store: Store,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let store = runtime.block_on(async {
            let (store, writer) =
                Store::open(dir.path(), params(), banmesh_fuzz::NOW_MS).await.expect("store");
            std::mem::forget(writer);
            store
        });
        World { runtime, store, _dir: dir }
    })
}

fuzz_target!(|reqs: Vec<Req>| {
    let w = world();
    let peer = PeerId::random();
    let (ctx, _swarm) = context(w.store.clone(), fixture().trust.clone(), params());
    let requests = reqs.iter().take(16).map(Req::request).collect();
    let answers = w.runtime.block_on(respond_all(&ctx, peer, requests));
    for answer in answers {
        let mut bytes = Vec::new();
        let mut writer = futures::io::Cursor::new(&mut bytes);
        let mut codec = libp2p::request_response::cbor::codec::Codec::<
            SyncRequest,
            banmesh_node::mesh::sync::SyncResponse,
        >::default();
        let protocol = libp2p::StreamProtocol::new(banmesh_node::mesh::sync::SYNC_PROTOCOL);
        use libp2p::request_response::Codec as _;
        futures::executor::block_on(codec.write_response(&protocol, &mut writer, answer))
            .expect("an answer encodes");
        assert!(bytes.len() as u64 <= MAX_FRAME, "an answer of {} bytes", bytes.len());
    }
});
