//! The gateway's request handling in-process: the real axum router (auth,
//! query strings, JSON and gzip bodies, headers) driven with
//! `tower::ServiceExt::oneshot`. Nothing panics and no answer is a 500.
#![no_main]

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use banmesh_node::gateway::fuzz::{TOKEN, router_for, with_peer};
use libfuzzer_sys::fuzz_target;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

const PATHS: [&str; 7] =
    ["/get_ips", "/get_allowed_ips", "/get_known_ips", "/add_ips", "/allow_ip", "/", "/x"];

#[derive(Debug, Arbitrary)]
struct Input {
    post: bool,
    path: u8,
    query: String,
    /// Send the right token (else `auth` as the header, if any).
    authorized: bool,
    auth: Option<String>,
    headers: Vec<(String, String)>,
    gzip: bool,
    content_encoding: Option<String>,
    body: Vec<u8>,
    /// The connection's address: a trusted proxy (10/8) or not.
    peer: ([u8; 4], u16),
}

struct World {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let router = runtime
            .block_on(router_for(dir.path(), banmesh_fuzz::NOW_MS, CancellationToken::new()))
            .expect("router");
        World { runtime, router, _dir: dir }
    })
}

fn request(input: &Input) -> Option<Request<Body>> {
    let path = PATHS[usize::from(input.path) % PATHS.len()];
    let uri =
        if input.query.is_empty() { path.to_owned() } else { format!("{path}?{}", input.query) };
    let mut builder = Request::builder().method(if input.post { "POST" } else { "GET" }).uri(uri);
    if input.authorized {
        builder = builder.header("authorization", format!("Bearer {TOKEN}"));
    } else if let Some(auth) = &input.auth {
        builder = builder.header("authorization", auth.as_str());
    }
    for (name, value) in input.headers.iter().take(8) {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = if input.gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&input.body).ok()?;
        builder = builder.header("content-encoding", "gzip");
        encoder.finish().ok()?
    } else {
        if let Some(encoding) = &input.content_encoding {
            builder = builder.header("content-encoding", encoding.as_str());
        }
        input.body.clone()
    };
    let (ip, port) = input.peer;
    builder.body(Body::from(body)).ok().map(|r| with_peer(r, SocketAddr::from((ip, port))))
}

fuzz_target!(|input: Input| {
    let Some(request) = request(&input) else { return };
    let w = world();
    let response = w.runtime.block_on(w.router.clone().oneshot(request)).expect("infallible");
    assert_ne!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{input:?}");
});
