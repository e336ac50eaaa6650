//! The gateway's TCP listener: at most [`MAX_CONNECTIONS`] open at once,
//! and at most the [`Door`]'s share from one source address (the next from
//! it is closed on accept). When every place is taken, the oldest
//! connection that never carried a valid token is closed to make room, and
//! when all carried one the newcomer waits; a connection that neither sends nor
//! takes a byte for [`IDLE_TIMEOUT`] is closed, and so is one that takes
//! longer than [`HEAD_TIMEOUT`] to send a request head, so slow or silent
//! clients cannot hold the node's file descriptors. axum serves what it
//! accepts (axum's `serve` gives hyper no timer, so hyper's own header
//! timeout does not run). With TLS ([`Tls`]) the same holds: the door and
//! the limit count TCP connections, and the handshake runs within the head
//! deadline (it is read through the same wrapper).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::door::{DEFAULT_PER_SOURCE, Door, Slot, Ticket};
use super::tls::{Conn, Tls};

/// Most connections open at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Longest a connection may pass without moving a byte.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a request head may take, from the connection's accept or from
/// the first byte of a later request to the blank line that ends it.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`TcpListener`] with a connection limit and timeouts.
#[derive(Debug)]
pub struct GatewayListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    door: Arc<Door>,
    idle_timeout: Duration,
    head_timeout: Duration,
    tls: Option<Tls>,
}

impl GatewayListener {
    /// Wraps a bound listener, letting connections in through `door`.
    pub fn new(inner: TcpListener, door: Arc<Door>) -> GatewayListener {
        GatewayListener::with_timeouts(inner, IDLE_TIMEOUT, HEAD_TIMEOUT).with_door(door)
    }

    /// Wraps a bound listener, closing connections idle for `idle_timeout`
    /// or taking longer than `head_timeout` to send a request head.
    pub fn with_timeouts(
        inner: TcpListener,
        idle_timeout: Duration,
        head_timeout: Duration,
    ) -> GatewayListener {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let door = Door::new(DEFAULT_PER_SOURCE, Vec::new());
        GatewayListener { inner, permits, door, idle_timeout, head_timeout, tls: None }
    }

    /// The same serving TLS (HTTPS) when `tls` is given.
    pub fn with_tls(self, tls: Option<Tls>) -> GatewayListener {
        GatewayListener { tls, ..self }
    }

    /// The same with connections let in through `door`.
    pub fn with_door(self, door: Arc<Door>) -> GatewayListener {
        GatewayListener { door, ..self }
    }

    /// The same with at most `max` connections open (tests).
    pub fn with_max(self, max: usize) -> GatewayListener {
        GatewayListener { permits: Arc::new(Semaphore::new(max)), ..self }
    }

    /// A place under the limit for a connection already let in: free, or
    /// made by closing the oldest untrusted connection, or waited for.
    async fn place(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(permit);
        }
        if self.door.evict_oldest_untrusted() {
            tracing::debug!("gateway: at the connection limit; closing the oldest untrusted one");
        }
        // The semaphore is never closed, so this never fails.
        self.permits.clone().acquire_owned().await.ok()
    }
}

impl Listener for GatewayListener {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "gateway: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(ticket) = self.door.admit(addr.ip()) else {
                tracing::debug!(source = %addr.ip(), "gateway: source holds its share of connections; closed");
                continue;
            };
            let Some(permit) = self.place().await else { continue };
            let _ = stream.set_nodelay(true);
            let stream = match &self.tls {
                Some(tls) => tls.wrap(stream),
                None => Conn::Plain(stream),
            };
            let timeout = self.idle_timeout;
            let idle = Box::pin(tokio::time::sleep(timeout));
            let head = Head::new(self.head_timeout);
            let evicted = Box::pin(ticket.slot().evicted().clone().cancelled_owned());
            let guarded = Guarded { stream, idle, timeout, head, evicted, ticket, _permit: permit };
            return (guarded, addr);
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// The client's socket address and its connection's standing, for
/// `ConnectInfo`.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The socket address.
    pub addr: SocketAddr,
    /// The connection's standing at the door.
    pub slot: Arc<Slot>,
}

impl Connected<IncomingStream<'_, GatewayListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, GatewayListener>) -> Peer {
        Peer { addr: *stream.remote_addr(), slot: stream.io().ticket.slot().clone() }
    }
}

/// An accepted connection: its stream, its idle timer, its request-head
/// deadline, its place at the door and under the limit (released on drop),
/// and the signal that it must close to make room.
#[derive(Debug)]
pub struct Guarded {
    stream: Conn,
    idle: Pin<Box<Sleep>>,
    timeout: Duration,
    head: Head,
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
    ticket: Ticket,
    _permit: OwnedSemaphorePermit,
}

/// Where a connection stands between request heads. The wrapper does not
/// parse HTTP: a head ends at its first empty line (`\n\n` or `\r\n\r\n`),
/// and the next one begins with the first byte read after the server has
/// written. The body is the handlers' to time (`body::BODY_TIMEOUT`).
#[derive(Debug)]
struct Head {
    /// The deadline, while a head is awaited.
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    state: HeadState,
    /// Line feeds seen in a row (carriage returns between them ignored).
    newlines: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadState {
    /// A head is arriving and `deadline` runs.
    Awaited,
    /// The head arrived; the request is being handled.
    Handling,
    /// The response is written; the idle timer alone runs until a byte of
    /// the next request arrives.
    Between,
}

impl Head {
    fn new(timeout: Duration) -> Head {
        let deadline = Box::pin(tokio::time::sleep(timeout));
        Head { deadline, timeout, state: HeadState::Awaited, newlines: 0 }
    }

