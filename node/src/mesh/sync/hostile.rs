//! What a sync peer may make this node do, and what it costs a peer that
//! sends what no honest node sends. The responder's limits: a session that
//! goes quiet for [`SESSION_IDLE`] or runs past [`SESSION_MAX`] is dropped
//! (its slot and its hold on a snapshot of the set freed); each peer may open sessions
//! (reconciliations or streams) at [`OPEN_RATE`] after a burst of
//! [`OPEN_BURST`]; a session answers at most [`MAX_ROUNDS`] rounds and
//! pulls of about the set once. Past those a request is refused and
//! counted. A request no honest peer sends (undecodable, a malformed
//! negentropy message, malformed ids or cursor, a pushed batch that fails
//! its signature), and on the initiator's side an answer no honest peer
//! sends (a malformed negentropy message, a batch that fails), is a strike:
//! the swarm counts strikes with gossip rejects and blocks the peer after a
//! few.
//!
//! Every refusal is counted under its reason in `banmesh status` (`rejects`)
//! and `/metrics` (`banmesh_refused`), and logged.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::Duration;

// Tokio's clock (the machine's, unless a test pauses it: the sync
// simulation moves it between sessions).
use tokio::time::Instant;

use libp2p::PeerId;

use super::{MAX_ROUNDS, SyncContext};
use crate::mesh::swarm::MeshCommand;

/// How long a responder session lives without a request from its peer.
pub const SESSION_IDLE: Duration = Duration::from_secs(30);
/// The longest a responder session lives however busy (a peer that
/// trickles requests to hold a slot); an honest session cut short resumes
/// in the next one, with what it moved already stored.
pub const SESSION_MAX: Duration = Duration::from_secs(15 * 60);
/// How often sessions are checked against those deadlines.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Sessions one peer may open at once before the rate applies (an honest
/// peer opens one per sync interval, and `banmesh sync` a few more).
pub const OPEN_BURST: f64 = 8.0;
/// Sessions per second one peer may open after the burst: one every 5 s.
pub const OPEN_RATE: f64 = 0.2;
/// Refills of a peer's burst on reconnecting it may have in hand, and
/// how often it earns one back (see [`OpenRate::reconnected`]).
pub const RECONNECT_REFILLS: f64 = 3.0;
/// One refill earned back every minute.
pub const RECONNECT_REFILL_RATE: f64 = 1.0 / 60.0;
/// How long a peer's refusals for its rate stay at `debug` after one
/// `warn`.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Counted when a session is dropped for going quiet or running too long.
pub const STALLED: &str = "sync session stalled (dropped)";
/// Counted when a peer opens sessions faster than [`OPEN_RATE`].
pub const OVER_RATE: &str = "sync sessions over their rate";
/// Counted when a push comes with no session of that peer's running.
pub const PUSH_OUTSIDE: &str = "sync push outside a session";
/// Counted when a request names a session this node does not hold.
pub const UNKNOWN_SESSION: &str = "unknown sync session";
/// Counted when a session asks for more rounds or ids than a set needs.
pub const OVER_BUDGET: &str = "sync session over its budget";

/// What no honest peer sends: each is a strike against the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// A negentropy message that does not parse.
    Negentropy,
    /// Item ids that are not 32 bytes, or more than a pull may ask.
    Ids,
    /// A stream cursor that is not (timestamp, 32-byte id).
    Cursor,
    /// A batch (pushed, pulled or streamed) that does not decode or whose
    /// signature fails.
    Batch,
}

impl Strike {
    /// The reason it is counted under.
    pub fn reason(self) -> &'static str {
        match self {
            Strike::Negentropy => "malformed negentropy message",
            Strike::Ids => "malformed sync ids",
            Strike::Cursor => "malformed sync cursor",
            Strike::Batch => "bad batch sent by sync",
        }
    }
}

/// Counts `reason` in `status` (`rejects`).
pub fn count(ctx: &SyncContext, reason: &str) {
    let mut stats = ctx.checker.stats.lock().unwrap_or_else(PoisonError::into_inner);
    *stats.refused.entry(reason.to_owned()).or_default() += 1;
}

/// Logs and hands a strike to the swarm task, which counts it and blocks
/// the peer after a few (as it does for rejected gossip). Never waits: with
/// the swarm's queue full the strike is only counted here.
pub fn strike(ctx: &SyncContext, peer: PeerId, strike: Strike) {
    tracing::warn!(target: "banmesh::events::sync_strike", %peer, reason = strike.reason(), "bad sync request");
    if ctx.swarm_tx.try_send(MeshCommand::Strike(peer, strike.reason())).is_err() {
        count(ctx, strike.reason());
    }
}

/// Per-peer token buckets for session opens.
#[derive(Default)]
pub struct OpenRate {
    buckets: HashMap<PeerId, Bucket>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    warned: Option<Instant>,
    /// Refills on reconnecting left, earned back at
    /// [`RECONNECT_REFILL_RATE`] (as of `at`).
    refills: f64,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket { tokens: OPEN_BURST, at: now, warned: None, refills: RECONNECT_REFILLS }
    }

    /// Brings the bucket to `now`.
    fn advance(&mut self, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + secs * OPEN_RATE).min(OPEN_BURST);
        self.refills = (self.refills + secs * RECONNECT_REFILL_RATE).min(RECONNECT_REFILLS);
        self.at = now;
    }
}

