//! The configuration file as written: one serde struct per TOML section,
//! unknown keys refused, every default in a named function. Nothing here is
//! checked beyond its TOML type; [`super::Config`] is the validated form.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "config")]
pub(super) struct RawConfig {
    #[serde(default)]
    pub node: RawNode,
    #[serde(default)]
    pub cluster: RawCluster,
    #[serde(default)]
    pub bans: RawBans,
    #[serde(default)]
    pub safety: RawSafety,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub fail2ban: RawFail2Ban,
    #[serde(default)]
    pub gateway: RawGateway,
    #[serde(default)]
    pub enforce: RawEnforce,
    #[serde(default)]
    pub nftables: RawNftables,
    #[serde(default)]
    pub metrics: super::ops::RawMetrics,
    #[serde(default)]
    pub limits: super::ops::RawLimits,
    #[serde(default)]
    pub log: super::ops::RawLog,
    #[serde(default)]
    pub mesh: super::mesh::RawMesh,
}

/// `[node]`: where this node keeps its files and where it listens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "node")]
pub(super) struct RawNode {
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `None` follows `data_dir`.
    #[serde(default)]
    pub node_key: Option<PathBuf>,
    /// `None` follows `data_dir`.
    #[serde(default)]
    pub node_cert: Option<PathBuf>,
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    #[serde(default)]
    pub peers: Vec<String>,
}

impl Default for RawNode {
    fn default() -> Self {
        RawNode {
            data_dir: default_data_dir(),
            node_key: None,
            node_cert: None,
            socket: default_socket(),
            listen: default_listen(),
            peers: Vec::new(),
        }
    }
}

/// `[cluster]`: the cluster key and the parameters every node must share.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "cluster")]
pub(super) struct RawCluster {
    #[serde(default)]
    pub public_key: Option<PathBuf>,
    #[serde(default = "default_max_ttl")]
    pub max_ttl: String,
    #[serde(default = "default_retention")]
    pub retention: String,
    #[serde(default = "default_skew_bound")]
    pub skew_bound: String,
}

impl Default for RawCluster {
    fn default() -> Self {
        RawCluster {
            public_key: None,
            max_ttl: default_max_ttl(),
            retention: default_retention(),
            skew_bound: default_skew_bound(),
        }
    }
}

/// `[bans]`: Fail2BanSync's ban settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "bans")]
pub(super) struct RawBans {
    #[serde(default = "default_bantime")]
    pub bantime: String,
    #[serde(default = "default_true")]
    pub bantime_increment: bool,
    #[serde(default = "default_bantime_factor")]
    pub bantime_factor: f64,
    #[serde(default = "default_bantime_maxtime")]
    pub bantime_maxtime: String,
    #[serde(default = "default_allowed_duration")]
    pub allowed_duration: String,
    #[serde(default = "default_known_duration")]
    pub known_duration: String,
}

impl Default for RawBans {
    fn default() -> Self {
        RawBans {
            bantime: default_bantime(),
            bantime_increment: default_true(),
            bantime_factor: default_bantime_factor(),
            bantime_maxtime: default_bantime_maxtime(),
            allowed_duration: default_allowed_duration(),
            known_duration: default_known_duration(),
        }
    }
}

/// `[safety]`: what this node never enforces.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "safety")]
pub(super) struct RawSafety {
    #[serde(default)]
    pub never_ban: Vec<String>,
    #[serde(default = "default_true")]
    pub enforce: bool,
}

impl Default for RawSafety {
    fn default() -> Self {
        RawSafety { never_ban: Vec::new(), enforce: default_true() }
    }
}

/// `[sync]`: catch-up timing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "sync")]
pub(super) struct RawSync {
    #[serde(default = "default_sync_interval")]
    pub interval: String,
    #[serde(default = "default_hello_timeout")]
    pub hello_timeout: String,
    #[serde(default = "default_origin_rate")]
    pub origin_rate: u64,
    #[serde(default = "default_origin_burst")]
    pub origin_burst: u64,
}

impl Default for RawSync {
    fn default() -> Self {
        RawSync {
            interval: default_sync_interval(),
            hello_timeout: default_hello_timeout(),
            origin_rate: default_origin_rate(),
            origin_burst: default_origin_burst(),
        }
    }
}

/// `[store]`: upkeep of the store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "store")]
pub(super) struct RawStore {
    #[serde(default = "default_gc_interval")]
    pub gc_interval: String,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore { gc_interval: default_gc_interval() }
    }
}

fn default_gc_interval() -> String {
    "1h".to_owned()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/banmesh")
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/banmesh/banmesh.sock")
}

fn default_listen() -> Vec<String> {
    vec!["/ip4/0.0.0.0/tcp/4646".to_owned(), "/ip6/::/tcp/4646".to_owned()]
}

fn default_max_ttl() -> String {
    "5w".to_owned()
}

fn default_retention() -> String {
    "7d".to_owned()
}

fn default_skew_bound() -> String {
    "30s".to_owned()
}

