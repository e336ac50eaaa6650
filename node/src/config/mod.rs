//! The node's configuration in two stages: one TOML file read into
//! [`raw::RawConfig`], command-line [`Overrides`] laid over it, then validated
//! once at start into [`Config`]. [`EXAMPLE`] is the commented example file.

mod checks;
mod error;
mod gateway;
mod mesh;
mod nftables;
mod ops;
mod overrides;
mod raw;
pub mod seed;
mod show;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use banmesh_crdt::duration::FormatDuration;
use banmesh_crdt::{BanPolicy, Key, Params};

pub use error::ConfigError;
pub use gateway::{DEFAULT_GATEWAY_LISTEN, GatewayConfig, Role, Token};
pub use nftables::{Backend, EnforceConfig, NftablesConfig};
pub use ops::{DEFAULT_METRICS_LISTEN, LimitsConfig, LogConfig, MetricsConfig};
pub use overrides::Overrides;
use raw::{RawBans, RawCluster, RawConfig, RawFail2Ban, RawNode, RawSafety, RawSync};

/// The commented example configuration; every value in it is the default.
pub const EXAMPLE: &str = include_str!("example.toml");

/// The node key's file name inside the data directory.
pub const NODE_KEY_FILE: &str = "node.key";
/// The node certificate's file name inside the data directory.
pub const NODE_CERT_FILE: &str = "node.cert";
/// The longest unix socket path: `sun_path` holds 108 bytes with the NUL.
pub const SOCKET_PATH_MAX: usize = 107;

/// What `origin` says when no file was given.
const BUILT_IN: &str = "<built-in defaults>";

/// The validated configuration the node runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[node]`: files and listeners.
    pub node: NodeConfig,
    /// `[cluster]`: the cluster key and the shared parameters.
    pub cluster: ClusterConfig,
    /// `[bans]`: Fail2BanSync's ban settings, `maxtime` capped at `max_ttl`.
    pub bans: BanPolicy,
    /// `[safety]`: what this node never enforces.
    pub safety: SafetyConfig,
    /// `[sync]`: catch-up timing.
    pub sync: SyncConfig,
    /// `[store]`: upkeep of the store.
    pub store: StoreConfig,
    /// `[fail2ban]`: applying mesh bans into the local Fail2Ban.
    pub fail2ban: Fail2BanConfig,
    /// `[gateway]`: the Fail2BanSync-compatible REST API.
    pub gateway: GatewayConfig,
    /// `[enforce]`: the backends holding what this host enforces.
    pub enforce: EnforceConfig,
    /// `[nftables]`: the nftables backend.
    pub nftables: NftablesConfig,
    /// `[metrics]`: where Prometheus scrapes the node.
    pub metrics: MetricsConfig,
    /// `[limits]`: libp2p's connection limits.
    pub limits: LimitsConfig,
    /// `[log]`: what the node logs.
    pub log: LogConfig,
    /// `[mesh]`: discovery (Kademlia, mDNS).
    pub mesh: crate::mesh::discovery::Discovery,
    /// Values that were adjusted or look wrong, for the node to log.
    pub warnings: Vec<String>,
}

/// `[node]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Where the store, the node key and the node certificate live.
    pub data_dir: PathBuf,
    /// The node key (default `DATA_DIR/node.key`).
    pub node_key: PathBuf,
    /// The node certificate (default `DATA_DIR/node.cert`).
    pub node_cert: PathBuf,
    /// The control socket; at most [`SOCKET_PATH_MAX`] bytes.
    pub socket: PathBuf,
    /// libp2p multiaddrs to listen on; non-empty strings, checked by the mesh.
    pub listen: Vec<String>,
    /// libp2p multiaddrs of peers to dial at start; non-empty strings.
    pub peers: Vec<String>,
}

