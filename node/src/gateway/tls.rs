//! TLS on the gateway's listener (rustls with the ring provider): the
//! certificate chain and key of `[gateway] tls_cert` / `tls_key`, read when
//! the configuration is validated (a broken pair is a configuration error)
//! and swapped in on SIGHUP ([`Tls::replace`]; a broken new pair fails the
//! reload and the old one stays). Each connection's handshake runs in its
//! own task inside [`Conn`], under the listener's request-head deadline;
//! a client speaking plain HTTP to the TLS port gets a 400 saying to use
//! https, and the connection ends.

use std::future::Future as _;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll, ready};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::{Accept, TlsAcceptor, server::TlsStream};

/// The first byte of every TLS connection (a handshake record).
const HANDSHAKE_RECORD: u8 = 0x16;

/// What a plain HTTP client on the TLS port is told before the close.
const PLAIN_REFUSAL: &str =
    r#"{"error": "this port speaks https: send the request again with https://"}"#;

/// The whole answer of [`PLAIN_REFUSAL`].
fn plain_refusal() -> String {
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{PLAIN_REFUSAL}",
        PLAIN_REFUSAL.len()
    )
}

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read or is not PEM.
    #[error(
        "gateway.tls_cert {}: {error}; give a PEM file holding the certificate chain, the server's certificate first",
        .path.display()
    )]
    Cert {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
    /// The key file cannot be read or holds no private key.
    #[error(
        "gateway.tls_key {}: {error}; give a PEM file holding the private key (PKCS#8, PKCS#1 or SEC1)",
        .path.display()
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
    /// The key is not one rustls can sign with, or not the certificate's.
    #[error(
        "gateway.tls_key {} does not serve gateway.tls_cert {}: {error}",
        .key.display(), .cert.display()
    )]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        error: String,
    },
}

/// A certificate chain and its key, read from `[gateway] tls_cert` and
/// `tls_key`.
#[derive(Clone)]
pub struct TlsPair {
    /// The certificate chain's file.
    pub cert: PathBuf,
    /// The key's file.
    pub key: PathBuf,
    /// The chain and signing key as rustls serves them.
    pub certified: Arc<CertifiedKey>,
}

impl std::fmt::Debug for TlsPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsPair({:?}, {:?}, <key>)", self.cert, self.key)
    }
}

impl PartialEq for TlsPair {
    fn eq(&self, other: &TlsPair) -> bool {
        self.cert == other.cert
            && self.key == other.key
            && self.certified.cert == other.certified.cert
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

impl TlsPair {
    /// Reads and checks the pair: the chain parses, the key loads, and the
    /// key is the first certificate's.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsPair, TlsError> {
        let cert_error = |error: String| TlsError::Cert { path: cert.to_owned(), error };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| cert_error(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_error(e.to_string()))?;
        if chain.is_empty() {
            return Err(cert_error("no certificate in it (no BEGIN CERTIFICATE block)".into()));
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
            path: key.to_owned(),
            error: match e {
                rustls_pki_types::pem::Error::NoItemsFound => {
                    "no private key in it (no BEGIN PRIVATE KEY block)".into()
                }
                other => other.to_string(),
            },
        })?;
        let certified = CertifiedKey::from_der(chain, private, &provider()).map_err(|e| {
            TlsError::Pair { cert: cert.to_owned(), key: key.to_owned(), error: e.to_string() }
        })?;
        Ok(TlsPair { cert: cert.to_owned(), key: key.to_owned(), certified: Arc::new(certified) })
    }
}

/// The pair in force, handed to every handshake.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// The gateway's TLS: the acceptor and the pair in force.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Serves `pair` (HTTP/1.1 over TLS 1.2 or 1.3).
    pub fn new(pair: &TlsPair) -> Result<Tls, rustls::Error> {
        let current = Arc::new(Current(RwLock::new(pair.certified.clone())));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)), current })
    }

    /// New handshakes use `pair`; connections open keep theirs.
    pub fn replace(&self, pair: &TlsPair) {
        *self.current.0.write().unwrap_or_else(PoisonError::into_inner) = pair.certified.clone();
    }

    /// An accepted connection, to be opened by its first read.
    pub fn wrap(&self, stream: TcpStream) -> Conn {
        Conn::Sniffing(Some(stream), self.acceptor.clone())
    }
}

/// An accepted connection: plain, or TLS once its first read has looked at
/// the first byte and run the handshake.
pub enum Conn {
    /// Plain HTTP (no TLS configured).
    Plain(TcpStream),
    /// TLS configured; nothing read yet.
    Sniffing(Option<TcpStream>, TlsAcceptor),
    /// The handshake is under way.
    Handshaking(Box<Accept<TcpStream>>),
    /// The handshake is done.
    Tls(Box<TlsStream<TcpStream>>),
    /// Closed before a handshake (end of stream, or plain HTTP refused).
    Ended,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Plain(_) => "Conn::Plain",
            Conn::Sniffing(..) => "Conn::Sniffing",
            Conn::Handshaking(_) => "Conn::Handshaking",
            Conn::Tls(_) => "Conn::Tls",
            Conn::Ended => "Conn::Ended",
        })
    }
}

/// The refusal, sent to a plain HTTP client after reading what it sent
/// (unread bytes would turn the close into a reset that loses the answer).
fn refuse_plain(stream: &TcpStream) {
    let mut sink = [0; 4096];
    for _ in 0..16 {
        match stream.try_read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = stream.try_write(plain_refusal().as_bytes());
}

fn ended() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection ended before a tls handshake")
}

