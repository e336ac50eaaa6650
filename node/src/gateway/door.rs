//! Who may hold the gateway's connections. One source address holds at
//! most `per_source` at once (proxies in `trusted_proxies` excepted: every
//! client behind them shares their address); a connection over that is
//! closed as soon as it is accepted. When all of the listener's places are
//! taken, a newcomer takes the place of the oldest connection that has not
//! yet carried a request with a valid token ([`Slot::trust`]): clients that
//! authenticate keep their connections, and a host that only opens
//! connections cannot hold the door (issue 16).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

/// Most connections one source address may hold, unless configured.
pub const DEFAULT_PER_SOURCE: usize = 64;

/// The connections open, by source, in the order they were accepted.
#[derive(Debug)]
pub struct Door {
    state: Mutex<State>,
    per_source: usize,
    exempt: Vec<IpNet>,
}

#[derive(Debug, Default)]
struct State {
    per_source: HashMap<IpAddr, usize>,
    /// Open connections by accept order (oldest first).
    open: BTreeMap<u64, Arc<Slot>>,
    next: u64,
}

/// One open connection's standing.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    source: IpAddr,
    trusted: AtomicBool,
    evicted: CancellationToken,
}

impl Slot {
    /// A request on this connection carried a valid token: it is never
    /// closed to make room.
    pub fn trust(&self) {
        self.trusted.store(true, Ordering::Relaxed);
    }

    /// Whether a request on it carried a valid token.
    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::Relaxed)
    }

    /// Cancelled when the connection must close to make room.
    pub fn evicted(&self) -> &CancellationToken {
        &self.evicted
    }
}

/// A connection's place at the door, given back on drop.
#[derive(Debug)]
pub struct Ticket {
    door: Arc<Door>,
    slot: Arc<Slot>,
}

impl Ticket {
    /// The connection's standing.
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.door.lock();
        state.open.remove(&self.slot.id);
        if let Some(count) = state.per_source.get_mut(&self.slot.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.per_source.remove(&self.slot.source);
            }
        }
    }
}

