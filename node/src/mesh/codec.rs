//! A request-response codec wrapper that counts requests the node could not
//! read (undecodable, or over the frame limit): libp2p drops those with only
//! a debug log, and `banmesh status` must show them.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use libp2p::futures::prelude::*;
use libp2p::request_response::Codec;

use super::swarm::MeshStats;
use crate::metrics::{Direction, Metrics};

/// `inner`, counting failed request reads under `reason`.
#[derive(Clone)]
pub struct Counted<C> {
    inner: C,
    reason: &'static str,
    /// The inner codec's request size limit.
    limit: u64,
    stats: Arc<Mutex<MeshStats>>,
    /// Where bytes read and written are counted (the sync protocol's).
    bytes: Option<Metrics>,
}

impl<C> Counted<C> {
    /// Wraps `inner`, whose requests are at most `limit` bytes; failed
    /// request reads are counted as `reason` in `stats`.
    pub fn new(
        inner: C,
        reason: &'static str,
        limit: u64,
        stats: Arc<Mutex<MeshStats>>,
    ) -> Counted<C> {
        Counted { inner, reason, limit, stats, bytes: None }
    }

    /// Also counts the bytes of every request and response as sync bytes.
    pub fn counting_sync_bytes(mut self) -> Counted<C> {
        self.bytes =
            Some(self.stats.lock().unwrap_or_else(PoisonError::into_inner).metrics.clone());
        self
    }
}

/// Counts `n` bytes going `direction`, when counting.
fn tally(bytes: Option<&Metrics>, direction: Direction, n: u64) {
    if let Some(metrics) = bytes {
        metrics.sync_bytes(direction, usize::try_from(n).unwrap_or(usize::MAX));
    }
}

impl<C: Codec + Send> Codec for Counted<C> {
    type Protocol = C::Protocol;
    type Request = C::Request;
    type Response = C::Response;

    fn read_request<T>(
        &mut self,
        protocol: &Self::Protocol,
        io: &mut T,
    ) -> impl Future<Output = io::Result<Self::Request>> + Send
    where
        T: AsyncRead + Unpin + Send,
    {
        let (reason, limit, stats) = (self.reason, self.limit, self.stats.clone());
        let bytes = self.bytes.clone();
        let inner = &mut self.inner;
        let protocol = protocol.clone();
        async move {
            let mut tally = Tally { inner: io, read: 0 };
            let request = inner.read_request(&protocol, &mut tally).await;
            self::tally(bytes.as_ref(), Direction::In, tally.read);
            if let Err(error) = &request {
                let reason = if cut_short(error, tally.read < limit) {
                    tracing::debug!(%error, "request cut short");
                    CUT_SHORT
                } else {
                    tracing::warn!(%error, reason, "unreadable request");
                    reason
                };
                let mut stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
                *stats.refused.entry(reason.to_owned()).or_default() += 1;
            }
            request
        }
    }

    fn read_response<T>(
        &mut self,
        protocol: &Self::Protocol,
        io: &mut T,
    ) -> impl Future<Output = io::Result<Self::Response>> + Send
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = self.bytes.clone();
        let inner = &mut self.inner;
        let protocol = protocol.clone();
        async move {
            let mut counted = Tally { inner: io, read: 0 };
            let response = inner.read_response(&protocol, &mut counted).await;
            tally(bytes.as_ref(), Direction::In, counted.read);
            response
        }
    }

    fn write_request<T>(
        &mut self,
        protocol: &Self::Protocol,
        io: &mut T,
        request: Self::Request,
    ) -> impl Future<Output = io::Result<()>> + Send
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = self.bytes.clone();
        let inner = &mut self.inner;
        let protocol = protocol.clone();
        async move {
            let mut counted = Tally { inner: io, read: 0 };
            let written = inner.write_request(&protocol, &mut counted, request).await;
            tally(bytes.as_ref(), Direction::Out, counted.read);
            written
        }
    }

    fn write_response<T>(
        &mut self,
        protocol: &Self::Protocol,
        io: &mut T,
        response: Self::Response,
    ) -> impl Future<Output = io::Result<()>> + Send
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = self.bytes.clone();
        let inner = &mut self.inner;
        let protocol = protocol.clone();
        async move {
            let mut counted = Tally { inner: io, read: 0 };
            let written = inner.write_response(&protocol, &mut counted, response).await;
            tally(bytes.as_ref(), Direction::Out, counted.read);
            written
        }
    }
}

