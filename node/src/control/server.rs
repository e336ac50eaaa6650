//! The node's side of the control socket: binding it safely (length limit,
//! stale socket replaced, a live one refused, mode 0600) and serving it.
//!
//! The few filesystem calls here are quick metadata operations, made
//! directly rather than through a blocking pool.
//!
//! Tasks: [`serve`] is the accept loop; it runs one task per connection in a
//! `JoinSet` (never detached). Each connection reads one request (10 s
//! limit), decodes it and asks the [`NodeHandle`] (writes) or the
//! [`Reads`] (run here, beside the node task) through the
//! [`adapter`](super::adapter), writes the answer as frames and closes;
//! `records` is read and written a page at a time.
//! Shutdown: when the token fires the loop stops accepting, connections still
//! reading a request are dropped, those waiting for the handler or writing
//! get [`SHUTDOWN_GRACE`] to finish and are aborted after it; then the socket
//! file is removed. A client whose uid is neither root nor the socket's
//! owner (read from `SO_PEERCRED`) is refused, closing the moment between
//! `bind` and `chmod`.

use std::fs::Permissions;
use std::io::ErrorKind;
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::api::{NodeHandle, Reads, RecordFilter};

use super::adapter::Answer;
use super::protocol::{
    MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME, ProtocolError, Response, decode_request, encode_chunks,
    encode_response, read_frame, write_frame,
};

/// Longest unix socket path, in bytes (`sun_path` holds 108 with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// How long a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long writing one response frame may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight connections may run on after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the control socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The path does not fit in a unix socket address.
    #[error(
        "control socket path {path} is {len} bytes, over the limit of {max} bytes \
         for unix sockets: choose a shorter --socket path"
    )]
    PathTooLong {
        /// The path given.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// [`MAX_SOCKET_PATH`].
        max: usize,
    },
    /// A live node answers on the path.
    #[error("another banmesh node is already listening on {0}")]
    AlreadyListening(PathBuf),
    /// Something other than a socket is at the path.
    #[error("{0} exists and is not a socket: remove it or choose another --socket path")]
    NotASocket(PathBuf),
    /// Creating the directory, removing a stale socket, binding or setting
    /// the mode failed.
    #[error("cannot {step} control socket {path}: {source}")]
    Io {
        /// The step that failed (`bind`, `create the directory of`, ...).
        step: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Binds the control socket at `path`, mode 0600.
///
/// Creates the parent directory (0755) when missing. A socket file already
/// there is probed: when a node answers, binding is refused; when nothing
/// does, it was left by a crash and is replaced (with a warning).
pub async fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ControlError::PathTooLong { path: path.to_owned(), len, max: MAX_SOCKET_PATH });
    }
    let io = |step| {
        let path = path.to_owned();
        move |source| ControlError::Io { step, path, source }
    };
    // A bare file name (`--socket s.sock`) has the empty path as parent.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .and_then(|()| std::fs::set_permissions(parent, Permissions::from_mode(0o755)))
            .map_err(io("create the directory of"))?;
    }
    remove_stale(path).await?;
    let listener = UnixListener::bind(path).map_err(io("bind"))?;
    std::fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(io("set the mode of"))?;
    Ok(listener)
}

/// Removes a socket file no node answers on; refuses a live one.
async fn remove_stale(path: &Path) -> Result<(), ControlError> {
    let io = |step| {
        let path = path.to_owned();
        move |source| ControlError::Io { step, path, source }
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("inspect")(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotASocket(path.to_owned()));
    }
    match UnixStream::connect(path).await {
        Ok(_) => Err(ControlError::AlreadyListening(path.to_owned())),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            tracing::warn!(
                path = %path.display(),
                "replacing a stale control socket left by a node that did not shut down cleanly"
            );
            std::fs::remove_file(path).map_err(io("remove the stale"))
        }
        Err(e) => Err(io("probe")(e)),
    }
}