impl OpenRate {
    /// Takes one open from `peer`'s bucket; false (and logged) when empty.
    pub fn take(&mut self, peer: PeerId, now: Instant) -> bool {
        let bucket = self.buckets.entry(peer).or_insert_with(|| Bucket::new(now));
        bucket.advance(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return true;
        }
        if bucket.warned.is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY) {
            bucket.warned = Some(now);
            tracing::warn!(
                target: "banmesh::events::sync_rate_limited", %peer,
                "peer opens sync sessions faster than one every {}s: refused until its rate allows",
                (1.0 / OPEN_RATE) as u64
            );
        } else {
            tracing::debug!(%peer, "sync session over the peer's rate refused");
        }
        false
    }

    /// A fresh connection from `peer` was admitted (its hello accepted)
    /// after it had none: its burst is full again, so a node restarted
    /// twice in a row is not held to one session every 5 s by what its
    /// previous runs used. Bounded for a peer that reconnects in a loop:
    /// each reconnect already costs it a TCP, Noise and yamux handshake and
    /// a signed hello judged here, within the connection limits (`[limits]`:
    /// pending and established connections, per peer and in all); and the
    /// refills themselves are a bucket, [`RECONNECT_REFILLS`] in hand and
    /// one a minute after, so however fast it reconnects it opens at most
    /// `OPEN_BURST` sessions a minute beyond its rate.
    pub fn reconnected(&mut self, peer: PeerId, now: Instant) {
        let Some(bucket) = self.buckets.get_mut(&peer) else {
            return; // its bucket is full: it was forgotten
        };
        bucket.advance(now);
        if bucket.refills >= 1.0 && bucket.tokens < OPEN_BURST {
            bucket.refills -= 1.0;
            bucket.tokens = OPEN_BURST;
        }
    }

    /// Forgets buckets full again (memory stays bounded by active peers).
    pub fn prune(&mut self, now: Instant) {
        self.buckets.retain(|_, b| {
            let mut full = Bucket { warned: None, ..*b };
            full.advance(now);
            full.tokens < OPEN_BURST
                || full.refills < RECONNECT_REFILLS
                || b.warned.is_some_and(|at| now.saturating_duration_since(at) < WARN_EVERY)
        });
    }
}

/// What a responder session has been asked, against what its set justifies.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// When the session began.
    pub began: Instant,
    /// Rounds answered.
    pub rounds: usize,
    /// Ids asked for in pulls.
    pub pulled: usize,
    /// Ids the session's set holds.
    pub size: usize,
}

impl Budget {
    /// A budget for a session over a set of `size` items.
    pub fn new(size: usize) -> Budget {
        Budget { began: Instant::now(), rounds: 0, pulled: 0, size }
    }

    /// Counts a round; false past [`MAX_ROUNDS`].
    pub fn round(&mut self) -> bool {
        self.rounds += 1;
        self.rounds <= MAX_ROUNDS
    }

    /// Counts `ids` pulled; false once pulls ask for more than the set
    /// holds, and a pull's worth more.
    pub fn pull(&mut self, ids: usize) -> bool {
        self.pulled = self.pulled.saturating_add(ids);
        self.pulled <= self.size.saturating_add(super::PULL_IDS)
    }

    /// Whether the session has lived past [`SESSION_MAX`].
    pub fn too_old(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.began) >= SESSION_MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_open_rate_allows_a_burst_then_one_per_interval_per_peer() {
        let mut rate = OpenRate::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        for _ in 0..OPEN_BURST as usize {
            assert!(rate.take(a, t0));
        }
        assert!(!rate.take(a, t0), "over the burst");
        assert!(rate.take(b, t0), "another peer has its own bucket");
        let interval = Duration::from_secs_f64(1.0 / OPEN_RATE);
        assert!(!rate.take(a, t0 + interval / 2));
        assert!(rate.take(a, t0 + interval + interval / 2));
        rate.prune(t0 + interval * 100);
        assert!(rate.buckets.is_empty(), "full buckets are forgotten");
    }

    #[test]
    fn sync_open_rate_refills_on_reconnect_a_few_times_a_minute() {
        let mut rate = OpenRate::default();
        let a = PeerId::random();
        let t0 = Instant::now();
        let drain = |rate: &mut OpenRate, at: Instant| {
            let mut opened = 0;
            while rate.take(a, at) {
                opened += 1;
            }
            opened
        };
        assert_eq!(drain(&mut rate, t0), OPEN_BURST as usize);
        // A restart: the burst is whole again, as many times as refills last.
        for _ in 0..RECONNECT_REFILLS as usize {
            rate.reconnected(a, t0);
            assert_eq!(drain(&mut rate, t0), OPEN_BURST as usize, "refilled on reconnect");
        }
        // Reconnecting in a loop earns nothing more...
        rate.reconnected(a, t0);
        assert_eq!(drain(&mut rate, t0), 0, "refills used up");
        // ...until a refill is earned back, a minute on.
        let later = t0 + Duration::from_secs_f64(1.0 / RECONNECT_REFILL_RATE);
        assert_eq!(drain(&mut rate, later), OPEN_BURST as usize, "refilled by its rate");
        rate.reconnected(a, later);
        assert_eq!(drain(&mut rate, later), OPEN_BURST as usize, "one refill earned back");
        rate.reconnected(a, later);
        assert_eq!(drain(&mut rate, later), 0);
        rate.prune(later + Duration::from_secs(3600));
        assert!(rate.buckets.is_empty(), "full buckets are forgotten");
    }

    #[test]
    fn sync_budget_caps_rounds_and_pulls() {
        let mut budget = Budget::new(10);
        for _ in 0..MAX_ROUNDS {
            assert!(budget.round());
        }
        assert!(!budget.round());
        assert!(budget.pull(10 + super::super::PULL_IDS));
        assert!(!budget.pull(1));
    }
}