/// How a request that ended early is counted: a connection lost mid-request
/// (a partition, a peer stopping) ends it so, and is not a malformed one.
pub const CUT_SHORT: &str = "request cut short (connection lost)";

/// Whether a failed read is a stream that ended early or broke, rather
/// than bytes that do not decode or a request over the limit. A yamux
/// stream whose connection dies reads as a clean end, so the decoder then
/// reports a truncated value: that counts as cut short only when the end
/// came before the limit (`under_limit`).
fn cut_short(error: &io::Error, under_limit: bool) -> bool {
    use io::ErrorKind::{
        BrokenPipe, ConnectionAborted, ConnectionReset, NotConnected, TimedOut, UnexpectedEof,
        WriteZero,
    };
    match error.kind() {
        UnexpectedEof => under_limit,
        ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | TimedOut | WriteZero => {
            true
        }
        _ => false,
    }
}

/// Whether an inbound request failed because its bytes are not a request
/// (garbage, an unknown variant): what no honest peer sends, unlike a
/// stream cut short, a timeout or a frame over the limit (read as cut).
pub fn undecodable(failure: &libp2p::request_response::InboundFailure) -> bool {
    use io::ErrorKind::{InvalidData, Other, Unsupported};
    match failure {
        libp2p::request_response::InboundFailure::Io(error) => {
            matches!(error.kind(), InvalidData | Other | Unsupported)
        }
        _ => false,
    }
}

/// A reader or writer that counts the bytes through it (`read` counts
/// written bytes too).
struct Tally<'a, T> {
    inner: &'a mut T,
    read: u64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tally<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut *this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            this.read += u64::try_from(*n).unwrap_or(u64::MAX);
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tally<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut *this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            this.read += u64::try_from(*n).unwrap_or(u64::MAX);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use libp2p::StreamProtocol;
    use libp2p::request_response::{Codec, InboundFailure, cbor};

    use super::*;
    use crate::mesh::sync::{SYNC_PROTOCOL, SyncRequest, SyncResponse};

    /// What the sync codec makes of `bytes` as a request, as the swarm sees it.
    async fn failure(bytes: &[u8]) -> InboundFailure {
        let mut codec =
            cbor::codec::Codec::<SyncRequest, SyncResponse>::default().set_request_size_maximum(64);
        let mut io = libp2p::futures::io::Cursor::new(bytes.to_vec());
        let protocol = StreamProtocol::new(SYNC_PROTOCOL);
        let error = codec.read_request(&protocol, &mut io).await.expect_err("no request");
        InboundFailure::Io(error)
    }

    #[tokio::test]
    async fn bytes_that_are_no_sync_request_are_undecodable_a_cut_stream_is_not() {
        // Garbage, and well-formed CBOR of the wrong shape (a text string).
        for garbage in [&[0xffu8, 0x00, 0x13, 0x37][..], &[0x63, b'a', b'b', b'c'][..]] {
            let failure = failure(garbage).await;
            assert!(undecodable(&failure), "{garbage:?} read as {failure}");
        }
        // A request cut short (a map announcing more than it holds), or
        // over the size limit (read as cut): not a strike.
        let cut = failure(&[0xa1, 0x64, b'O', b'p']).await;
        assert!(!undecodable(&cut), "{cut}");
        let push = SyncRequest::Push { batch: serde_bytes::ByteBuf::from(vec![7; 100]) };
        let mut codec = cbor::codec::Codec::<SyncRequest, SyncResponse>::default();
        let mut written = libp2p::futures::io::Cursor::new(Vec::new());
        let protocol = StreamProtocol::new(SYNC_PROTOCOL);
        codec.write_request(&protocol, &mut written, push).await.expect("encode");
        let over = failure(&written.into_inner()).await;
        assert!(!undecodable(&over), "{over}");
        assert!(!undecodable(&InboundFailure::Timeout));
    }
}
