//! The control socket end to end: a real unix socket in a temporary
//! directory served by `control::serve` over a `NodeHandle` whose requests a
//! test handler answers and made-up reads, spoken to by `control::call`, by
//! raw bytes, and by the real `banmesh` binary.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use banmesh_node::api::{self, NodeError, Reads, RecordFilter, Request, Written};
use banmesh_node::control::protocol::{MAX_RESPONSE_FRAME, read_frame};
use banmesh_node::control::{
    self, Command, ControlError, PeerView, RecordView, Response, StatusView, TraceView, bind, call,
    serve,
};
use libp2p::PeerId;
use tokio::io::AsyncWriteExt as _;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const RECORDS: usize = 100_000;

/// A control socket served in a temporary directory.
struct Served {
    _dir: tempfile::TempDir,
    path: PathBuf,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
}

impl Served {
    async fn start() -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run/banmesh.sock");
        let listener = bind(&path).await.expect("bind");
        let (node, requests) = api::channel(8);
        tokio::spawn(handler(requests));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, node, MadeUp, shutdown.clone()));
        Served { _dir: dir, path, shutdown, server }
    }

    async fn stop(self) -> PathBuf {
        self.shutdown.cancel();
        self.server.await.expect("serve ends");
        self.path
    }
}

/// Answers as a node would, from made-up state; other requests are
/// dropped, which the caller hears as the node shutting down.
async fn handler(mut requests: mpsc::Receiver<Request>) {
    while let Some(request) = requests.recv().await {
        match request {
            Request::Write { order, reply } if order.kind == banmesh_crdt::Kind::Ban => {
                let record = RecordView { key: order.key.to_string(), ..record(0) };
                let _ = reply.send(Ok(Written { record, notes: Vec::new() }));
            }
            _ => {}
        }
    }
}

/// Reads from made-up state: a status, and [`RECORDS`] records in pages.
#[derive(Clone)]
struct MadeUp;

impl Reads for MadeUp {
    type Cursor = usize;

    async fn status(&self) -> Result<StatusView, NodeError> {
        Ok(StatusView {
            peer_id: "12D3KooWtest".to_owned(),
            name: Some("web1".to_owned()),
            enforce: true,
            warnings: vec!["clock is fine".to_owned()],
            ..StatusView::default()
        })
    }

    async fn peers(&self) -> Vec<PeerView> {
        Vec::new()
    }

    async fn records_page(
        &self,
        _: &RecordFilter,
        after: Option<usize>,
    ) -> Result<(Vec<RecordView>, Option<usize>), NodeError> {
        let start = after.unwrap_or(0);
        let end = RECORDS.min(start + 7_000);
        Ok(((start..end).map(record).collect(), (end < RECORDS).then_some(end)))
    }

    async fn trace(&self, _: IpAddr) -> Result<TraceView, NodeError> {
        Err(NodeError::ShuttingDown)
    }

    async fn sync(&self, _: Option<PeerId>) -> Result<Vec<PeerId>, NodeError> {
        Err(NodeError::ShuttingDown)
    }
}

fn record(n: usize) -> RecordView {
    RecordView {
        key: format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255),
        kind: "ban".to_owned(),
        origin_name: Some("web1".to_owned()),
        origin_key: "ab".repeat(32),
        issued_at_ms: 1_764_075_909_000,
        issued_at: "1764075909000.0".to_owned(),
        expires_at_ms: Some(4_102_444_799_000),
        strikes: 1,
        jail: "sshd".to_owned(),
        reason: String::new(),
        source: "cli".to_owned(),
        id: format!("{n:064x}"),
        valid: true,
        arrived_at_ms: None,
        arrived_from: None,
    }
}

/// Sends raw bytes and returns the one response frame.
async fn raw(path: &Path, bytes: &[u8]) -> Response {
    let mut stream = UnixStream::connect(path).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let body = read_frame(&mut stream, MAX_RESPONSE_FRAME).await.expect("a reply");
    let frame: serde_json::Value = serde_json::from_slice(&body).expect("json");
    serde_json::from_value(frame["response"].clone()).expect("a response")
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

#[tokio::test]
async fn control_serves_status_records_and_ban_on_a_root_only_socket() {
    let served = Served::start().await;
    let mode = std::fs::metadata(&served.path).expect("socket").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    let dir = served.path.parent().expect("parent");
    let dir_mode = std::fs::metadata(dir).expect("dir").permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o755, "directory mode {dir_mode:o}");

    let status = call(&served.path, Command::Status).await.expect("status");
    assert!(matches!(&status, Response::Status(s) if s.name.as_deref() == Some("web1")));

    let records = Command::Records { ip: None, origin: None, kind: None };
    let Response::Records(records) = call(&served.path, records).await.expect("records") else {
        panic!("not records");
    };
    assert_eq!(records.len(), RECORDS);
    assert!(records.iter().enumerate().all(|(n, r)| *r == record(n)));

    let ban = Command::Ban {
        key: "10.0.0.9/24".to_owned(),
        duration_ms: None,
        permanent: false,
        jail: None,
        reason: None,
    };
    match call(&served.path, ban).await.expect("ban") {
        Response::Written { record, notes } => {
            assert_eq!(record.key, "10.0.0.0/24");
            assert_eq!(notes, ["10.0.0.9/24 has host bits set; using 10.0.0.0/24"]);
        }
        other => panic!("{other:?}"),
    }
    served.stop().await;
}