impl Conn {
    /// Drives the connection to plain or TLS. `Ok(false)`: it ended.
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        loop {
            match self {
                Conn::Plain(_) | Conn::Tls(_) => return Poll::Ready(Ok(true)),
                Conn::Ended => return Poll::Ready(Ok(false)),
                Conn::Sniffing(stream, acceptor) => {
                    let Some(tcp) = stream.as_ref() else { return Poll::Ready(Err(ended())) };
                    let mut first = [0; 1];
                    let mut buf = ReadBuf::new(&mut first);
                    ready!(tcp.poll_peek(cx, &mut buf))?;
                    let Some(tcp) = stream.take() else { return Poll::Ready(Err(ended())) };
                    match buf.filled().first() {
                        None => *self = Conn::Ended,
                        Some(&HANDSHAKE_RECORD) => {
                            *self = Conn::Handshaking(Box::new(acceptor.accept(tcp)));
                        }
                        Some(_) => {
                            tracing::debug!("gateway: plain http on the tls port refused");
                            refuse_plain(&tcp);
                            *self = Conn::Ended;
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "plain http on the tls port",
                            )));
                        }
                    }
                }
                Conn::Handshaking(accept) => {
                    let opened = ready!(Pin::new(&mut **accept).poll(cx));
                    match opened {
                        Ok(tls) => *self = Conn::Tls(Box::new(tls)),
                        Err(error) => {
                            tracing::debug!(%error, "gateway: tls handshake failed");
                            *self = Conn::Ended;
                            return Poll::Ready(Err(error));
                        }
                    }
                }
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !ready!(this.poll_open(cx))? {
            return Poll::Ready(Ok(()));
        }
        match this {
            Conn::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Conn::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
            _ => Poll::Ready(Err(ended())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !ready!(this.poll_open(cx))? {
            return Poll::Ready(Err(ended()));
        }
        match this {
            Conn::Plain(tcp) => Pin::new(tcp).poll_write(cx, data),
            Conn::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, data),
            _ => Poll::Ready(Err(ended())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !ready!(this.poll_open(cx))? {
            return Poll::Ready(Err(ended()));
        }
        match this {
            Conn::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Conn::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
            _ => Poll::Ready(Err(ended())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(tcp) => tcp.is_write_vectored(),
            Conn::Tls(tls) => tls.is_write_vectored(),
            _ => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Conn::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Conn::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;
    use tokio::time::Instant;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};

    use super::*;
    use crate::gateway::door::Door;
    use crate::gateway::listener::GatewayListener;

    /// A self-signed pair for 127.0.0.1 in `dir`, loaded.
    fn pair(dir: &Path) -> TlsPair {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
        TlsPair::load(&cert, &key).unwrap()
    }

    /// Serves `ok` over TLS with a `head` deadline and `per_source` places
    /// per address.
    async fn server(pair: &TlsPair, head: Duration, per_source: usize) -> SocketAddr {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let listener = GatewayListener::with_timeouts(inner, Duration::from_secs(60), head)
            .with_door(Door::new(per_source, Vec::new()))
            .with_tls(Some(Tls::new(pair).unwrap()));
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    fn connector(pair: &TlsPair) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(pair.certified.cert[0].clone()).unwrap();
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    #[tokio::test]
    async fn a_stalled_handshake_is_cut_at_the_head_deadline_and_the_door_counts_tls() {
        let dir = tempfile::tempdir().unwrap();
        let pair = pair(dir.path());
        let head = Duration::from_millis(300);
        let addr = server(&pair, head, 2).await;

        // A handshake record begun and never finished.
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        stalled.write_all(&[HANDSHAKE_RECORD, 3, 1]).await.unwrap();
        let mut byte = [0; 1];
        // Any bound well under the 60 s idle timeout tells the deadline's cut.
        let read = tokio::time::timeout(Duration::from_secs(20), stalled.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        assert!(started.elapsed() >= head);

        // Two TLS connections held open fill this source's share: a third
        // is closed on accept, before any handshake.
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut held = Vec::new();
        for _ in 0..2 {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut tls = connector(&pair).connect(name.clone(), tcp).await.unwrap();
            tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            let mut got = [0; 512];
            let n = tls.read(&mut got).await.unwrap();
            assert!(got[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &got[..n]);
            held.push(tls);
        }
        let tcp = TcpStream::connect(addr).await.unwrap();
        let third = tokio::time::timeout(
            Duration::from_secs(20),
            connector(&pair).connect(name.clone(), tcp),
        )
        .await
        .expect("the third connection was neither served nor closed");
        assert!(third.is_err(), "a third connection from one source got in");
    }

    #[test]
    fn the_plain_refusal_is_one_whole_json_answer() {
        let answer = plain_refusal();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("https"));
    }

    #[test]
    fn pairs_that_do_not_serve_are_refused_with_the_setting_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = pair(dir.path());
        let other = tempfile::tempdir().unwrap();
        let stranger = pair(other.path());
        let mismatch = TlsPair::load(&good.cert, &stranger.key).unwrap_err();
        assert!(matches!(mismatch, TlsError::Pair { .. }), "{mismatch}");
        let none = TlsPair::load(&good.key, &good.key).unwrap_err();
        assert!(none.to_string().contains("gateway.tls_cert"), "{none}");
        let no_key = TlsPair::load(&good.cert, &good.cert).unwrap_err();
        assert!(no_key.to_string().contains("no private key"), "{no_key}");
    }
}
