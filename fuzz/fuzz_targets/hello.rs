//! The hello as it arrives on `/banmesh/hello/1`: raw bytes through the
//! same CBOR codec and 64 KiB limit the node uses, as a request and as a
//! response; what decodes is judged against a fixed trust, as from the
//! peer whose certificate it carries and from another peer.
#![no_main]

use banmesh_fuzz::{NOW_MS, fixture, params};
use banmesh_node::mesh::hello::{self, Constants, Hello};
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use libp2p::StreamProtocol;
use libp2p::request_response::Codec as _;
use libp2p::request_response::cbor::codec::Codec;

fuzz_target!(|data: &[u8]| {
    let mut codec = Codec::<Hello, Hello>::default()
        .set_request_size_maximum(64 * 1024)
        .set_response_size_maximum(64 * 1024);
    let protocol = StreamProtocol::new("/banmesh/hello/1");
    let request = block_on(codec.read_request(&protocol, &mut futures::io::Cursor::new(data)));
    let response = block_on(codec.read_response(&protocol, &mut futures::io::Cursor::new(data)));
    let own = Constants::from(params());
    let f = fixture();
    for decoded in [request, response].into_iter().flatten() {
        let claimed = banmesh_keys::Certificate::from_bytes(&decoded.cert)
            .ok()
            .and_then(|c| hello::peer_id_of(c.node()));
        let other = hello::peer_id_of(&f.nodes[0].public()).expect("peer id");
        for peer in claimed.iter().chain([&other]) {
            if let Ok(welcome) = hello::judge(&decoded, peer, &f.trust, &own, NOW_MS) {
                let _ = welcome;
            }
        }
        if let Some(reason) = &decoded.refused {
            let _ = hello::heard(reason);
        }
    }
});
