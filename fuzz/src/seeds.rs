//! The committed seed corpora of the byte-level targets, made from real
//! encodings of the fixture's records, batches, hellos, sync frames and
//! PEM files. Written by `scripts/fuzz.sh seeds` (which runs the `record`
//! target with `BANMESH_FUZZ_SEEDS` set to the seeds directory).

use std::path::Path;

use banmesh_crdt::{Hlc, Key, Kind, Metadata, Origin, Record, Statement};
use banmesh_keys::sign_record;
use banmesh_node::mesh::batch::Batch;
use banmesh_node::mesh::hello::{Constants, HELLO_VERSION, Hello};
use banmesh_node::mesh::sync::{SYNC_PROTOCOL, SyncRequest, SyncResponse};
use futures::executor::block_on;
use libp2p::StreamProtocol;
use libp2p::request_response::Codec as _;
use libp2p::request_response::cbor::codec::Codec;
use serde_bytes::ByteBuf;

use crate::{NOW_MS, fixture, params};

/// A record of `kind` on `key` by fixture node `node`.
fn record(node: usize, kind: Kind, key: &str) -> Record {
    let statement = Statement {
        key: Key::parse(key).expect("a key").key,
        kind,
        issued_at: Hlc::from_millis(NOW_MS),
        expires_at: kind.expires().then_some(NOW_MS + 600_000),
        strikes: u32::from(kind == Kind::Ban),
        meta: Metadata {
            jail: "sshd".into(),
            reason: "5 failures".into(),
            source: "fail2ban".into(),
        },
        origin: Origin::default(),
    };
    sign_record(&fixture().nodes[node], statement)
}

fn records() -> Vec<Record> {
    vec![
        record(0, Kind::Ban, "192.0.2.7"),
        record(1, Kind::Unban, "2001:db8::1"),
        record(0, Kind::Allow, "198.51.100.0/24"),
        record(0, Kind::Disallow, "2001:db8::/48"),
    ]
}

fn cbor_request<Req, Resp>(protocol: &'static str, request: Req) -> Vec<u8>
where
    Req: serde::Serialize + serde::de::DeserializeOwned + Send + std::fmt::Debug + 'static,
    Resp: serde::Serialize + serde::de::DeserializeOwned + Send + std::fmt::Debug + 'static,
{
    let mut out = Vec::new();
    let mut codec = Codec::<Req, Resp>::default();
    block_on(codec.write_request(
        &StreamProtocol::new(protocol),
        &mut futures::io::Cursor::new(&mut out),
        request,
    ))
    .expect("encodes");
    out
}

fn sync_frames() -> Vec<Vec<u8>> {
    let f = fixture();
    let batch = Batch::of_records(vec![f.certs[0].clone()], records()).encode();
    let id = ByteBuf::from(records()[0].id().0.to_vec());
    let requests = [
        SyncRequest::Open { horizon_ms: NOW_MS, msg: ByteBuf::from(vec![0x61]), records: true },
        SyncRequest::Round { session: 1, msg: ByteBuf::from(vec![0x61, 0, 0]) },
        SyncRequest::Pull { session: 1, ids: vec![id.clone()] },
        SyncRequest::Push { batch: ByteBuf::from(batch.clone()) },
        SyncRequest::Stream { horizon_ms: NOW_MS, after: Some((NOW_MS, id.clone())) },
        SyncRequest::Close { session: 1 },
    ];
    let responses = [
        SyncResponse::Round { session: 1, msg: ByteBuf::from(vec![0x61]) },
        SyncResponse::Items { batches: vec![ByteBuf::from(batch.clone())] },
        SyncResponse::Page {
            batches: vec![ByteBuf::from(batch)],
            next: Some((NOW_MS, id)),
            total: Some(1),
        },
        SyncResponse::Done,
        SyncResponse::Refused { reason: "busy".into() },
    ];
    let mut frames: Vec<Vec<u8>> = requests
        .into_iter()
        .map(|r| cbor_request::<SyncRequest, SyncResponse>(SYNC_PROTOCOL, r))
        .collect();
    // A response is written like a request (one CBOR value).
    frames.extend(
        responses.into_iter().map(|r| cbor_request::<SyncResponse, SyncRequest>(SYNC_PROTOCOL, r)),
    );
    frames
}

fn hellos() -> Vec<Vec<u8>> {
    let f = fixture();
    let hello = Hello {
        version: HELLO_VERSION,
        cert: ByteBuf::from(f.certs[0].to_bytes()),
        clock_ms: NOW_MS,
        revocations: vec![ByteBuf::from(f.revocation.to_bytes())],
        addrs: vec![format!(
            "/ip4/192.0.2.1/tcp/4001/p2p/{}",
            banmesh_node::mesh::hello::peer_id_of(&f.nodes[1].public()).expect("a peer id")
        )],
        constants: Some(Constants::from(params())),
        refused: None,
        by: None,
    };
    let refusal = Hello::refusal("not enrolled".into(), Some("alpha".into()), NOW_MS);
    [hello, refusal]
        .into_iter()
        .map(|h| cbor_request::<Hello, Hello>("/banmesh/hello/1", h))
        .collect()
}

/// Writes every seed under `dir/TARGET/`.
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    let f = fixture();
    let recs = records();
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
    seeds.extend(recs.iter().map(|r| ("record", r.encode())));
    seeds.push((
        "batch",
        Batch::of_records(vec![f.certs[0].clone(), f.certs[1].clone()], recs.clone()).encode(),
    ));
    seeds.push(("batch", Batch::of_records(Vec::new(), vec![recs[0].clone()]).encode()));
    seeds.push((
        "batch",
        Batch { certs: Vec::new(), revocations: vec![f.revocation.clone()], records: Vec::new() }
            .encode(),
    ));
    seeds.extend(hellos().into_iter().map(|h| ("hello", h)));
    seeds.extend(sync_frames().into_iter().map(|s| ("sync_frame", s)));
    let pems = [
        f.certs[0].to_pem().expect("pem"),
        f.revocation.to_pem().expect("pem"),
        f.nodes[0].public().to_pem().expect("pem"),
        f.nodes[0].to_pem().expect("pem").to_string(),
    ];
    seeds.extend(pems.into_iter().map(|p| ("pem", p.into_bytes())));
    for (i, (target, bytes)) in seeds.iter().enumerate() {
        std::fs::create_dir_all(dir.join(target))?;
        std::fs::write(dir.join(target).join(format!("seed-{i:02}")), bytes)?;
    }
    Ok(())
}