fn default_bantime() -> String {
    "3m".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_bantime_factor() -> f64 {
    24.0
}

fn default_bantime_maxtime() -> String {
    "5w".to_owned()
}

fn default_allowed_duration() -> String {
    "2m".to_owned()
}

fn default_known_duration() -> String {
    "48h".to_owned()
}

fn default_sync_interval() -> String {
    "30s".to_owned()
}

fn default_origin_rate() -> u64 {
    2_000
}

fn default_origin_burst() -> u64 {
    20_000
}

fn default_hello_timeout() -> String {
    "10s".to_owned()
}

/// `[fail2ban]`: applying mesh bans into the local Fail2Ban.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "fail2ban")]
pub(super) struct RawFail2Ban {
    #[serde(default)]
    pub apply: bool,
    #[serde(default = "default_fail2ban_client")]
    pub client: String,
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
    #[serde(default = "default_fail2ban_jail")]
    pub jail: String,
    #[serde(default = "default_fail2ban_interval")]
    pub interval: String,
    #[serde(default = "default_fail2ban_batch")]
    pub batch: u64,
    #[serde(default)]
    pub publish_jails: Vec<String>,
    #[serde(default)]
    pub apply_jails: Vec<String>,
}

impl Default for RawFail2Ban {
    fn default() -> Self {
        RawFail2Ban {
            apply: false,
            client: default_fail2ban_client(),
            config_dir: None,
            jail: default_fail2ban_jail(),
            interval: default_fail2ban_interval(),
            batch: default_fail2ban_batch(),
            publish_jails: Vec::new(),
            apply_jails: Vec::new(),
        }
    }
}

fn default_fail2ban_client() -> String {
    "fail2ban-client".to_owned()
}

fn default_fail2ban_jail() -> String {
    "banmesh".to_owned()
}

fn default_fail2ban_interval() -> String {
    "5s".to_owned()
}

fn default_fail2ban_batch() -> u64 {
    500
}

/// `[gateway]`: the Fail2BanSync-compatible REST API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "gateway")]
pub(super) struct RawGateway {
    /// `None`: the gateway is off.
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub seed_config: Option<PathBuf>,
    /// Client name to token, or to `sha256:HEX`, or to a table
    /// `{ token = "...", role = "read" }`.
    #[serde(default)]
    pub tokens: BTreeMap<String, RawToken>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default = "default_body_limit")]
    pub body_limit: u64,
    #[serde(default = "default_per_source")]
    pub max_connections_per_source: u64,
    /// PEM certificate chain: the gateway serves HTTPS (with `tls_key`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

/// One `[gateway.tokens]` entry: the token alone (role `write`, as before
/// roles existed) or a table with its role.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawToken {
    /// `name = "token"`.
    Plain(String),
    /// `name = { token = "token", role = "read" }`.
    Table {
        /// The token, or `sha256:HEX`.
        token: String,
        /// `read`, `write` or `admin`; `write` when left out.
        #[serde(default)]
        role: Option<String>,
    },
}

impl Default for RawGateway {
    fn default() -> Self {
        RawGateway {
            listen: None,
            seed_config: None,
            tokens: BTreeMap::new(),
            trusted_proxies: Vec::new(),
            body_limit: default_body_limit(),
            max_connections_per_source: default_per_source(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

fn default_per_source() -> u64 {
    crate::gateway::door::DEFAULT_PER_SOURCE as u64
}

fn default_body_limit() -> u64 {
    1 << 20
}

/// `[enforce]`: which backends hold what this host enforces.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "enforce")]
pub(super) struct RawEnforce {
    /// `None`: `["fail2ban"]` if `fail2ban.apply`, else none.
    #[serde(default)]
    pub backends: Option<Vec<String>>,
}

/// `[nftables]`: banmesh's own nftables table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "nftables")]
pub(super) struct RawNftables {
    #[serde(default = "default_nft")]
    pub nft: String,
    #[serde(default = "default_nft_table")]
    pub table: String,
    #[serde(default = "default_nft_priority")]
    pub priority: i32,
    #[serde(default)]
    pub forward: bool,
    #[serde(default)]
    pub remove_on_stop: bool,
    #[serde(default = "default_nft_reconcile")]
    pub reconcile: String,
    #[serde(default = "default_nft_batch")]
    pub batch: u64,
}

impl Default for RawNftables {
    fn default() -> Self {
        RawNftables {
            nft: default_nft(),
            table: default_nft_table(),
            priority: default_nft_priority(),
            forward: false,
            remove_on_stop: false,
            reconcile: default_nft_reconcile(),
            batch: default_nft_batch(),
        }
    }
}

fn default_nft() -> String {
    "nft".to_owned()
}

fn default_nft_table() -> String {
    "banmesh".to_owned()
}

fn default_nft_priority() -> i32 {
    -10
}

fn default_nft_reconcile() -> String {
    "60s".to_owned()
}

fn default_nft_batch() -> u64 {
    5000
}