impl NodeConfig {
    /// The store: `DATA_DIR/banmesh.db`.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join(crate::store::DB_FILE)
    }
}

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The cluster's public key (`cluster.pub`). `None`: a development
    /// cluster is made in the data directory on first run.
    pub public_key: Option<PathBuf>,
    /// `max_ttl`, `retention` and `skew_bound`, which every node must share.
    pub params: Params,
}

/// `[fail2ban]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail2BanConfig {
    /// Whether mesh bans are put into Fail2Ban's jail (off by default).
    pub apply: bool,
    /// The `fail2ban-client` program.
    pub client: String,
    /// Passed as `-c DIR` to the client, for a Fail2Ban with its own config dir.
    pub config_dir: Option<PathBuf>,
    /// The jail mesh bans go into.
    pub jail: String,
    /// How often Fail2Ban is brought in line with the mesh.
    pub interval: Duration,
    /// Addresses per `banip` or `unbanip` call.
    pub batch: u64,
    /// Jails whose bans are published to the mesh; empty: every jail. The
    /// mesh jail (`jail`, and `banmesh`) is never published.
    pub publish_jails: Vec<String>,
    /// Mesh bans applied here, by the jail their records name; empty: all.
    /// Bans naming no jail (operators' and the gateway's) always apply.
    pub apply_jails: Vec<String>,
}

impl Fail2BanConfig {
    /// Whether bans from `jail` are published to the mesh.
    pub fn publishes(&self, jail: &str) -> bool {
        jail != self.jail
            && jail != crate::fail2ban::MESH_JAIL
            && (self.publish_jails.is_empty() || self.publish_jails.iter().any(|j| j == jail))
    }
}

/// `[safety]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyConfig {
    /// Addresses and networks never enforced, whatever the mesh says.
    pub never_ban: Vec<Key>,
    /// `false` runs the node observe-only: it stores and gossips but never
    /// bans locally.
    pub enforce: bool,
}

/// `[sync]`, validated; both durations are positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    /// How often to reconcile with a random peer.
    pub interval: Duration,
    /// How long a new peer has to complete its hello.
    pub hello_timeout: Duration,
    /// Records per second accepted from one origin; beyond it, records wait
    /// (gossip ignores them, sync brings them later).
    pub origin_rate: u64,
    /// How many records one origin may send at once before the rate applies.
    pub origin_burst: u64,
}

/// `[store]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// How often the GC rule runs (at start, then at this interval); above 0.
    pub gc_interval: Duration,
}

/// Where the configuration came from, so the node can read it again (SIGHUP).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSource {
    /// The file; `None` for the built-in defaults.
    pub path: Option<PathBuf>,
    /// The command-line values laid over it.
    pub overrides: Overrides,
}

impl ConfigSource {
    /// Reads and validates the configuration again.
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(self.path.as_deref(), &self.overrides)
    }
}

impl Config {
    /// Reads and validates the file at `path`, or the built-in defaults when
    /// `path` is `None`, with `overrides` applied.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Config::from_toml("", BUILT_IN, overrides);
        };
        let text = fs::read_to_string(path)
            .map_err(|error| ConfigError::Read { path: path.to_owned(), error })?;
        Config::from_toml(&text, &path.display().to_string(), overrides)
    }

    /// Parses and validates `text`; `origin` names it in errors (a path).
    pub fn from_toml(
        text: &str,
        origin: &str,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            origin: origin.to_owned(),
            error: Box::new(error),
        })?;
        overrides.apply(&mut raw);
        Validator { origin, warnings: Vec::new() }.validate(raw)
    }
}

/// One validation: the file's name for errors, and the warnings so far.
struct Validator<'a> {
    origin: &'a str,
    warnings: Vec<String>,
}

