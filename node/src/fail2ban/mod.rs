//! Fail2Ban: the only module that runs commands. The applier task brings
//! the local Fail2Ban in line with the mesh, at start and every `interval`:
//!
//! - mesh bans go into the `banmesh` jail in batches (`set JAIL banip
//!   IP...`) and leave it (`unbanip`) when the mesh no longer holds them;
//!   never what the never-ban list covers (configured networks, this node's
//!   and its peers' addresses, every jail's `ignoreip`) or an allow covers;
//!   a banned network holding such an address goes in split around it
//!   ([`split`]); `apply_jails` chooses which mesh bans apply ([`filter`]);
//!   an entry inside another entry is left out (an nftables set with
//!   `flags interval` refuses overlaps); networks are left out, and said
//!   so, when the jail's action cannot hold them ([`action`]); what the
//!   jail holds after a batch is read back, and only that is counted;
//! - addresses the mesh allows are unbanned in every jail;
//! - with `[safety] enforce = false` (observe only) none of the above
//!   touches Fail2Ban: the mesh jail is kept empty;
//! - bans Fail2Ban made while the node was down are published
//!   ([`reconcile`]), through the node task, which alone signs records.
//!
//! Task: [`Applier::run`], ended by its token. Rounds run every `interval`,
//! when the next ban or allow ends if that is sooner, and soon after a
//! commit changes the index ([`Store::changes`]); at most one a second
//! but for the interval's own. A failing `fail2ban-client` is retried with
//! doubling waits and reported in `banmesh status`; gossip never waits for
//! it.

pub mod action;
pub mod client;
mod filter;
pub mod reconcile;
pub mod split;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use banmesh_crdt::{Key, KeySummary, Origin};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use action::{ActionCheck, Networks};
pub use client::Client;
use filter::JailFilter;
use split::{TooManyPieces, outermost, split_excluding};

use crate::api::NodeHandle;
use crate::clock::now_ms;
use crate::config::Fail2BanConfig;
use crate::mesh::MeshHandle;
use crate::store::{Index, Store};

/// The jail shipped for mesh bans (`jail.d/banmesh.conf`): never published.
pub const MESH_JAIL: &str = "banmesh";
/// The shortest time between two rounds started by changes in the index.
const MIN_GAP: Duration = Duration::from_secs(1);
/// The longest wait between attempts while Fail2Ban keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The most pieces one banned network may be split into.
pub const MAX_PIECES: usize = 256;

/// Fail2Ban's `<bantime>`: seconds, or -1 for a ban without end. Any
/// other negative value is a broken action line or jail setting, refused
/// rather than read as a ban without end.
pub fn check_bantime(bantime_s: i64) -> Result<(), String> {
    if bantime_s < -1 {
        return Err(format!(
            "invalid bantime {bantime_s}: Fail2Ban's <bantime> is a number of seconds, or -1 for a ban without end; check the jail's bantime"
        ));
    }
    Ok(())
}

/// What the applier last did, for `banmesh status`.
#[derive(Debug, Clone, Default)]
pub struct ApplierStatus {
    /// Addresses and networks the jail holds for the mesh, as read back
    /// from Fail2Ban.
    pub applied: usize,
    /// Whether the mesh jail's actions can hold networks.
    pub networks: Option<Networks>,
    /// Banned networks left out because the jail's action cannot hold them.
    pub unheld: Vec<String>,
    /// Entries handed to the jail that Fail2Ban did not take.
    pub not_taken: Vec<String>,
    /// Banned networks left out because splitting them around protected
    /// addresses takes more than [`MAX_PIECES`] pieces.
    pub too_wide: Vec<String>,
    /// Bans Fail2Ban made without the node knowing, published since start.
    pub published: u64,
    /// What went wrong with single jails in the last round (reconcile
    /// refused, an unban failed), while the round itself went on.
    pub problems: Vec<String>,
    /// The last failure, if the last round failed.
    pub last_error: Option<String>,
}

impl ApplierStatus {
    /// What `banmesh status` should warn about.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(error) = &self.last_error {
            out.push(format!("fail2ban: {error}"));
        }
        out.extend(self.problems.iter().map(|p| format!("fail2ban: {p}")));
        if let Some(Networks::NotHeld { action, why }) = &self.networks {
            let left_out = match self.unheld.first() {
                Some(first) => {
                    format!("{} banned network(s) not applied, such as {first}", self.unheld.len())
                }
                None => "banned networks would not be applied".to_owned(),
            };
            out.push(format!(
                "fail2ban: the {MESH_JAIL} jail's action {action} cannot hold networks ({why}): {left_out}; use the shipped jail.d/banmesh.conf with action.d/banmesh-nftables.conf, or an action that takes networks"
            ));
        }
        if let Some(first) = self.not_taken.first() {
            out.push(format!(
                "fail2ban: Fail2Ban did not take {} entr(ies) handed to the {MESH_JAIL} jail, such as {first}: check the jail's settings (bantime = -1 as shipped) and Fail2Ban's log",
                self.not_taken.len()
            ));
        }
        if let Some(first) = self.too_wide.first() {
            out.push(format!(
                "fail2ban: {} banned network(s) not applied, such as {first}: splitting them around allowed or never-ban addresses takes more than {MAX_PIECES} pieces",
                self.too_wide.len()
            ));
        }
        out
    }
}

