//! Fail2Ban: the only module that runs commands. The applier task puts mesh
//! bans into the local `banmesh` jail in batches (`set JAIL banip IP...`) and
//! lifts those the mesh no longer holds (`unbanip`), comparing the jail with
//! the index on a timer; a failing `fail2ban-client` is retried with backoff
//! and reported in `banmesh status`, and never blocks gossip.
//!
//! Task: `run_applier`, ended by its token. Still to come: peers' addresses
//! in the never-ban list, CIDR bans split around allowed addresses,
//! publish/apply jail filters, and reconcile of local jails.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use banmesh_crdt::{Decision, Key};
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::Fail2BanConfig;
use crate::store::Store;

/// How long one `fail2ban-client` call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between attempts while Fail2Ban keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the applier last did, for `banmesh status`.
#[derive(Debug, Clone, Default)]
pub struct ApplierStatus {
    /// Addresses and networks the jail holds for the mesh.
    pub applied: usize,
    /// The last failure, if the last round failed.
    pub last_error: Option<String>,
}

/// `fail2ban-client`, with its config dir.
#[derive(Debug, Clone)]
pub struct Client {
    program: String,
    config_dir: Option<PathBuf>,
}

impl Client {
    /// The client configured in `[fail2ban]`.
    pub fn new(config: &Fail2BanConfig) -> Client {
        Client { program: config.client.clone(), config_dir: config.config_dir.clone() }
    }

    async fn run(&self, args: &[String]) -> Result<String, String> {
        let mut command = tokio::process::Command::new(&self.program);
        if let Some(dir) = &self.config_dir {
            command.arg("-c").arg(dir);
        }
        command.args(args).kill_on_drop(true);
        let output = tokio::time::timeout(CALL_TIMEOUT, command.output())
            .await
            .map_err(|_| format!("{} did not answer within {CALL_TIMEOUT:?}", self.program))?
            .map_err(|e| format!("cannot run {}: {e}; is fail2ban installed?", self.program))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stdout = String::from_utf8_lossy(&output.stdout);
            return Err(format!(
                "{} {} failed: {}{}",
                self.program,
                args.join(" "),
                stderr.trim(),
                stdout.trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The addresses and networks `jail` holds (`get JAIL banip`).
    pub async fn banned(&self, jail: &str) -> Result<BTreeSet<Key>, String> {
        let out = self.run(&["get".into(), jail.into(), "banip".into()]).await?;
        Ok(out.split_whitespace().filter_map(|ip| ip.parse::<Key>().ok()).collect())
    }

    /// Every jail's name (`status`).
    pub async fn jails(&self) -> Result<Vec<String>, String> {
        let out = self.run(&["status".into()]).await?;
        Ok(out
            .lines()
            .find_map(|line| line.split_once("Jail list:").map(|(_, list)| list))
            .map(|list| {
                list.split(',').map(|j| j.trim().to_owned()).filter(|j| !j.is_empty()).collect()
            })
            .unwrap_or_default())
    }

    /// The addresses and networks `jail` ignores (`get JAIL ignoreip`);
    /// entries that are not addresses (host names) are left out.
    pub async fn ignoreip(&self, jail: &str) -> Result<Vec<Key>, String> {
        let out = self.run(&["get".into(), jail.into(), "ignoreip".into()]).await?;
        Ok(out
            .lines()
            .filter_map(|line| {
                line.trim_start()
                    .strip_prefix("|-")
                    .or_else(|| line.trim_start().strip_prefix("`-"))
            })
            .filter_map(|entry| entry.trim().parse::<Key>().ok())
            .collect())
    }

    /// `set JAIL banip|unbanip` for `keys`, in batches of `batch`.
    pub async fn set(
        &self,
        jail: &str,
        verb: &str,
        keys: &[Key],
        batch: usize,
    ) -> Result<(), String> {
        for chunk in keys.chunks(batch.max(1)) {
            let mut args = vec!["set".to_owned(), jail.to_owned(), verb.to_owned()];
            args.extend(chunk.iter().map(ToString::to_string));
            self.run(&args).await?;
        }
        Ok(())
    }
}

/// The keys the jail should hold at `now_ms`: every key the index bans whose
/// network is not allowed, leaving out the never-ban list.
fn wanted(store: &Store, never_ban: &[Key], now_ms: u64) -> BTreeSet<Key> {
    store.with_index(|index| {
        index
            .live(now_ms)
            .filter(|(_, summary)| summary.banned_at(now_ms).is_some())
            .map(|(key, _)| key)
            .filter(|key| {
                let addr: IpAddr = key.net().network();
                matches!(index.decision(addr, now_ms), Decision::Banned { .. })
            })
            .filter(|key| {
                !never_ban
                    .iter()
                    .any(|n| n.net().contains(&key.net()) || key.net().contains(&n.net()))
            })
            .collect()
    })
}

/// Brings the jail in line with the mesh every `interval`, backing off while
/// Fail2Ban fails.
pub async fn run_applier(
    config: Fail2BanConfig,
    store: Store,
    never_ban: Vec<Key>,
    status: Arc<Mutex<ApplierStatus>>,
    shutdown: CancellationToken,
) {
    let client = Client::new(&config);
    let batch = usize::try_from(config.batch).unwrap_or(usize::MAX);
    let mut wait = config.interval;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        let result = apply_once(&client, &config.jail, &store, &never_ban, batch).await;
        let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(applied) => {
                s.applied = applied;
                s.last_error = None;
                wait = config.interval;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot bring Fail2Ban in line with the mesh; retrying");
                s.last_error = Some(e);
                wait = (wait * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One round: ban what the mesh bans and the jail lacks, unban what the
/// jail holds and the mesh no longer bans, never touching what any jail's
/// `ignoreip` covers (a manual `banip` would ignore it). Returns how many
/// the jail holds.
async fn apply_once(
    client: &Client,
    jail: &str,
    store: &Store,
    never_ban: &[Key],
    batch: usize,
) -> Result<usize, String> {
    let mut never: Vec<Key> = never_ban.to_vec();
    for other in client.jails().await? {
        never.extend(client.ignoreip(&other).await?);
    }
    let want = wanted(store, &never, now_ms());
    let have = client.banned(jail).await?;
    let to_ban: Vec<Key> = want.difference(&have).copied().collect();
    let to_unban: Vec<Key> = have.difference(&want).copied().collect();
    client.set(jail, "banip", &to_ban, batch).await?;
    client.set(jail, "unbanip", &to_unban, batch).await?;
    if !to_ban.is_empty() || !to_unban.is_empty() {
        tracing::info!(
            target: "banmesh::events::fail2ban_applied",
            banned = to_ban.len(), unbanned = to_unban.len(), jail, "Fail2Ban brought in line"
        );
    }
    Ok(want.len())
}
