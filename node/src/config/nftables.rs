//! `[enforce]` and `[nftables]`, validated: which backends hold what this
//! host enforces (Fail2Ban, nftables, or both), and the nftables backend's
//! table, hooks and timing. `[enforce] backends` left out keeps what
//! `[fail2ban] apply` said before it existed.

use std::time::Duration;

use super::raw::{RawEnforce, RawNftables};
use super::{ConfigError, Validator};

/// A backend of `enforce/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backend {
    /// The local Fail2Ban's mesh jail ([`crate::fail2ban`]).
    Fail2Ban,
    /// banmesh's own nftables table ([`crate::nftables`]).
    Nftables,
}

impl Backend {
    /// The name in `[enforce] backends`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Fail2Ban => "fail2ban",
            Backend::Nftables => "nftables",
        }
    }

    fn parse(name: &str) -> Option<Backend> {
        [Backend::Fail2Ban, Backend::Nftables].into_iter().find(|b| b.name() == name)
    }
}

/// `[enforce]`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnforceConfig {
    /// The backends, sorted, without repeats; empty: nothing is enforced
    /// here (the node stores and gossips).
    pub backends: Vec<Backend>,
}

impl EnforceConfig {
    /// Whether `backend` is enabled.
    pub fn has(&self, backend: Backend) -> bool {
        self.backends.contains(&backend)
    }
}

/// `[nftables]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftablesConfig {
    /// The `nft` program.
    pub nft: String,
    /// The table's name (family `inet`).
    pub table: String,
    /// The base chains' priority.
    pub priority: i32,
    /// Whether a chain on the forward hook drops too (routers, containers).
    pub forward: bool,
    /// Whether the table is deleted when the node stops (by default it
    /// stays, so bans hold across restarts and upgrades).
    pub remove_on_stop: bool,
    /// How often the kernel's table is read and repaired.
    pub reconcile: Duration,
    /// Element changes per `nft -f -` transaction.
    pub batch: u64,
}

impl Validator<'_> {
    /// `[enforce]` and `[nftables]`; sets `fail2ban_apply` to whether the
    /// Fail2Ban backend is enabled.
    pub(super) fn enforce(
        &mut self,
        raw: RawEnforce,
        nft: RawNftables,
        fail2ban_apply: &mut bool,
    ) -> Result<(EnforceConfig, NftablesConfig), ConfigError> {
        let names = match raw.backends {
            Some(names) => {
                if *fail2ban_apply && !names.iter().any(|n| n == Backend::Fail2Ban.name()) {
                    self.warnings.push(format!(
                        "{}: fail2ban.apply = true but enforce.backends does not name \"fail2ban\": mesh bans are not put into Fail2Ban",
                        self.origin
                    ));
                }
                names
            }
            None if *fail2ban_apply => vec![Backend::Fail2Ban.name().to_owned()],
            None => Vec::new(),
        };
        let mut backends = Vec::with_capacity(names.len());
        for name in &names {
            let backend = Backend::parse(name).ok_or_else(|| ConfigError::Enforce {
                origin: self.origin.to_owned(),
                message: format!(
                    "enforce.backends: unknown backend {name:?}; write \"fail2ban\", \"nftables\" or both"
                ),
            })?;
            backends.push(backend);
        }
        backends.sort_unstable();
        backends.dedup();
        *fail2ban_apply = backends.contains(&Backend::Fail2Ban);
        let table_ok = !nft.table.is_empty()
            && nft.table.len() <= 64
            && nft.table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && nft.table.starts_with(|c: char| c.is_ascii_alphabetic());
        if !table_ok {
            return Err(ConfigError::Enforce {
                origin: self.origin.to_owned(),
                message: format!(
                    "nftables.table {:?}: a letter, then letters, digits, '_' or '-', at most 64",
                    nft.table
                ),
            });
        }
        self.non_empty_entries("nftables.nft", std::slice::from_ref(&nft.nft))?;
        let nftables = NftablesConfig {
            nft: nft.nft,
            table: nft.table,
            priority: nft.priority,
            forward: nft.forward,
            remove_on_stop: nft.remove_on_stop,
            reconcile: self.positive("nftables.reconcile", &nft.reconcile)?,
            batch: self.at_least(
                "nftables.batch",
                nft.batch,
                1,
                "each transaction must carry an element",
            )?,
        };
        Ok((EnforceConfig { backends }, nftables))
    }
}