/// The applier task's parts.
pub struct Applier {
    /// `[fail2ban]`.
    pub config: Fail2BanConfig,
    /// The store, read for the index and for records.
    pub store: Store,
    /// The mesh, for this node's and its peers' addresses.
    pub mesh: MeshHandle,
    /// `[safety] never_ban`.
    pub never_ban: Vec<Key>,
    /// `[safety] enforce`: when false (observe only) the mesh jail is kept
    /// empty and no jail is touched; reconcile still publishes.
    pub enforce: bool,
    /// Shared with the node task for `banmesh status`.
    pub status: Arc<Mutex<ApplierStatus>>,
    /// The node task's handle: reconcile publishes through it.
    pub node: NodeHandle,
    /// This node's origin, to tell its own records.
    pub origin: Origin,
}

impl Applier {
    /// Brings Fail2Ban in line with the mesh at once and then every
    /// `interval`, backing off while Fail2Ban fails, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let client = Client::new(&self.config);
        let mut filter = JailFilter::new(self.config.apply_jails.clone());
        let mut reconciler =
            reconcile::Reconciler::new(self.store.clone(), self.node.clone(), self.origin);
        let mut actions = ActionCheck::default();
        let mut changes = self.store.changes();
        let mut wait = Duration::ZERO;
        let mut healthy = true;
        loop {
            let last = Instant::now();
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                // A commit changed the index: a round soon, not before
                // MIN_GAP after the last (a stream of gossip costs one
                // round per MIN_GAP, not one per message). Not while
                // Fail2Ban is failing: then only the backoff decides.
                Ok(()) = changes.changed(), if healthy => {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep_until(last + MIN_GAP) => {}
                    }
                    changes.mark_unchanged();
                }
            }
            let result = self.round(&client, &mut filter, &mut reconciler, &mut actions).await;
            healthy = result.is_ok();
            if !healthy {
                actions.forget();
            }
            let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            s.published = reconciler.published;
            match result {
                Ok(round) => {
                    s.applied = round.applied;
                    s.networks = Some(round.networks);
                    s.unheld = round.unheld;
                    s.not_taken = round.not_taken;
                    s.too_wide = round.too_wide;
                    s.problems = round.problems;
                    s.last_error = None;
                    // The next ban or allow to end changes the jail
                    // without any commit: a round then, if before the interval.
                    let interval = self.config.interval;
                    wait = round.next_ms.map_or(interval, |at| {
                        let left = Duration::from_millis(at.saturating_sub(now_ms()) + 1);
                        left.clamp(MIN_GAP.min(interval), interval)
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot bring Fail2Ban in line with the mesh; retrying");
                    s.last_error = Some(e);
                    wait = (wait * 2)
                        .max(self.config.interval)
                        .min(MAX_BACKOFF.max(self.config.interval));
                }
            }
        }
    }

    /// One round: read every jail (one `status`, then one batch of reads),
    /// deal with every other jail first (unban what the mesh allows,
    /// publish what the node missed; a failure there is a problem of that
    /// jail, reported, and the round goes on), then bring the mesh jail in
    /// line (a failure there is an error: the applier backs off).
    async fn round(
        &self,
        client: &Client,
        filter: &mut JailFilter,
        reconciler: &mut reconcile::Reconciler,
        actions: &mut ActionCheck,
    ) -> Result<Round, String> {
        let batch = usize::try_from(self.config.batch).unwrap_or(usize::MAX);
        // A name with blanks cannot be sent to `fail2ban-client -i`.
        let jails: Vec<String> = client
            .jails()
            .await?
            .into_iter()
            .filter(|j| !j.contains(char::is_whitespace))
            .collect();
        let mut commands = Vec::with_capacity(jails.len() * 2);
        for jail in &jails {
            commands.push(format!("get {jail} ignoreip"));
            // The mesh jail's times are banmesh's own: only its list is read.
            let times = if *jail == self.config.jail { "" } else { " --with-time" };
            commands.push(format!("get {jail} banip{times}"));
        }
        let answers = client.batch(&commands).await?;
        let offset_s = client::local_offset_s().await?;
        let mut never = self.mesh.never_ban(&self.never_ban).await;
        let mut mesh_jail = None;
        let mut problems = Vec::new();
        for (jail, pair) in jails.iter().zip(answers.chunks(2)) {
            let [ignoreip, bans] = pair else { continue };
            never.extend(client::parse_ignoreip(ignoreip));
            if *jail == self.config.jail {
                mesh_jail = Some(bans.split_whitespace().filter_map(|b| b.parse().ok()).collect());
                continue;
            }
            let held = client::parse_keys(bans);
            let tickets = client::parse_tickets(bans, offset_s);
            if let Err(e) = self.other_jail(client, reconciler, jail, held, tickets, batch).await {
                tracing::warn!(jail = %jail, error = %e, "cannot bring a jail in line with the mesh");
                problems.push(e);
            }
        }
        let Some(have) = mesh_jail else {
            return Err(format!(
                "Fail2Ban has no jail {:?}: install systemd/fail2ban/jail.d/banmesh.conf and reload fail2ban",
                self.config.jail
            ));
        };
        let networks = actions.networks(client, &self.config.jail).await.unwrap_or_else(|e| {
            problems
                .push(format!("cannot tell whether the mesh jail's actions hold networks: {e}"));
            Networks::Held
        });
        let mut round = self.apply_mesh_jail(client, filter, &never, have, networks, batch).await?;
        round.problems = problems;
        Ok(round)
    }

    /// Unbans in `jail` what the mesh allows (of `held`, all it holds);
    /// publishes, if the jail publishes, the bans the node missed (of
    /// `tickets`, those whose times could be read).
    async fn other_jail(
        &self,
        client: &Client,
        reconciler: &mut reconcile::Reconciler,
        jail: &str,
        held: BTreeSet<Key>,
        tickets: Vec<client::Ticket>,
        batch: usize,
    ) -> Result<(), String> {
        let now = now_ms();
        let allowed: Vec<Key> = if self.enforce {
            self.store
                .with_index(|index| held.into_iter().filter(|k| allowed(index, *k, now)).collect())
        } else {
            Vec::new()
        };
        client.set(jail, "unbanip", &allowed, batch).await?;
        if !allowed.is_empty() {
            tracing::info!(
                target: "banmesh::events::fail2ban_applied",
                jail, unbanned = allowed.len(), "addresses the mesh allows unbanned"
            );
        }
        if self.config.publishes(jail) {
            let missed = tickets.into_iter().filter(|t| !allowed.contains(&t.key)).collect();
            reconciler.publish_missed(jail, missed).await?;
        }
        Ok(())
    }

    /// Bans in the mesh jail what the mesh bans and it lacks; unbans what it
    /// holds (`have`) and the mesh no longer bans (or its action cannot
    /// hold: `networks`).
    async fn apply_mesh_jail(
        &self,
        client: &Client,
        filter: &mut JailFilter,
        never: &[Key],
        have: BTreeSet<Key>,
        networks: Networks,
        batch: usize,
    ) -> Result<Round, String> {
        let jail = &self.config.jail;
        let now = now_ms();
        let candidates: Vec<(Key, KeySummary)> = self.store.with_index(|index| {
            index.live(now).filter(|(_, s)| s.banned_at(now).is_some()).collect()
        });
        filter.refresh(&self.store, &candidates).await.map_err(|e| e.to_string())?;
        let want = if self.enforce {
            self.store.with_index(|index| {
                wanted(index, &candidates, never, |k, s| filter.applies(k, s, now), now)
            })
        } else {
            Wanted::default()
        };
        let next_ms = self.store.with_index(|index| next_change(index, now));
        for skipped in &want.too_wide {
            tracing::debug!(error = %skipped, "banned network not applied");
        }
        let (send, unheld) = match networks {
            Networks::Held => (want.keys, BTreeSet::new()),
            Networks::NotHeld { .. } => {
                let (nets, addrs): (BTreeSet<Key>, _) =
                    want.keys.into_iter().partition(|k| !k.is_address());
                (addrs, nets)
            }
        };
        let (held, not_taken) = put_in_jail(client, jail, &send, have, batch).await?;
        Ok(Round {
            applied: send.intersection(&held).count(),
            networks,
            unheld: unheld.iter().map(ToString::to_string).collect(),
            not_taken,
            too_wide: want.too_wide.iter().map(|e| e.net.to_string()).collect(),
            problems: Vec::new(),
            next_ms,
        })
    }
}

