//! Series computed at scrape time from what `banmesh status` already
//! gathers: peers by state, records by kind, refusals and skipped records
//! by reason, sync sessions by outcome, enforcement backends, GC, the
//! certificate's expiry and the health `status --check` reports; and from
//! the enforcement target, what the never-ban list keeps out. A fresh
//! registry per scrape, so a reason or set that is gone leaves no stale
//! series.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::control::views::{CheckLevel, PeerState, StatusView};
use crate::enforce::{Target, Why};

type Labels = [(&'static str, String); 1];

fn gauge_of(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

fn counter_of(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

/// Registers `name` as a gauge family with one series per `(label, value)`.
fn gauges<'a>(
    r: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let family = Family::<Labels, Gauge>::default();
    for (value, n) in values {
        family
            .get_or_create(&[(label, value.to_owned())])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    r.register(name, help, family);
}

/// As [`gauges`], for counters.
fn counters<'a>(
    r: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let family = Family::<Labels, Counter>::default();
    for (value, n) in values {
        family.get_or_create(&[(label, value.to_owned())]).inc_by(n);
    }
    r.register(name, help, family);
}

/// The scrape-time series for `status`, under `banmesh_`.
pub fn snapshot(status: &StatusView) -> Registry {
    let mut registry = Registry::with_prefix("banmesh");
    let r = &mut registry;
    let states =
        [PeerState::Connected, PeerState::Pending, PeerState::Disconnected, PeerState::Blocked];
    let by_state =
        states.map(|s| (s.as_str(), status.peers.iter().filter(|p| p.state == s).count() as u64));
    gauges(r, "peers", "Peers the node knows, by state (connected means ready)", "state", by_state);
    let kinds = status.record_counts.iter().map(|(k, n)| (k.as_str(), *n));
    gauges(r, "records", "Stored records, by kind", "kind", kinds);
    let refused = status.rejects.iter().map(|(k, n)| (k.as_str(), *n));
    counters(r, "refused", "Messages, hellos and requests refused, by reason", "reason", refused);
    let skipped = status.skipped.iter().map(|(k, n)| (k.as_str(), *n));
    counters(
        r,
        "records_skipped",
        "Records left out of sound batches, by reason",
        "reason",
        skipped,
    );
    sync(r, status);
    r.register(
        "unreachable_peers",
        "Peers the node had and lost",
        gauge_of(status.unreachable.len() as u64),
    );
    r.register("warnings", "Warnings banmesh status shows", gauge_of(status.warnings.len() as u64));
    let health = status.checks.iter().map(|c| match c.level {
        CheckLevel::Warning => 1,
        CheckLevel::Critical => 2,
    });
    r.register(
        "health",
        "What banmesh status --check says: 0 ok, 1 warning, 2 critical",
        gauge_of(health.max().unwrap_or(0)),
    );
    if let Some(ms) = status.certificate_expires_at_ms {
        r.register(
            "certificate_expiry_timestamp_seconds",
            "When this node's certificate expires, Unix seconds",
            gauge_of(ms / 1000),
        );
    }
    gc(r, status);
    backends(r, status);
    registry
}

/// Sync sessions by outcome: a peer opening sessions in a loop shows as
/// `refused` rising.
fn sync(r: &mut Registry, status: &StatusView) {
    let sync = &status.sync;
    let outcomes = [
        ("initiated", sync.initiated),
        ("answered", sync.answered),
        ("streamed", sync.streamed),
        ("refused", sync.refused),
        ("skipped", sync.skipped),
    ];
    counters(
        r,
        "sync_sessions",
        "Sync sessions since start: opened here, answered, streamed, peers' refused (one with that peer running, or at the cap), not opened here",
        "outcome",
        outcomes,
    );
    r.register("sync_running", "Sync sessions running now", gauge_of(sync.running.len() as u64));
}

fn gc(r: &mut Registry, status: &StatusView) {
    r.register(
        "gc_collected",
        "Records GC deleted since the node started",
        counter_of(status.gc.total_collected),
    );
    r.register(
        "gc_last_collected",
        "Records the last GC run deleted",
        gauge_of(status.gc.last_collected),
    );
    if let Some(ms) = status.gc.last_run_ms {
        r.register(
            "gc_last_run_timestamp_seconds",
            "When GC last ran, Unix seconds",
            gauge_of(ms / 1000),
        );
    }
}

fn backends(r: &mut Registry, status: &StatusView) {
    if let Some(f2b) = &status.fail2ban {
        r.register("fail2ban_applied", "Mesh bans applied into Fail2Ban", counter_of(f2b.applied));
        r.register(
            "fail2ban_published",
            "Fail2Ban bans published to the mesh",
            counter_of(f2b.published),
        );
    }
    if let Some(nft) = &status.nftables {
        let sets = || nft.sets.iter();
        gauges(
            r,
            "nftables_elements",
            "Elements in each nftables set",
            "set",
            sets().map(|s| (s.name.as_str(), s.elements)),
        );
        counters(
            r,
            "nftables_packets",
            "Packets each nftables set's rule dropped",
            "set",
            sets().map(|s| (s.name.as_str(), s.packets)),
        );
        counters(
            r,
            "nftables_bytes",
            "Bytes each nftables set's rule dropped",
            "set",
            sets().map(|s| (s.name.as_str(), s.bytes)),
        );
        r.register(
            "nftables_failing",
            "1 while the last nftables reconcile failed",
            gauge_of(u64::from(nft.last_error.is_some())),
        );
    }
}

/// The never-ban list's size and the banned keys it keeps from enforcement
/// now (an enrolled node banning its peers' addresses shows here), under
/// `banmesh_`.
pub fn never_ban(target: &Target) -> Registry {
    let mut registry = Registry::with_prefix("banmesh");
    let blocked = target.left_out.values().filter(|why| matches!(why, Why::NeverBan(_))).count();
    registry.register(
        "never_ban_entries",
        "Entries in the never-ban list: configured, loopback, this host's and its peers' addresses",
        gauge_of(target.never_ban.len() as u64),
    );
    registry.register(
        "never_ban_blocked",
        "Banned keys not enforced because a never-ban entry covers them (never-ban wins)",
        gauge_of(blocked as u64),
    );
    registry
}
