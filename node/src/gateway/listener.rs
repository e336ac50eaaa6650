//! The gateway's TCP listener: at most [`MAX_CONNECTIONS`] open at once
//! (the next waits to be accepted), and a connection that neither sends nor
//! takes a byte for [`IDLE_TIMEOUT`] is closed, so slow or silent clients
//! cannot hold the node's file descriptors. axum serves what it accepts.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Most connections open at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Longest a connection may pass without moving a byte.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A [`TcpListener`] with a connection limit and idle timeouts.
#[derive(Debug)]
pub struct GatewayListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
}

impl GatewayListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener) -> GatewayListener {
        GatewayListener::with_idle_timeout(inner, IDLE_TIMEOUT)
    }

    /// Wraps a bound listener, closing connections idle for `idle_timeout`.
    pub fn with_idle_timeout(inner: TcpListener, idle_timeout: Duration) -> GatewayListener {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        GatewayListener { inner, permits, idle_timeout }
    }
}

impl Listener for GatewayListener {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        loop {
            // The semaphore is never closed, so this never fails.
            let Ok(permit) = self.permits.clone().acquire_owned().await else { continue };
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let timeout = self.idle_timeout;
                    let idle = Box::pin(tokio::time::sleep(timeout));
                    return (Guarded { stream, idle, timeout, _permit: permit }, addr);
                }
                Err(error) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "gateway: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// The client's socket address, for `ConnectInfo`.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, GatewayListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, GatewayListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// An accepted connection: its stream, its idle timer, and its place
/// under the limit (released on drop).
#[derive(Debug)]
pub struct Guarded {
    stream: TcpStream,
    idle: Pin<Box<Sleep>>,
    timeout: Duration,
    _permit: OwnedSemaphorePermit,
}

impl Guarded {
    fn moved(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.timeout);
    }

    /// An error once the idle timer has run out while waiting.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.idle.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "idle")),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.moved();
                Poll::Ready(result)
            }
            Poll::Pending => this.check_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, data) {
            Poll::Ready(result) => {
                this.moved();
                Poll::Ready(result)
            }
            Poll::Pending => this.check_idle(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.moved();
                Poll::Ready(result)
            }
            Poll::Pending => this.check_idle(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn silent_connections_time_out_and_free_their_place() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let timeout = Duration::from_millis(200);
        let mut listener = GatewayListener::with_idle_timeout(inner, timeout);
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut conn, _) = listener.accept().await;
        assert_eq!(listener.permits.available_permits(), MAX_CONNECTIONS - 1);
        client.write_all(b"x").await.unwrap();
        let mut byte = [0; 1];
        assert_eq!(conn.read(&mut byte).await.unwrap(), 1);
        let started = Instant::now();
        let error = conn.read(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= timeout);
        drop(conn);
        assert_eq!(listener.permits.available_permits(), MAX_CONNECTIONS);
    }
}