/// Brings `jail`, which holds `have`, to hold `send`; returns what it holds
/// then and the entries Fail2Ban did not take.
async fn put_in_jail(
    client: &Client,
    jail: &str,
    send: &BTreeSet<Key>,
    have: BTreeSet<Key>,
    batch: usize,
) -> Result<(BTreeSet<Key>, Vec<String>), String> {
    let to_ban: Vec<Key> = send.difference(&have).copied().collect();
    let to_unban: Vec<Key> = have.difference(send).copied().collect();
    // Unbans first: a wider ban overlaps the entries inside it, which an
    // nftables set with `flags interval` refuses.
    client.set(jail, "unbanip", &to_unban, batch).await?;
    client.set(jail, "banip", &to_ban, batch).await?;
    let held = if to_ban.is_empty() { have } else { read_jail(client, jail).await? };
    let not_taken: Vec<String> =
        to_ban.iter().filter(|k| !held.contains(k)).map(ToString::to_string).collect();
    if let Some(first) = not_taken.first() {
        tracing::warn!(jail, count = not_taken.len(), first = %first, "Fail2Ban did not take entries into the mesh jail");
    }
    if !to_ban.is_empty() || !to_unban.is_empty() {
        tracing::info!(
            target: "banmesh::events::fail2ban_applied",
            banned = to_ban.len() - not_taken.len(), unbanned = to_unban.len(), jail, "Fail2Ban brought in line"
        );
    }
    Ok((held, not_taken))
}

