//! Fail2Ban's hand-over (`action.d/banmesh.conf`): a local ban becomes a
//! signed record at once, sized as Fail2Ban sized it; a ban Fail2Ban lifts by
//! hand becomes an Unban, one that ends naturally does not (it would cut
//! other nodes' longer bans short).

use banmesh_crdt::{Key, Kind, Metadata};

use super::super::issue::{Lifetime, Order};
use super::Node;
use crate::clock::now_ms;
use crate::control::protocol::Response;
use crate::store::query;

/// The jail that holds mesh bans: never published back.
pub const MESH_JAIL: &str = "banmesh";
/// A ban lifted this long or more before its end counts as lifted by hand.
const EARLY_MS: u64 = 5_000;

fn skipped(reason: &str) -> Result<Response, String> {
    Ok(Response::Skipped { reason: reason.to_owned() })
}

impl Node {
    /// Publishes a ban Fail2Ban made here. Restored tickets (Fail2Ban
    /// restarting) and the `banmesh` jail's own bans are not new records. A
    /// ban without end (-1) or longer than `max_ttl` becomes a standing order.
    pub(super) async fn fail2ban_ban(
        &mut self,
        ip: String,
        jail: String,
        bantime_s: i64,
        failures: u64,
        bancount: u32,
        restored: bool,
    ) -> Result<Response, String> {
        if restored {
            return skipped("Fail2Ban restored this ticket; it was published when first banned");
        }
        if jail == MESH_JAIL {
            return skipped("the banmesh jail holds mesh bans and is never published");
        }
        if bantime_s == 0 {
            return skipped("a ban of 0 s lasts no time");
        }
        let max_ttl_ms = self.config.cluster.params.max_ttl_ms;
        let lifetime = match u64::try_from(bantime_s) {
            Ok(s) if s.saturating_mul(1000) <= max_ttl_ms => Lifetime::For(s * 1000),
            _ => Lifetime::Permanent,
        };
        let meta =
            Metadata { jail, reason: format!("{failures} failures"), source: "fail2ban".into() };
        let order = Order { kind: Kind::Ban, key: ip, lifetime, strikes: bancount.max(1), meta };
        self.write_order(order).await
    }

    /// Publishes an Unban when Fail2Ban lifted this node's ban early (by
    /// hand); at the ban's natural end it does nothing.
    pub(super) async fn fail2ban_unban(
        &mut self,
        ip: String,
        jail: String,
    ) -> Result<Response, String> {
        if jail == MESH_JAIL {
            return skipped("the banmesh jail's unbans are banmesh's own");
        }
        let key = Key::parse(&ip).map_err(|e| e.to_string())?.key;
        let own = banmesh_keys::origin_of(&self.identity.secret.public());
        let records = self
            .store
            .read(move |c, p| query::records_on_keys(c, p, &[key]))
            .await
            .map_err(|e| e.to_string())?;
        let mine = records
            .iter()
            .filter(|r| r.origin() == own && r.kind() == Kind::Ban)
            .max_by(|a, b| a.order_cmp(b));
        let Some(ends) = mine.and_then(|r| r.statement().expires_at) else {
            return skipped("this node holds no ban on that address");
        };
        if ends <= now_ms().saturating_add(EARLY_MS) {
            return skipped("the ban ended naturally; its end is already in the record");
        }
        let meta =
            Metadata { jail, reason: "unbanned in Fail2Ban".into(), source: "fail2ban".into() };
        self.write(Kind::Unban, ip, Lifetime::Default, meta).await
    }
}