impl Door {
    /// A door letting `per_source` connections in from each address but
    /// those in `exempt`.
    pub fn new(per_source: usize, exempt: Vec<IpNet>) -> Arc<Door> {
        Arc::new(Door { state: Mutex::default(), per_source: per_source.max(1), exempt })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a connection from `source`, or `None` when that source
    /// already holds its share.
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Option<Ticket> {
        let source = source.to_canonical();
        let exempt = self.exempt.iter().any(|net| net.contains(&source));
        let mut state = self.lock();
        let count = state.per_source.entry(source).or_default();
        if *count >= self.per_source && !exempt {
            return None;
        }
        *count += 1;
        let id = state.next;
        state.next += 1;
        let slot = Arc::new(Slot {
            id,
            source,
            trusted: AtomicBool::new(false),
            evicted: CancellationToken::new(),
        });
        state.open.insert(id, slot.clone());
        drop(state);
        Some(Ticket { door: self.clone(), slot })
    }

    /// Asks the oldest connection that is neither trusted nor already asked
    /// to close; false when there is none.
    pub fn evict_oldest_untrusted(&self) -> bool {
        let state = self.lock();
        let victim = state.open.values().find(|s| !s.is_trusted() && !s.evicted.is_cancelled());
        match victim {
            Some(slot) => {
                slot.evicted.cancel();
                true
            }
            None => false,
        }
    }

    /// Connections open from `source`.
    pub fn held_by(&self, source: IpAddr) -> usize {
        self.lock().per_source.get(&source.to_canonical()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use axum::extract::ConnectInfo;
    use axum::http::HeaderMap;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpSocket, TcpStream};

    use super::super::listener::{GatewayListener, Peer};
    use super::*;

    /// Serves `/` on a listener holding at most `max` connections and
    /// `per_source` from one address, with a 60 s head deadline; a request
    /// with an `x-token` header makes its connection trusted, as a valid
    /// token does in the gateway.
    async fn server(max: usize, per_source: usize) -> SocketAddr {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let minute = Duration::from_secs(60);
        let listener = GatewayListener::with_timeouts(inner, minute, minute)
            .with_max(max)
            .with_door(Door::new(per_source, Vec::new()));
        let router = axum::Router::new().route(
            "/",
            axum::routing::get(
                |ConnectInfo(peer): ConnectInfo<Peer>, headers: HeaderMap| async move {
                    if headers.contains_key("x-token") {
                        peer.slot.trust();
                    }
                    "ok"
                },
            ),
        );
        let service = router.into_make_service_with_connect_info::<Peer>();
        tokio::spawn(async move { axum::serve(listener, service).await });
        addr
    }

    async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(addr).await.unwrap()
    }

    /// Sends a whole request (with `token`, a trusting header) on `stream`
    /// and returns what comes back before the first answer ends or the
    /// connection closes, waiting at most 20 s (a third of the deadline).
    async fn ask(stream: &mut TcpStream, token: bool) -> String {
        let extra = if token { "x-token: 1\r\n" } else { "" };
        let request = format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        let _ = stream.write_all(request.as_bytes()).await;
        let mut got = Vec::new();
        let mut chunk = [0; 512];
        let read = async {
            while !got.ends_with(b"\r\n\r\nok") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read).await.expect("no answer within 20 s");
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn a_full_house_of_silent_connections_makes_room_for_a_client_with_a_token() {
        let max = 8;
        let addr = server(max, max).await;
        // A trusted client's kept-alive connection, then silent ones from
        // another host filling every other place.
        let mut trusted = connect_from("127.0.0.1", addr).await;
        assert!(ask(&mut trusted, true).await.starts_with("HTTP/1.1 200"));
        let mut silent = Vec::new();
        for _ in 1..max {
            let mut stream = connect_from("127.0.0.2", addr).await;
            stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            silent.push(stream);
        }
        // Every place is taken and no head deadline will free one for a
        // minute: the newcomer gets in by closing the oldest silent one.
        for round in 0..3 {
            let mut client = connect_from("127.0.0.1", addr).await;
            let answer = ask(&mut client, true).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "round {round}: {answer:?}");
        }
        // The trusted connection was never the one closed.
        assert!(ask(&mut trusted, true).await.starts_with("HTTP/1.1 200"));
        let mut closed = 0;
        for stream in &mut silent {
            let mut byte = [0; 1];
            let read = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte)).await;
            if matches!(read, Ok(Ok(0) | Err(_))) {
                closed += 1;
            }
        }
        assert!(closed >= 1, "no silent connection was closed");
    }

    #[tokio::test]
    async fn one_source_is_closed_beyond_its_share_while_others_get_in() {
        let addr = server(512, 4).await;
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut stream = connect_from("127.0.0.2", addr).await;
            stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            held.push(stream);
        }
        let mut fifth = connect_from("127.0.0.2", addr).await;
        assert_eq!(ask(&mut fifth, true).await, "", "the fifth got an answer");
        let mut other = connect_from("127.0.0.1", addr).await;
        assert!(ask(&mut other, false).await.starts_with("HTTP/1.1 200"));
        // A place given back is free again.
        drop(held.pop());
        let mut again = connect_from("127.0.0.2", addr).await;
        let mut answer = String::new();
        for _ in 0..200 {
            answer = ask(&mut again, false).await;
            if !answer.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            again = connect_from("127.0.0.2", addr).await;
        }
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_source_gets_its_share_and_gets_it_back() {
        let door = Door::new(2, vec!["10.9.0.0/16".parse().unwrap()]);
        let a = door.admit(ip("127.0.0.2")).unwrap();
        let _b = door.admit(ip("::ffff:127.0.0.2")).unwrap();
        assert!(door.admit(ip("127.0.0.2")).is_none(), "a mapped address is the same source");
        assert!(door.admit(ip("127.0.0.1")).is_some(), "another source is let in");
        let proxied: Vec<_> = (0..5).map(|_| door.admit(ip("10.9.0.1"))).collect();
        assert!(proxied.iter().all(Option::is_some), "trusted proxies are exempt");
        drop(a);
        assert_eq!(door.held_by(ip("127.0.0.2")), 1);
        assert!(door.admit(ip("127.0.0.2")).is_some());
    }

    #[test]
    fn the_oldest_untrusted_connection_makes_room_and_trusted_ones_never() {
        let door = Door::new(10, Vec::new());
        let first = door.admit(ip("127.0.0.1")).unwrap();
        let second = door.admit(ip("127.0.0.2")).unwrap();
        let third = door.admit(ip("127.0.0.2")).unwrap();
        first.slot().trust();
        assert!(door.evict_oldest_untrusted());
        assert!(!first.slot().evicted().is_cancelled());
        assert!(second.slot().evicted().is_cancelled());
        assert!(door.evict_oldest_untrusted());
        assert!(third.slot().evicted().is_cancelled());
        assert!(!door.evict_oldest_untrusted(), "only a trusted connection is left");
    }
}