/// What `jail` holds (`get JAIL banip`).
async fn read_jail(client: &Client, jail: &str) -> Result<BTreeSet<Key>, String> {
    let answers = client.batch(&[format!("get {jail} banip")]).await?;
    let text = answers.first().map_or("", String::as_str);
    Ok(text.split_whitespace().filter_map(|b| b.parse().ok()).collect())
}

/// What a round did.
struct Round {
    applied: usize,
    networks: Networks,
    unheld: Vec<String>,
    not_taken: Vec<String>,
    too_wide: Vec<String>,
    /// Failures confined to one jail: reported, but no reason to back off.
    problems: Vec<String>,
    /// When the next ban or allow ends (Unix ms), if one is running.
    next_ms: Option<u64>,
}

/// When the next live ban or allow in `index` ends, after `now_ms`.
fn next_change(index: &Index, now_ms: u64) -> Option<u64> {
    index
        .live(now_ms)
        .flat_map(|(_, s)| [s.ban_until_ms, s.allow_until_ms])
        .filter(|&t| t > now_ms)
        .min()
}

/// What the mesh jail should hold.
#[derive(Debug, Default, PartialEq, Eq)]
struct Wanted {
    keys: BTreeSet<Key>,
    too_wide: Vec<TooManyPieces>,
}

/// Whether an allow covers the whole of `key` at `now_ms`.
fn allowed(index: &Index, key: Key, now_ms: u64) -> bool {
    Key::covering(key.net().network())
        .filter(|k| k.prefix_len() <= key.prefix_len())
        .any(|k| index.get(k).is_some_and(|s| s.allowed_at(now_ms).is_some()))
}

/// The keys the mesh jail should hold at `now_ms`: every banned candidate
/// that `applies` and that neither an allow nor a never-ban entry covers,
/// split around the allowed and never-ban networks inside it.
fn wanted(
    index: &Index,
    candidates: &[(Key, KeySummary)],
    never: &[Key],
    applies: impl Fn(Key, KeySummary) -> bool,
    now_ms: u64,
) -> Wanted {
    let allows: Vec<Key> = index
        .live(now_ms)
        .filter(|(_, s)| s.allowed_at(now_ms).is_some())
        .map(|(k, _)| k)
        .collect();
    let mut out = Wanted::default();
    for &(key, summary) in candidates {
        if !applies(key, summary)
            || allowed(index, key, now_ms)
            || never.iter().any(|n| n.net().contains(&key.net()))
        {
            continue;
        }
        // One address has no room for holes (an allow or never-ban entry on
        // it was handled above): skip the scan, which is most keys.
        let holes: Vec<ipnet::IpNet> = if key.is_address() {
            Vec::new()
        } else {
            never.iter().chain(&allows).map(Key::net).filter(|h| key.net().contains(h)).collect()
        };
        if holes.is_empty() {
            out.keys.insert(key);
            continue;
        }
        match split_excluding(key.net(), &holes, MAX_PIECES) {
            Ok(pieces) => out.keys.extend(pieces.into_iter().map(Key::from_net)),
            Err(e) => out.too_wide.push(e),
        }
    }
    out.keys = outermost(out.keys);
    out
}

#[cfg(test)]
mod tests;
