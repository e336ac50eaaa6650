//! The configuration in effect, written back as TOML in the file's own
//! layout and units, keys in the example's order, for `banmesh config check`. Reading it back gives the
//! same [`Config`].

use std::path::Path;
use std::time::Duration;

use banmesh_crdt::duration::format_duration;
use toml::Value;

use super::Config;

impl Config {
    /// The configuration as a TOML file that loads back to this `Config`
    /// (warnings aside), every key written out, durations in their units.
    pub fn to_toml(&self) -> String {
        let node = &self.node;
        let mut out = Toml::default();
        out.section("node");
        out.key("data_dir", path(&node.data_dir));
        out.key("node_key", path(&node.node_key));
        out.key("node_cert", path(&node.node_cert));
        out.key("socket", path(&node.socket));
        out.key("listen", strings(node.listen.iter().cloned()));
        out.key("peers", strings(node.peers.iter().cloned()));
        let cluster = &self.cluster;
        let ms = Duration::from_millis;
        out.section("cluster");
        if let Some(public_key) = &cluster.public_key {
            out.key("public_key", path(public_key));
        }
        out.key("max_ttl", duration(ms(cluster.params.max_ttl_ms)));
        out.key("retention", duration(ms(cluster.params.retention_ms)));
        out.key("skew_bound", duration(ms(cluster.params.skew_bound_ms)));
        let bans = &self.bans;
        out.section("bans");
        out.key("bantime", duration(bans.bantime));
        out.key("bantime_increment", Value::Boolean(bans.increment));
        out.key("bantime_factor", Value::Float(bans.factor));
        out.key("bantime_maxtime", duration(bans.maxtime));
        out.key("allowed_duration", duration(bans.allowed_duration));
        out.key("known_duration", duration(bans.known_duration));
        out.section("safety");
        let never_ban = self.safety.never_ban.iter().map(|key| key.to_string());
        out.key("never_ban", strings(never_ban));
        out.key("enforce", Value::Boolean(self.safety.enforce));
        out.section("sync");
        out.key("interval", duration(self.sync.interval));
        out.key("hello_timeout", duration(self.sync.hello_timeout));
        out.key(
            "origin_rate",
            Value::Integer(i64::try_from(self.sync.origin_rate).unwrap_or(i64::MAX)),
        );
        out.key(
            "origin_burst",
            Value::Integer(i64::try_from(self.sync.origin_burst).unwrap_or(i64::MAX)),
        );
        out.section("store");
        out.key("gc_interval", duration(self.store.gc_interval));
        let f2b = &self.fail2ban;
        out.section("fail2ban");
        out.key("apply", Value::Boolean(f2b.apply));
        out.key("client", Value::String(f2b.client.clone()));
        if let Some(dir) = &f2b.config_dir {
            out.key("config_dir", path(dir));
        }
        out.key("jail", Value::String(f2b.jail.clone()));
        out.key("interval", duration(f2b.interval));
        out.key("batch", Value::Integer(i64::try_from(f2b.batch).unwrap_or(i64::MAX)));
        out.key("publish_jails", strings(f2b.publish_jails.iter().cloned()));
        out.key("apply_jails", strings(f2b.apply_jails.iter().cloned()));
        out.section("enforce");
        out.key("backends", strings(self.enforce.backends.iter().map(|b| b.name().to_owned())));
        let nft = &self.nftables;
        out.section("nftables");
        out.key("nft", Value::String(nft.nft.clone()));
        out.key("table", Value::String(nft.table.clone()));
        out.key("priority", Value::Integer(i64::from(nft.priority)));
        out.key("forward", Value::Boolean(nft.forward));
        out.key("remove_on_stop", Value::Boolean(nft.remove_on_stop));
        out.key("reconcile", duration(nft.reconcile));
        out.key("batch", Value::Integer(i64::try_from(nft.batch).unwrap_or(i64::MAX)));
        out.section("metrics");
        if let Some(listen) = self.metrics.listen {
            out.key("listen", Value::String(listen.to_string()));
        }
        out.section("limits");
        for (key, n) in self.limits.keys() {
            out.key(key, Value::Integer(i64::from(n)));
        }
        out.section("mesh");
        out.key("kademlia", Value::Boolean(self.mesh.kademlia));
        out.key("mdns", Value::Boolean(self.mesh.mdns));
        out.section("log");
        if let Some(level) = &self.log.level {
            out.key("level", Value::String(level.clone()));
        }
        let gateway = &self.gateway;
        out.section("gateway");
        if let Some(listen) = gateway.listen {
            out.key("listen", Value::String(listen.to_string()));
        }
        if let Some(seed) = &gateway.seed_config {
            out.key("seed_config", path(seed));
        }
        if let Some(tls) = &gateway.tls {
            out.key("tls_cert", path(&tls.cert));
            out.key("tls_key", path(&tls.key));
        }
        let proxies = gateway.trusted_proxies.iter().map(|net| net.to_string());
        out.key("trusted_proxies", strings(proxies));
        out.key(
            "body_limit",
            Value::Integer(i64::try_from(gateway.body_limit).unwrap_or(i64::MAX)),
        );
        out.key(
            "max_connections_per_source",
            Value::Integer(i64::try_from(gateway.max_connections_per_source).unwrap_or(i64::MAX)),
        );
        if gateway.seed_config.is_some() {
            let p = &gateway.policy;
            let seeded: Vec<&str> =
                gateway.tokens.iter().filter(|t| t.from_seed).map(|t| t.name.as_str()).collect();
            out.comment(&format!("the seed file's tokens: {}", seeded.join(", ")));
            out.comment(&format!(
                "the gateway's lifecycle, [bans] with the seed file's settings: bantime {}, \
                 increment {}, factor {}, maxtime {}, allowed_duration {}, known_duration {}",
                format_duration(p.bantime),
                p.increment,
                p.factor,
                format_duration(p.maxtime),
                format_duration(p.allowed_duration),
                format_duration(p.known_duration),
            ));
        }
        out.section("gateway.tokens");
        for token in gateway.tokens.iter().filter(|t| !t.from_seed) {
            let digest = Value::String(format!("sha256:{}", hex::encode(token.digest)));
            let value = match token.role {
                crate::config::Role::Write => digest,
                role => Value::Table(toml::map::Map::from_iter([
                    ("token".to_owned(), digest),
                    ("role".to_owned(), Value::String(role.as_str().to_owned())),
                ])),
            };
            out.key(&Value::String(token.name.clone()).to_string(), value);
        }
        out.0
    }
}

/// TOML text being written, one section and key at a time, in order.
#[derive(Default)]
struct Toml(String);

impl Toml {
    fn section(&mut self, name: &str) {
        if !self.0.is_empty() {
            self.0.push('\n');
        }
        self.0.push_str(&format!("[{name}]\n"));
    }

    fn comment(&mut self, text: &str) {
        self.0.push_str(&format!("# {text}\n"));
    }

    fn key(&mut self, key: &str, value: Value) {
        self.0.push_str(&format!("{key} = {value}\n"));
    }
}

fn path(path: &Path) -> Value {
    Value::String(path.to_string_lossy().into_owned())
}

fn duration(duration: Duration) -> Value {
    Value::String(format_duration(duration))
}

fn strings(items: impl Iterator<Item = String>) -> Value {
    Value::Array(items.map(Value::String).collect())
}