/// Serves the control socket until `shutdown` fires, then removes its file.
///
/// Never fails: a bad client is answered with an error frame when possible,
/// logged, and dropped; the others are served on.
pub async fn serve(
    listener: UnixListener,
    node: NodeHandle,
    queries: impl Reads,
    shutdown: CancellationToken,
) {
    let path = listener.local_addr().ok().and_then(|addr| addr.as_pathname().map(Path::to_owned));
    let owner = path.as_deref().and_then(|p| std::fs::metadata(p).ok()).map(|meta| meta.uid());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(joined) = connections.join_next() => log_join(joined),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let parts = (node.clone(), queries.clone());
                    let shutdown = shutdown.clone();
                    connections.spawn(connection(stream, owner, parts, shutdown));
                }
                Err(error) => {
                    tracing::warn!(%error, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let drained = timeout(SHUTDOWN_GRACE, async {
        while let Some(joined) = connections.join_next().await {
            log_join(joined);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "control connections still running after the shutdown grace: aborting them"
        );
        connections.shutdown().await;
    }
    if let Some(path) = path
        && let Err(error) = std::fs::remove_file(&path)
    {
        tracing::warn!(path = %path.display(), %error, "cannot remove the control socket");
    }
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        tracing::error!(%error, "a control connection task panicked");
    }
}

/// Serves one connection: one request, one (possibly chunked) response.
async fn connection<R: Reads>(
    mut stream: UnixStream,
    owner: Option<u32>,
    (node, queries): (NodeHandle, R),
    shutdown: CancellationToken,
) {
    if let Err(refusal) = check_peer(&stream, owner) {
        tracing::warn!(reason = %refusal, "control connection refused");
        send(&mut stream, Response::error(refusal)).await;
        return;
    }
    let read = tokio::select! {
        () = shutdown.cancelled() => return,
        read = timeout(REQUEST_TIMEOUT, read_frame(&mut stream, MAX_REQUEST_FRAME)) => read,
    };
    let command = match read.map(|body| body.and_then(|body| decode_request(&body))) {
        Ok(Ok(command)) => command,
        Ok(Err(ProtocolError::Closed)) => return,
        Ok(Err(error)) => {
            tracing::warn!(%error, "bad control request");
            send(&mut stream, Response::error(format!("bad request: {error}"))).await;
            return;
        }
        Err(_) => {
            tracing::warn!(after = ?REQUEST_TIMEOUT, "control client sent no request in time");
            let message = format!("no request within {}s", REQUEST_TIMEOUT.as_secs());
            send(&mut stream, Response::error(message)).await;
            return;
        }
    };
    tracing::debug!(?command, "control request");
    match super::adapter::answer(&node, &queries, command).await {
        Answer::Whole(response) => send(&mut stream, *response).await,
        Answer::Records(filter) => send_records(&mut stream, &queries, &filter).await,
    }
}

/// Streams the records matching `filter`: each page read from the store is
/// sent as chunk frames before the next is read, then the reply. A failure
/// midway ends the stream with an error reply.
async fn send_records<R: Reads>(stream: &mut UnixStream, queries: &R, filter: &RecordFilter) {
    let mut after = None;
    loop {
        let page = queries.records_page(filter, after).await;
        let (records, next) = match page {
            Ok(page) => page,
            Err(error) => return send(stream, Response::error(error.to_string())).await,
        };
        let frames = match encode_chunks(&records) {
            Ok(frames) => frames,
            Err(error) => {
                tracing::error!(%error, "cannot encode records");
                let message = format!("the node could not encode its answer: {error}");
                return send(stream, Response::error(message)).await;
            }
        };
        if !write_frames(stream, frames).await {
            return;
        }
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    send(stream, Response::Records(Vec::new())).await;
}

/// Only the socket's owner (or root) may talk to the node.
fn check_peer(stream: &UnixStream, owner: Option<u32>) -> Result<(), String> {
    let uid =
        stream.peer_cred().map_err(|e| format!("cannot read the client's credentials: {e}"))?.uid();
    match owner {
        Some(owner) if uid == owner || uid == 0 => Ok(()),
        None if uid == 0 => Ok(()),
        _ => Err(format!("permission denied for uid {uid}: the control socket is for root only")),
    }
}

/// Writes a response as frames; failures are logged, never returned.
async fn send(stream: &mut UnixStream, response: Response) {
    let frames = match encode_response(response) {
        Ok(frames) => frames,
        Err(error) => {
            tracing::error!(%error, "cannot encode a control response");
            let message = format!("the node could not encode its answer: {error}");
            match encode_response(Response::error(message)) {
                Ok(frames) => frames,
                Err(_) => return,
            }
        }
    };
    write_frames(stream, frames).await;
}

/// Writes frames in turn; false when the client went away or stopped
/// reading (logged).
async fn write_frames(stream: &mut UnixStream, frames: Vec<Vec<u8>>) -> bool {
    for frame in frames {
        let written = timeout(WRITE_TIMEOUT, write_frame(stream, &frame, MAX_RESPONSE_FRAME)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "control client went away before the answer");
                return false;
            }
            Err(_) => {
                tracing::warn!("control client stopped reading the answer: dropping it");
                return false;
            }
        }
    }
    true
}
