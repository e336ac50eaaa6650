//! Fail2Ban: the only module that runs commands, and one backend of
//! [`crate::enforce`], which alone decides what this host enforces. The
//! applier task brings the local Fail2Ban in line with the published
//! [`Target`], at start and every `interval`:
//!
//! - the target's entries go into the `banmesh` jail in batches (`set JAIL
//!   banip IP...`) and leave it (`unbanip`) when the target no longer holds
//!   them; Fail2Ban's own facts are added here: every jail's `ignoreip` is
//!   left out like the never-ban list ([`Target::excluding`]), and networks
//!   are left out, and said so, when the jail's action cannot hold them
//!   ([`action`]); what the jail holds after a batch is read back, and only
//!   that is counted;
//! - addresses the target allows are unbanned in every jail;
//! - bans Fail2Ban made while the node was down are published
//!   ([`reconcile`]), through the node task, which alone signs records;
//! - an entry an operator unbanned from the mesh jail by hand is a local
//!   pardon for the rest of its ban ([`pardon`]), not banned again.
//!
//! Task: [`Applier::run`], ended by its token. Rounds run every `interval`
//! and soon after the target changes (a commit, or a ban or allow ending);
//! at most one a second but for the interval's own. A failing
//! `fail2ban-client` is retried with doubling waits and reported in
//! `banmesh status`; gossip never waits for it.

pub mod action;
pub mod client;
pub mod pardon;
pub mod reconcile;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use banmesh_crdt::{Key, Origin};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use action::{ActionCheck, Networks};
pub use client::Client;

use crate::api::NodeHandle;
use crate::clock::now_ms;
use crate::config::Fail2BanConfig;
use crate::enforce::{MAX_PIECES, Target};
use crate::store::Store;

/// The jail shipped for mesh bans (`jail.d/banmesh.conf`): never published.
pub const MESH_JAIL: &str = "banmesh";
/// The shortest time between two rounds started by changes in the target.
const MIN_GAP: Duration = Duration::from_secs(1);
/// The longest wait between attempts while Fail2Ban keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
    /// Local pardons: mesh entries unbanned from the jail by hand, left
    /// out until their ban's end (Unix ms).
    pub pardoned: BTreeMap<Key, u64>,
    /// What the mesh jail held after the last round.
    pub held: Arc<BTreeSet<Key>>,
}