    /// Follows the bytes a read returned.
    fn read(&mut self, mut data: &[u8]) {
        if self.state == HeadState::Between {
            // Empty lines before a request (RFC 9112 2.2) do not start it.
            let Some(start) = data.iter().position(|b| !matches!(b, b'\r' | b'\n')) else {
                return;
            };
            data = data.get(start..).unwrap_or_default();
            self.state = HeadState::Awaited;
            self.newlines = 0;
            self.deadline.as_mut().reset(Instant::now() + self.timeout);
        }
        if self.state != HeadState::Awaited {
            return;
        }
        for byte in data {
            match byte {
                b'\n' => self.newlines += 1,
                b'\r' => {}
                _ => self.newlines = 0,
            }
            if self.newlines >= 2 {
                self.state = HeadState::Handling;
                return;
            }
        }
    }

    /// The server wrote, which it does only once it holds a whole head (a
    /// response, or `100 Continue`): what is read next starts a new head.
    fn wrote(&mut self) {
        self.state = HeadState::Between;
    }

    /// An error once the deadline has passed with the head incomplete.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.state != HeadState::Awaited {
            return Poll::Pending;
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "request head too slow"))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Guarded {
    fn moved(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.timeout);
    }

    /// An error once the idle timer or the head deadline has run out, or
    /// the connection must make room.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if let Poll::Ready(error) = self.head.check(cx) {
            return Poll::Ready(error);
        }
        if self.evicted.as_mut().poll(cx).is_ready() {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for clients with a token",
            ));
        }
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
        // A head dripped a byte at a time never leaves the read pending, so
        // the deadline is checked before every read, not only while waiting.
        if let Poll::Ready(error) = this.head.check(cx) {
            return Poll::Ready(Err(error));
        }
        if this.ticket.slot().evicted().is_cancelled() {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "evicted")));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.moved();
                this.head.read(buf.filled().get(before..).unwrap_or_default());
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
                this.head.wrote();
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
                this.head.wrote();
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
    use tokio::net::TcpStream;

    use super::*;

    /// Serves `ok` on `/` with a 60 s idle timeout and a `head` deadline.
    async fn server(head: Duration) -> SocketAddr {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let listener = GatewayListener::with_timeouts(inner, Duration::from_secs(60), head);
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    /// Reads one `ok` response.
    async fn answer(client: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let mut chunk = [0; 512];
        while !got.ends_with(b"\r\n\r\nok") {
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    #[tokio::test]
    async fn a_dripped_head_is_cut_off_at_the_deadline_while_others_are_answered() {
        let head = Duration::from_millis(400);
        // The dripper gives up after this (the idle timeout is 60 s): a cut
        // before it is the deadline's, however slow a loaded machine is.
        let give_up = Duration::from_secs(20);
        let addr = server(head).await;
        // Before the connection: the deadline cannot start earlier.
        let started = Instant::now();
        let mut dripper = TcpStream::connect(addr).await.unwrap();
        let drip = tokio::spawn(async move {
            dripper.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
            // Each byte comes well within the idle timeout; the head never ends.
            while dripper.write_all(b"X").await.is_ok() {
                if started.elapsed() > give_up {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some(started.elapsed())
        });

        let mut client = TcpStream::connect(addr).await.unwrap();
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        client.write_all(request).await.unwrap();
        assert!(answer(&mut client).await.starts_with("HTTP/1.1 200"));
        // A kept-alive connection may wait longer than the head deadline
        // between requests (the idle timeout covers that wait).
        tokio::time::sleep(head * 2).await;
        client.write_all(request).await.unwrap();
        assert!(answer(&mut client).await.starts_with("HTTP/1.1 200"));

        let cut_after = drip.await.unwrap().expect("the dripped head was never cut off");
        assert!(cut_after >= head, "{cut_after:?}");
    }

    #[tokio::test]
    async fn heads_end_at_a_blank_line_and_the_next_starts_after_a_write() {
        let mut head = Head::new(Duration::from_secs(10));
        head.read(b"GET / HTTP/1.1\r\nHost: x\r");
        assert_eq!(head.state, HeadState::Awaited);
        head.read(b"\n\r\n{\"ips\": []}");
        assert_eq!(head.state, HeadState::Handling);
        head.read(b"\n\n");
        assert_eq!(head.state, HeadState::Handling, "the body is not scanned");
        head.wrote();
        head.read(b"\r\n");
        assert_eq!(head.state, HeadState::Between, "a stray CRLF starts nothing");
        head.read(b"GET / HTTP/1.1\n");
        assert_eq!(head.state, HeadState::Awaited);
        head.read(b"\n");
        assert_eq!(head.state, HeadState::Handling, "bare line feeds end a head too");
    }

    #[tokio::test]
    async fn a_silent_connection_gets_the_head_deadline() {
        let head = Duration::from_millis(300);
        let addr = server(head).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let mut byte = [0; 1];
        // Any bound well under the 60 s idle timeout tells the deadline's cut.
        let read = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        assert!(started.elapsed() >= head);
    }

    #[tokio::test]
    async fn silent_connections_time_out_and_free_their_place() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let timeout = Duration::from_millis(200);
        let mut listener = GatewayListener::with_timeouts(inner, timeout, Duration::from_secs(60));
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut conn, _) = listener.accept().await;
        assert_eq!(listener.permits.available_permits(), MAX_CONNECTIONS - 1);
        // Before the read that restarts the idle timer, so the timer cannot
        // have started before it.
        let started = Instant::now();
        client.write_all(b"x").await.unwrap();
        let mut byte = [0; 1];
        assert_eq!(conn.read(&mut byte).await.unwrap(), 1);
        let error = conn.read(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= timeout);
        drop(conn);
        assert_eq!(listener.permits.available_permits(), MAX_CONNECTIONS);
    }
}
