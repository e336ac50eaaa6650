//! Frames on the control socket: reading and writing one length-prefixed
//! frame, a request's and a response's encoding (records in chunks), and
//! the client's reassembly of a chunked response ([`Assembler`]).

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::{
    CHUNK_TARGET, Command, Frame, MAX_RESPONSE_FRAME, PROTOCOL_VERSION, Request, Response,
};
use crate::control::views::RecordView;

/// Why a frame could not be read, written or understood.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The peer closed the connection before sending a frame.
    #[error("the connection closed before a frame arrived")]
    Closed,
    /// The connection closed in the middle of a frame.
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    /// The announced length exceeds the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced or encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Reading or writing the socket failed.
    #[error("control socket i/o failed: {0}")]
    Io(#[from] std::io::Error),
    /// The frame is not the JSON expected.
    #[error("malformed frame: {0}")]
    Json(#[from] serde_json::Error),
    /// The request speaks another protocol version.
    #[error(
        "protocol version {got} is not supported: this node speaks version {want}; \
         use a banmesh binary of the same release as the node"
    )]
    Version {
        /// The version in the request.
        got: u32,
        /// [`PROTOCOL_VERSION`].
        want: u32,
    },
    /// Chunks were followed by a reply that is not `records`.
    #[error("record chunks were followed by a {0} reply")]
    UnexpectedReply(&'static str),
}

/// Reads one frame of at most `max` bytes.
pub async fn read_frame<R>(reader: &mut R, max: usize) -> Result<Vec<u8>, ProtocolError>
where
    R: AsyncRead + Unpin,
{
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    while filled < prefix.len() {
        let n = reader.read(&mut prefix[filled..]).await?;
        if n == 0 {
            return Err(if filled == 0 { ProtocolError::Closed } else { ProtocolError::Truncated });
        }
        filled += n;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(ProtocolError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ProtocolError::Truncated
        } else {
            ProtocolError::Io(e)
        }
    })?;
    Ok(body)
}

/// Writes one frame, refusing a body longer than `max` bytes.
pub async fn write_frame<W>(writer: &mut W, body: &[u8], max: usize) -> Result<(), ProtocolError>
where
    W: AsyncWrite + Unpin,
{
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&len| len as usize <= max)
        .ok_or(ProtocolError::TooLarge { len: body.len(), max })?;
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(body).await?;
    writer.flush().await?;
    Ok(())
}

/// Encodes a request for `command` at [`PROTOCOL_VERSION`].
pub fn encode_request(command: Command) -> Result<Vec<u8>, ProtocolError> {
    let request = Request { version: PROTOCOL_VERSION, command };
    Ok(serde_json::to_vec(&request)?)
}

/// Decodes a request, checking the version before the command so that a
/// client of another version hears about the version, not an unknown command.
pub fn decode_request(body: &[u8]) -> Result<Command, ProtocolError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let VersionOnly { version } = serde_json::from_slice(body)?;
    if version != PROTOCOL_VERSION {
        return Err(ProtocolError::Version { got: version, want: PROTOCOL_VERSION });
    }
    let request: Request = serde_json::from_slice(body)?;
    Ok(request.command)
}

/// Encodes a response as its frames: chunks of about [`CHUNK_TARGET`] bytes
/// for records, then the reply. Fails when one frame would exceed
/// [`MAX_RESPONSE_FRAME`].
pub fn encode_response(response: Response) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut frames = Vec::new();
    let response = match response {
        Response::Records(records) => {
            frames = encode_chunks(&records)?;
            Response::Records(Vec::new())
        }
        other => other,
    };
    let reply = Frame::Reply { response: Box::new(response) };
    frames.push(checked(serde_json::to_vec(&reply)?)?);
    Ok(frames)
}

/// Packs records into `{"frame":"chunk","records":[...]}` frames, serialising
/// each record once and closing a frame when it reaches [`CHUNK_TARGET`].
pub fn encode_chunks(records: &[RecordView]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    const OPEN: &[u8] = br#"{"frame":"chunk","records":["#;
    const CLOSE: &[u8] = b"]}";
    let mut frames = Vec::new();
    let mut current: Vec<u8> = OPEN.to_vec();
    for record in records {
        let bytes = serde_json::to_vec(record)?;
        let full = current.len() > OPEN.len();
        if full && current.len() + 1 + bytes.len() + CLOSE.len() > CHUNK_TARGET {
            current.extend_from_slice(CLOSE);
            frames.push(checked(std::mem::replace(&mut current, OPEN.to_vec()))?);
        }
        if current.len() > OPEN.len() {
            current.push(b',');
        }
        current.extend_from_slice(&bytes);
    }
    if current.len() > OPEN.len() {
        current.extend_from_slice(CLOSE);
        frames.push(checked(current)?);
    }
    Ok(frames)
}

fn checked(frame: Vec<u8>) -> Result<Vec<u8>, ProtocolError> {
    if frame.len() > MAX_RESPONSE_FRAME {
        return Err(ProtocolError::TooLarge { len: frame.len(), max: MAX_RESPONSE_FRAME });
    }
    Ok(frame)
}

/// Reassembles a response from its frames, on the client side.
#[derive(Debug, Default)]
pub struct Assembler {
    records: Vec<RecordView>,
    chunked: bool,
}

impl Assembler {
    /// Takes one frame; returns the whole response once the reply arrived.
    pub fn push(&mut self, body: &[u8]) -> Result<Option<Response>, ProtocolError> {
        match serde_json::from_slice(body)? {
            Frame::Chunk { records } => {
                self.chunked = true;
                self.records.extend(records);
                Ok(None)
            }
            Frame::Reply { response } if !self.chunked => Ok(Some(*response)),
            Frame::Reply { response } => match *response {
                Response::Records(rest) => {
                    let mut records = std::mem::take(&mut self.records);
                    records.extend(rest);
                    Ok(Some(Response::Records(records)))
                }
                error @ Response::Error { .. } => Ok(Some(error)),
                other => Err(ProtocolError::UnexpectedReply(other.name())),
            },
        }
    }
}

/// Reads frames until the reply and returns the assembled response.
pub async fn read_response<R>(reader: &mut R) -> Result<Response, ProtocolError>
where
    R: AsyncRead + Unpin,
{
    let mut assembler = Assembler::default();
    loop {
        let body = read_frame(reader, MAX_RESPONSE_FRAME).await?;
        if let Some(response) = assembler.push(&body)? {
            return Ok(response);
        }
    }
}
