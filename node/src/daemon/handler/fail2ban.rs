//! Fail2Ban's hand-over (`action.d/banmesh.conf`): a local ban becomes a
//! signed record at once, sized as Fail2Ban sized it; a ban Fail2Ban lifts by
//! hand becomes an Unban, one that ends naturally does not (it would cut
//! other nodes' longer bans short). `publish_jails` chooses the jails
//! published; the mesh jail never is. Reconcile sends the same command for
//! bans the hand-over missed.

use banmesh_crdt::{Decision, Key, Kind, Metadata, Record};

use super::super::issue::{Lifetime, Order};
use super::Node;
use crate::api::{Handed, Handover, NodeError};
use crate::clock::now_ms;
use crate::fail2ban::{MESH_JAIL, check_bantime};
use crate::store::query;

/// The longest jail name (the record's `jail` field holds 64 bytes).
const MAX_JAIL: usize = 64;

/// A ban lifted this long or more before its end counts as lifted by hand.
const EARLY_MS: u64 = 5_000;

fn skipped(reason: &str) -> Result<Handed, NodeError> {
    Ok(Handed::Skipped(reason.to_owned()))
}

/// A jail name as Fail2Ban's `<name>` tag gives it: letters, digits and
/// `-_.@:`, at most [`MAX_JAIL`] bytes. Anything else is refused, so that a
/// broken action line cannot put arbitrary text in signed records.
fn check_jail(jail: &str) -> Result<(), NodeError> {
    let fine = |c: char| c.is_ascii_alphanumeric() || "-_.@:".contains(c);
    if jail.is_empty() || jail.len() > MAX_JAIL || !jail.chars().all(fine) {
        return Err(NodeError::BadJail(jail.to_owned()));
    }
    Ok(())
}

impl Node {
    /// Publishes a ban Fail2Ban made here. Restored tickets (Fail2Ban
    /// restarting) and the `banmesh` jail's own bans are not new records. A
    /// ban without end (-1) or longer than `max_ttl` becomes a standing order.
    pub(super) async fn fail2ban_ban(&mut self, handover: Handover) -> Result<Handed, NodeError> {
        let Handover { key, jail, bantime_s, failures, bancount, restored } = handover;
        check_jail(&jail)?;
        check_bantime(bantime_s).map_err(NodeError::BadBantime)?;
        if restored {
            return skipped("Fail2Ban restored this ticket; it was published when first banned");
        }
        if jail == MESH_JAIL || jail == self.config.fail2ban.jail {
            return skipped("the banmesh jail holds mesh bans and is never published");
        }
        if !self.config.fail2ban.publishes(&jail) {
            return skipped("the jail is not in [fail2ban] publish_jails");
        }
        if bantime_s == 0 {
            return skipped("a ban of 0 s lasts no time");
        }
        let max_ttl_ms = self.config.cluster.params.max_ttl_ms;
        let lifetime = match u64::try_from(bantime_s) {
            Ok(s) if s.saturating_mul(1000) <= max_ttl_ms => Lifetime::For(s * 1000),
            _ => Lifetime::Permanent,
        };
        // One Ban per (key, origin) is kept: a shorter ban from another jail
        // (or a 10-minute sshd ban during an operator's 30-day one) would
        // replace this node's longer one and shorten it on every node.
        if let Lifetime::For(ms) = lifetime {
            let mine = self.own_ban(key).await?;
            let ends = mine.as_ref().and_then(|b| b.statement().expires_at);
            if ends.is_some_and(|e| e >= now_ms().saturating_add(ms)) {
                return skipped("this node already bans the address for longer; that ban stands");
            }
        }
        let reason = match failures {
            0 => "banned by Fail2Ban".to_owned(),
            n => format!("{n} failures"),
        };
        let meta = Metadata { jail, reason, source: "fail2ban".into() };
        let order =
            Order { lifetime, strikes: bancount.max(1), meta, ..Order::new(Kind::Ban, key) };
        self.write_order(order).await.map(|w| Handed::Published(Box::new(w)))
    }

    /// Publishes an Unban when Fail2Ban lifted this node's ban early (by
    /// hand); at the ban's natural end it does nothing, nor when an allow
    /// covers the address (the applier lifts allowed addresses in every
    /// jail; the allow already frees it everywhere).
    pub(super) async fn fail2ban_unban(
        &mut self,
        key: Key,
        jail: String,
    ) -> Result<Handed, NodeError> {
        check_jail(&jail)?;
        if jail == MESH_JAIL || jail == self.config.fail2ban.jail {
            return skipped("the banmesh jail's unbans are banmesh's own");
        }
        if !self.config.fail2ban.publishes(&jail) {
            return skipped("the jail is not in [fail2ban] publish_jails");
        }
        let addr = key.net().network();
        if matches!(self.store.with_index(|i| i.decision(addr, now_ms())), Decision::Allowed { .. })
        {
            return skipped("an allow covers the address; it needs no unban");
        }
        let mine = self.own_ban(key).await?;
        let Some(mine) = mine else {
            return skipped("this node holds no ban on that address, or an unban lifted it");
        };
        let meta = &mine.statement().meta;
        if meta.source != "fail2ban" || meta.jail != jail {
            // Another jail's longer ban, or an operator's, replaced this
            // jail's: lifting this jail's ticket must not lift that one.
            return skipped("this node's ban on the address was not made by this jail; it stands");
        }
        let Some(ends) = mine.statement().expires_at else {
            return skipped("this node holds no ban on that address");
        };
        if ends <= now_ms().saturating_add(EARLY_MS) {
            return skipped("the ban ended naturally; its end is already in the record");
        }
        let meta =
            Metadata { jail, reason: "unbanned in Fail2Ban".into(), source: "fail2ban".into() };
        self.write(Kind::Unban, key, Lifetime::Default, meta)
            .await
            .map(|w| Handed::Published(Box::new(w)))
    }
}

impl Node {
    /// This node's Ban on exactly `key`, unless an Unban (from any node)
    /// lifted it.
    async fn own_ban(&self, key: Key) -> Result<Option<Record>, NodeError> {
        let own = banmesh_keys::origin_of(&self.identity.secret.public());
        let records = self.store.read(move |c, p| query::records_on_keys(c, p, &[key])).await?;
        let mine = super::super::issue::standing_ban(&records, own).cloned();
        Ok(mine)
    }
}

#[cfg(test)]
mod tests {
    use super::check_jail;
    use crate::api::NodeError;

    #[test]
    fn odd_jail_names_are_refused() {
        for fine in ["sshd", "nginx-http-auth", "postfix.sasl", "a_b@c:1"] {
            assert!(check_jail(fine).is_ok(), "{fine}");
        }
        for odd in ["", "ssh d", "<name>", "x\nreason", "sshd;rm", &"j".repeat(65)] {
            let err = check_jail(odd).expect_err(odd);
            assert!(matches!(err, NodeError::BadJail(_)), "{err}");
            assert!(err.to_string().contains("invalid jail name"), "{err}");
        }
    }
}