impl ApplierStatus {
    /// `banmesh trace`'s lines for `addr`: the mesh jail's entries holding
    /// it, and its pardons.
    pub fn trace(&self, addr: IpAddr, jail: &str) -> Vec<String> {
        let mut out: Vec<String> = Key::covering(addr)
            .filter(|k| self.held.contains(k))
            .map(|k| format!("fail2ban: the {jail} jail holds {k}"))
            .collect();
        if out.is_empty() {
            out.push(format!("fail2ban: the {jail} jail does not hold {addr}"));
        }
        for (key, until) in self.pardoned.iter().filter(|(k, _)| k.net().contains(&addr)) {
            out.push(format!(
                "fail2ban: {key} pardoned on this host (unbanned from the {jail} jail by hand) until {}; banmesh unban lifts a ban mesh-wide",
                banmesh_keys::time::format_rfc3339(*until)
            ));
        }
        out
    }

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
    /// The store, read by reconcile for records.
    pub store: Store,
    /// What this host enforces (empty when `[safety] enforce = false`: the
    /// mesh jail is kept empty and no jail is touched; reconcile still
    /// publishes).
    pub target: watch::Receiver<Arc<Target>>,
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
        let mut reconciler =
            reconcile::Reconciler::new(self.store.clone(), self.node.clone(), self.origin);
        let mut actions = ActionCheck::default();
        let mut changes = self.target.clone();
        changes.mark_unchanged();
        let mut wait = Duration::ZERO;
        let mut healthy = true;
        let mut memory = pardon::Memory::default();
        loop {
            let last = Instant::now();
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                // The target changed: a round soon, not before MIN_GAP
                // after the last (a stream of gossip costs one round per
                // MIN_GAP, not one per message). Not while Fail2Ban is
                // failing: then only the backoff decides.
                Ok(()) = changes.changed(), if healthy => {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep_until(last + MIN_GAP) => {}
                    }
                    changes.mark_unchanged();
                }
            }
            let result = self.round(&client, &mut reconciler, &mut actions, &mut memory).await;
            healthy = result.is_ok();
            if !healthy {
                actions.forget();
                memory.expected = None;
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
                    s.pardoned = memory.pardons.iter().map(|(k, end)| (*k, *end)).collect();
                    s.held = Arc::new(memory.expected.clone().unwrap_or_default());
                    // A ban or allow ending changes the target: the
                    // enforce task publishes it, and `changes` says so.
                    wait = self.config.interval;
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
        reconciler: &mut reconcile::Reconciler,
        actions: &mut ActionCheck,
        memory: &mut pardon::Memory,
    ) -> Result<Round, String> {
        let target = self.target.borrow().clone();
        let batch = usize::try_from(self.config.batch).unwrap_or(usize::MAX);
        // A name with blanks cannot be sent to `fail2ban-client -i`.
        let jails: Vec<String> = client
            .jails()
            .await?
            .into_iter()
            .filter(|j| !j.contains(char::is_whitespace))
            .collect();
        let mesh_there = jails.contains(&self.config.jail);
        let answers = client.batch(&reads(&jails, &self.config.jail)).await?;
        let total = answers.last().filter(|_| mesh_there).and_then(|a| pardon::total_banned(a));
        let offset_s = client::local_offset_s().await?;
        let mut ignoreip = Vec::new();
        let mut mesh_jail = None;
        let mut problems = Vec::new();
        for (jail, pair) in jails.iter().zip(answers.chunks(2)) {
            let [ignoreip_text, bans] = pair else { continue };
            ignoreip.extend(client::parse_ignoreip(ignoreip_text));
            if *jail == self.config.jail {
                mesh_jail = Some(bans.split_whitespace().filter_map(|b| b.parse().ok()).collect());
                continue;
            }
            let allowed: Vec<Key> =
                client::parse_keys(bans).into_iter().filter(|k| target.allows_all_of(*k)).collect();
            let tickets = client::parse_tickets(bans, offset_s);
            let other = self.other_jail(client, reconciler, jail, allowed, tickets, batch);
            if let Err(e) = other.await {
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
        let mesh = MeshJail { ignoreip: &ignoreip, have, networks, batch, total };
        let mut round = self.apply_mesh_jail(client, &target, mesh, memory).await?;
        round.problems = problems;
        Ok(round)
    }

    /// Unbans in `jail` `allowed` (what it holds and the target allows);
    /// publishes, if the jail publishes, the bans the node missed (of
    /// `tickets`, those whose times could be read).
    async fn other_jail(
        &self,
        client: &Client,
        reconciler: &mut reconcile::Reconciler,
        jail: &str,
        allowed: Vec<Key>,
        tickets: Vec<client::Ticket>,
        batch: usize,
    ) -> Result<(), String> {
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

    /// Bans in the mesh jail what the target holds and it lacks (less
    /// `ignoreip`); unbans what it holds (`have`) and the target no longer
    /// does (or its action cannot hold: `networks`).
    /// Entries unbanned by hand since the last round become pardons
    /// (`memory`), left out.
    async fn apply_mesh_jail(
        &self,
        client: &Client,
        target: &Target,
        mesh: MeshJail<'_>,
        memory: &mut pardon::Memory,
    ) -> Result<Round, String> {
        let MeshJail { ignoreip, have, networks, batch, total } = mesh;
        let jail = &self.config.jail;
        let want = target.excluding(ignoreip);
        for skipped in &want.too_wide {
            tracing::debug!(error = %skipped, "banned network not applied");
        }
        let (mut send, unheld) = match networks {
            Networks::Held => (want.entries, BTreeSet::new()),
            Networks::NotHeld { .. } => {
                let (nets, addrs): (BTreeSet<Key>, _) =
                    want.entries.into_iter().partition(|k| !k.is_address());
                (addrs, nets)
            }
        };
        memory.pardon(&mut send, &have, &target.ends(), jail, now_ms(), total);
        let banning = send.difference(&have).count();
        let (held, not_taken) = put_in_jail(client, jail, &send, have, batch).await?;
        memory.expected = Some(send.intersection(&held).copied().collect());
        memory.total = total.map(|t| t + (banning - not_taken.len()) as u64);
        Ok(Round {
            applied: send.intersection(&held).count(),
            networks,
            unheld: unheld.iter().map(ToString::to_string).collect(),
            not_taken,
            too_wide: want.too_wide.iter().map(|e| e.net.to_string()).collect(),
            problems: Vec::new(),
        })
    }
}

/// A round's reads: every jail's `ignoreip` and bans (with their times
/// but for the mesh jail, whose times are banmesh's own), then the mesh
/// jail's lifetime ban count, which falls only when Fail2Ban restarts.
fn reads(jails: &[String], mesh_jail: &str) -> Vec<String> {
    let mut commands = Vec::with_capacity(jails.len() * 2 + 1);
    for jail in jails {
        commands.push(format!("get {jail} ignoreip"));
        let times = if jail == mesh_jail { "" } else { " --with-time" };
        commands.push(format!("get {jail} banip{times}"));
    }
    if jails.iter().any(|j| j == mesh_jail) {
        commands.push(format!("status {mesh_jail} short"));
    }
    commands
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

/// The mesh jail as a round found it.
struct MeshJail<'a> {
    /// Every jail's `ignoreip`.
    ignoreip: &'a [Key],
    /// What the jail holds.
    have: BTreeSet<Key>,
    /// Whether its actions hold networks.
    networks: Networks,
    /// Entries per command.
    batch: usize,
    /// Its lifetime ban count (`Total banned`), when read.
    total: Option<u64>,
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
}

#[cfg(test)]
mod tests;