#[tokio::test]
async fn control_second_bind_refused_while_first_serves() {
    let served = Served::start().await;
    let error = bind(&served.path).await.expect_err("second bind refused");
    assert!(matches!(error, ControlError::AlreadyListening(_)), "{error}");
    assert!(error.to_string().contains("another banmesh node is already listening on"), "{error}");
    assert!(call(&served.path, Command::Status).await.is_ok(), "first still serves");
    served.stop().await;
}

#[tokio::test]
async fn control_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("banmesh.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("first bind"));
    assert!(path.exists(), "a dropped listener leaves its file");
    let listener = bind(&path).await.expect("stale socket replaced");
    drop(listener);

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "keep me").expect("write");
    let error = bind(&file).await.expect_err("a regular file is kept");
    assert!(matches!(error, ControlError::NotASocket(_)), "{error}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep me");
}

#[tokio::test]
async fn control_long_socket_path_refused_naming_the_limit() {
    let path = PathBuf::from(format!("/tmp/{}", "s".repeat(103)));
    assert_eq!(path.as_os_str().len(), 108);
    let error = bind(&path).await.expect_err("too long");
    assert!(error.to_string().contains("107"), "{error}");
    let just_fits = PathBuf::from(format!("/tmp/{}", "s".repeat(102)));
    assert!(!matches!(bind(&just_fits).await, Err(ControlError::PathTooLong { .. })));
    let _ = std::fs::remove_file(just_fits);
}

#[tokio::test]
async fn control_garbage_gets_an_error_and_serving_goes_on() {
    let served = Served::start().await;
    let cases: [(&str, Vec<u8>); 3] = [
        ("exceeds", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("malformed", framed(b"\x00\xffnot json")),
        ("version 9", framed(br#"{"version":9,"command":{"cmd":"status"}}"#)),
    ];
    for (expected, bytes) in cases {
        match raw(&served.path, &bytes).await {
            Response::Error { message } => assert!(message.contains(expected), "{message}"),
            other => panic!("{other:?}"),
        }
    }
    let mut silent = UnixStream::connect(&served.path).await.expect("connect");
    silent.write_all(&[0, 0]).await.expect("half a prefix");
    drop(silent);
    let status = call(&served.path, Command::Status).await.expect("still serving");
    assert!(matches!(status, Response::Status(_)));
    served.stop().await;
}

#[tokio::test]
async fn control_shutdown_removes_the_socket_file() {
    let served = Served::start().await;
    assert!(served.path.exists());
    let path = served.stop().await;
    assert!(!path.exists(), "socket file removed on shutdown");
    let error = call(&path, Command::Status).await.expect_err("nothing listens");
    assert!(matches!(error, control::ClientError::NotListening(_)), "{error}");
}

fn banmesh(args: Vec<String>) -> std::process::Output {
    assert_cmd::Command::cargo_bin("banmesh").expect("binary").args(args).output().expect("run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_cli_status_json_and_ban() {
    let served = Served::start().await;
    let socket = served.path.to_string_lossy().into_owned();
    let args =
        vec!["status".to_owned(), "--json".to_owned(), "--socket".to_owned(), socket.clone()];
    let output = tokio::task::spawn_blocking(move || banmesh(args)).await.expect("join");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let status: StatusView = serde_json::from_slice(&output.stdout).expect("status json");
    assert_eq!(status.peer_id, "12D3KooWtest");

    let args = ["ban", "10.0.0.9/24", "--for", "2h", "--socket", &socket].map(str::to_owned);
    let output = tokio::task::spawn_blocking(move || banmesh(args.to_vec())).await.expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        stdout.contains("stored ban on 10.0.0.0/24 until 2099-12-31T23:59:59Z (in "),
        "{stdout}"
    );
    assert!(stdout.contains("note: 10.0.0.9/24 has host bits set"), "{stdout}");

    let args = ["unban", "10.0.0.9", "--socket", &socket].map(str::to_owned);
    let output = tokio::task::spawn_blocking(move || banmesh(args.to_vec())).await.expect("join");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("Error: the node is shutting down"), "{stderr}");
    served.stop().await;
}

#[test]
fn control_cli_says_when_nothing_listens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("none.sock").to_string_lossy().into_owned();
    let output = banmesh(vec!["peers".to_owned(), "--socket".to_owned(), socket.clone()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "Error: no banmesh node is listening on {socket}: start one with `banmesh node`, or pass --socket"
    );
    assert_eq!(stderr.trim_end(), expected);
}
