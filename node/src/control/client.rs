//! The client side of the control socket, used by the debugging commands:
//! one connection per call, one request, one reassembled response.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::time::timeout;

use super::protocol::{
    Command, Frame, MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME, ProtocolError, Response, encode_request,
    read_frame, read_response, write_frame,
};
use super::views::RecordView;

/// Where the node listens unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/banmesh/banmesh.sock";
/// How long [`call`] waits for the whole answer (a sync may take a while).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a call to the node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket path.
    #[error("no banmesh node is listening on {0}: start one with `banmesh node`, or pass --socket")]
    NotListening(PathBuf),
    /// The socket is root-only.
    #[error("permission denied on {0}: the control socket is root-only (0600); run this as root")]
    PermissionDenied(PathBuf),
    /// Connecting failed for another reason.
    #[error("cannot connect to the control socket {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The node did not answer in time.
    #[error("the node on {path} did not answer within {}s", after.as_secs())]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// How long the client waited.
        after: Duration,
    },
    /// The records could not be handed on (e.g. the output closed).
    #[error("cannot write the records: {0}")]
    Output(std::io::Error),
    /// The exchange broke.
    #[error("talking to the node on {path}: {source}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: ProtocolError,
    },
}

/// Sends `command` to the node on `path` and returns its answer, waiting at
/// most [`CALL_TIMEOUT`]. A [`Response::Error`] is returned as a response.
pub async fn call(path: &Path, command: Command) -> Result<Response, ClientError> {
    call_within(path, command, CALL_TIMEOUT).await
}

/// [`call`] with an explicit time limit.
pub async fn call_within(
    path: &Path,
    command: Command,
    limit: Duration,
) -> Result<Response, ClientError> {
    let exchange = async {
        let mut stream = connect(path).await?;
        let protocol = |source| ClientError::Protocol { path: path.to_owned(), source };
        let body = encode_request(command).map_err(protocol)?;
        write_frame(&mut stream, &body, MAX_REQUEST_FRAME).await.map_err(protocol)?;
        read_response(&mut stream).await.map_err(protocol)
    };
    timeout(limit, exchange)
        .await
        .map_err(|_| ClientError::Timeout { path: path.to_owned(), after: limit })?
}

/// Sends a records command and hands the records to `each` as their frames
/// arrive, so the client holds one frame of them (about a MiB) however many
/// the node has, where [`call`] would gather them all. Each frame must come
/// within `idle`. Returns the node's final response: `Records` (holding what
/// the reply frame carried, already given to `each`) or an `Error`.
pub async fn call_records(
    path: &Path,
    command: Command,
    idle: Duration,
    mut each: impl FnMut(Vec<RecordView>) -> std::io::Result<()>,
) -> Result<Response, ClientError> {
    let protocol = |source| ClientError::Protocol { path: path.to_owned(), source };
    let timed_out = || ClientError::Timeout { path: path.to_owned(), after: idle };
    let mut stream = timeout(idle, connect(path)).await.map_err(|_| timed_out())??;
    let body = encode_request(command).map_err(protocol)?;
    timeout(idle, write_frame(&mut stream, &body, MAX_REQUEST_FRAME))
        .await
        .map_err(|_| timed_out())?
        .map_err(protocol)?;
    loop {
        let body = timeout(idle, read_frame(&mut stream, MAX_RESPONSE_FRAME))
            .await
            .map_err(|_| timed_out())?
            .map_err(protocol)?;
        let frame: Frame =
            serde_json::from_slice(&body).map_err(|e| protocol(ProtocolError::from(e)))?;
        match frame {
            Frame::Chunk { records } => each(records).map_err(ClientError::Output)?,
            Frame::Reply { response } => {
                if let Response::Records(rest) = *response {
                    each(rest).map_err(ClientError::Output)?;
                    return Ok(Response::Records(Vec::new()));
                }
                return Ok(*response);
            }
        }
    }
}

async fn connect(path: &Path) -> Result<UnixStream, ClientError> {
    UnixStream::connect(path).await.map_err(|source| match source.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
            ClientError::NotListening(path.to_owned())
        }
        ErrorKind::PermissionDenied => ClientError::PermissionDenied(path.to_owned()),
        _ => ClientError::Connect { path: path.to_owned(), source },
    })
}