impl Validator<'_> {
    fn validate(mut self, raw: RawConfig) -> Result<Config, ConfigError> {
        let node = self.node(raw.node)?;
        let (cluster, max_ttl) = self.cluster(raw.cluster)?;
        let bans = self.bans(raw.bans, max_ttl)?;
        self.check_retention(&cluster.params, &bans)?;
        let safety = self.safety(raw.safety)?;
        let sync = self.sync(raw.sync)?;
        let store = StoreConfig {
            gc_interval: self.positive("store.gc_interval", &raw.store.gc_interval)?,
        };
        let mut fail2ban = self.fail2ban(raw.fail2ban)?;
        let (enforce, nftables) = self.enforce(raw.enforce, raw.nftables, &mut fail2ban.apply)?;
        let retention = Duration::from_millis(cluster.params.retention_ms);
        let gateway = self.gateway(raw.gateway, &bans, max_ttl, retention)?;
        let metrics = ops::metrics(self.origin, raw.metrics)?;
        let limits = ops::limits(self.origin, raw.limits)?;
        let log = ops::log(self.origin, raw.log)?;
        let mesh = mesh::mesh(raw.mesh);
        let warnings = self.warnings;
        Ok(Config {
            node,
            cluster,
            bans,
            safety,
            sync,
            store,
            fail2ban,
            gateway,
            enforce,
            nftables,
            metrics,
            limits,
            log,
            mesh,
            warnings,
        })
    }

    fn node(&self, raw: RawNode) -> Result<NodeConfig, ConfigError> {
        self.non_empty_path("node.data_dir", &raw.data_dir)?;
        self.non_empty_path("node.socket", &raw.socket)?;
        let len = raw.socket.as_os_str().len();
        if len > SOCKET_PATH_MAX {
            return Err(ConfigError::SocketTooLong {
                origin: self.origin.to_owned(),
                path: raw.socket,
                len,
                limit: SOCKET_PATH_MAX,
            });
        }
        self.non_empty_entries("node.listen", &raw.listen)?;
        self.non_empty_entries("node.peers", &raw.peers)?;
        let node_key = raw.node_key.unwrap_or_else(|| raw.data_dir.join(NODE_KEY_FILE));
        let node_cert = raw.node_cert.unwrap_or_else(|| raw.data_dir.join(NODE_CERT_FILE));
        self.non_empty_path("node.node_key", &node_key)?;
        self.non_empty_path("node.node_cert", &node_cert)?;
        Ok(NodeConfig {
            data_dir: raw.data_dir,
            node_key,
            node_cert,
            socket: raw.socket,
            listen: raw.listen,
            peers: raw.peers,
        })
    }

    /// The cluster section, and `max_ttl` as a `Duration` for the checks
    /// that compare against it.
    fn cluster(&self, raw: RawCluster) -> Result<(ClusterConfig, Duration), ConfigError> {
        let max_ttl = self.positive("cluster.max_ttl", &raw.max_ttl)?;
        let retention = self.duration("cluster.retention", &raw.retention)?;
        let skew_bound = self.positive("cluster.skew_bound", &raw.skew_bound)?;
        if skew_bound >= max_ttl {
            return Err(ConfigError::SkewAboveMaxTtl {
                origin: self.origin.to_owned(),
                skew_bound,
                max_ttl,
            });
        }
        if let Some(path) = &raw.public_key {
            self.non_empty_path("cluster.public_key", path)?;
        }
        let params = Params {
            max_ttl_ms: millis(max_ttl),
            retention_ms: millis(retention),
            skew_bound_ms: millis(skew_bound),
        };
        let cluster = ClusterConfig { public_key: raw.public_key, params };
        Ok((cluster, max_ttl))
    }

    fn bans(&mut self, raw: RawBans, max_ttl: Duration) -> Result<BanPolicy, ConfigError> {
        let bantime = self.positive("bans.bantime", &raw.bantime)?;
        let mut maxtime = self.positive("bans.bantime_maxtime", &raw.bantime_maxtime)?;
        let allowed_duration = self.duration("bans.allowed_duration", &raw.allowed_duration)?;
        let known_duration = self.duration("bans.known_duration", &raw.known_duration)?;
        let factor = raw.bantime_factor;
        if !factor.is_finite() || factor < 1.0 {
            return Err(ConfigError::BadFactor { origin: self.origin.to_owned(), factor });
        }
        if bantime > max_ttl {
            return Err(ConfigError::BantimeAboveMaxTtl {
                origin: self.origin.to_owned(),
                bantime,
                max_ttl,
            });
        }
        if maxtime > max_ttl {
            self.warnings.push(format!(
                "{}: bans.bantime_maxtime {} is longer than cluster.max_ttl {}; bans are capped at {}",
                self.origin,
                FormatDuration(maxtime),
                FormatDuration(max_ttl),
                FormatDuration(max_ttl),
            ));
            maxtime = max_ttl;
        }
        if bantime > maxtime {
            self.warnings.push(format!(
                "{}: bans.bantime {} is longer than bans.bantime_maxtime {}; every ban lasts {}",
                self.origin,
                FormatDuration(bantime),
                FormatDuration(maxtime),
                FormatDuration(maxtime),
            ));
        }
        Ok(BanPolicy {
            bantime,
            increment: raw.bantime_increment,
            factor,
            maxtime,
            allowed_duration,
            known_duration,
        })
    }

    fn check_retention(&self, params: &Params, bans: &BanPolicy) -> Result<(), ConfigError> {
        let needed = bans.allowed_duration.saturating_add(bans.known_duration);
        let retention = Duration::from_millis(params.retention_ms);
        if retention < needed {
            return Err(ConfigError::RetentionTooShort {
                origin: self.origin.to_owned(),
                retention,
                allowed: bans.allowed_duration,
                known: bans.known_duration,
            });
        }
        Ok(())
    }

    fn safety(&mut self, raw: RawSafety) -> Result<SafetyConfig, ConfigError> {
        let mut never_ban = Vec::with_capacity(raw.never_ban.len());
        for entry in raw.never_ban {
            let parsed = Key::parse(&entry).map_err(|error| ConfigError::NeverBan {
                origin: self.origin.to_owned(),
                entry: entry.clone(),
                error,
            })?;
            if let Some(note) = parsed.note(&entry) {
                self.warnings.push(format!("{}: safety.never_ban: {note}", self.origin));
            }
            never_ban.push(parsed.key);
        }
        Ok(SafetyConfig { never_ban, enforce: raw.enforce })
    }

    fn fail2ban(&mut self, raw: RawFail2Ban) -> Result<Fail2BanConfig, ConfigError> {
        self.non_empty_entries("fail2ban.publish_jails", &raw.publish_jails)?;
        self.non_empty_entries("fail2ban.apply_jails", &raw.apply_jails)?;
        if raw.publish_jails.iter().any(|j| *j == raw.jail || j == crate::fail2ban::MESH_JAIL) {
            self.warnings.push(format!(
                "{}: fail2ban.publish_jails names the mesh jail; its bans are never published",
                self.origin
            ));
        }
        Ok(Fail2BanConfig {
            apply: raw.apply,
            client: raw.client,
            config_dir: raw.config_dir,
            jail: raw.jail,
            interval: self.positive("fail2ban.interval", &raw.interval)?,
            batch: self.at_least(
                "fail2ban.batch",
                raw.batch,
                1,
                "each call must carry an address",
            )?,
            publish_jails: raw.publish_jails,
            apply_jails: raw.apply_jails,
        })
    }

    fn sync(&self, raw: RawSync) -> Result<SyncConfig, ConfigError> {
        Ok(SyncConfig {
            interval: self.positive("sync.interval", &raw.interval)?,
            hello_timeout: self.positive("sync.hello_timeout", &raw.hello_timeout)?,
            origin_rate: self.at_least(
                "sync.origin_rate",
                raw.origin_rate,
                1,
                "a rate of 0 would stop every origin",
            )?,
            origin_burst: self.at_least(
                "sync.origin_burst",
                raw.origin_burst,
                1_000,
                "a full gossip message (up to about 400 records) must fit",
            )?,
        })
    }
}

/// `parse_duration` guarantees the milliseconds fit in a `u64`.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
