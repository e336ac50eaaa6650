//! Why a configuration was refused: one variant per failing check, each
//! message naming the file, the key and what to change.

use std::path::PathBuf;

use banmesh_crdt::KeyError;
use banmesh_crdt::duration::{DurationError, FormatDuration};

/// Why a configuration could not be loaded. `origin` is the file's path, or
/// `<built-in defaults>` when no file was given.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {error}; check the path and its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The file is not TOML, or has an unknown key or a value of the wrong
    /// type. toml's message gives the line and column.
    #[error("{origin}: {error}run `banmesh config example` to see every key and its type")]
    Parse {
        /// The file.
        origin: String,
        /// toml's message, with line, column and the offending text.
        error: Box<toml::de::Error>,
    },
    /// A duration is not `<number><unit>`.
    #[error("{origin}: {key}: {error}")]
    Duration {
        /// The file.
        origin: String,
        /// The key, as `section.key`.
        key: &'static str,
        /// What is wrong with it.
        error: DurationError,
    },
    /// A duration that must be positive is zero.
    #[error("{origin}: {key} must be longer than 0s")]
    Zero {
        /// The file.
        origin: String,
        /// The key, as `section.key`.
        key: &'static str,
    },
    /// A number below its minimum.
    #[error("{origin}: {key} is {value}, below its minimum of {min}: {why}")]
    TooSmall {
        /// The file.
        origin: String,
        /// The key, as `section.key`.
        key: &'static str,
        /// The value given.
        value: u64,
        /// The smallest allowed.
        min: u64,
        /// Why the minimum.
        why: &'static str,
    },
    /// A path is empty.
    #[error("{origin}: {key} is empty; give a path, or remove the key to use the default")]
    EmptyPath {
        /// The file.
        origin: String,
        /// The key, as `section.key`.
        key: &'static str,
    },
    /// An entry of a list of multiaddrs is empty.
    #[error(
        "{origin}: {key} entry {position} is empty; write a multiaddr such as /ip4/192.0.2.7/tcp/4646"
    )]
    EmptyEntry {
        /// The file.
        origin: String,
        /// The key, as `section.key`.
        key: &'static str,
        /// Which entry, counting from 1.
        position: usize,
    },
    /// `retention` is shorter than the gateway's lifecycle needs.
    #[error(
        "{origin}: cluster.retention {} is shorter than bans.allowed_duration + bans.known_duration ({} + {}); \
         raise cluster.retention to at least {}",
        FormatDuration(*retention), FormatDuration(*allowed), FormatDuration(*known),
        FormatDuration(*allowed + *known)
    )]
    RetentionTooShort {
        /// The file.
        origin: String,
        /// `cluster.retention`.
        retention: std::time::Duration,
        /// `bans.allowed_duration`.
        allowed: std::time::Duration,
        /// `bans.known_duration`.
        known: std::time::Duration,
    },
    /// A first ban would outlast what the cluster accepts.
    #[error(
        "{origin}: bans.bantime {} is longer than cluster.max_ttl {}; \
         shorten bans.bantime or raise cluster.max_ttl on every node",
        FormatDuration(*bantime), FormatDuration(*max_ttl)
    )]
    BantimeAboveMaxTtl {
        /// The file.
        origin: String,
        /// `bans.bantime`.
        bantime: std::time::Duration,
        /// `cluster.max_ttl`.
        max_ttl: std::time::Duration,
    },
    /// The escalation factor would shrink bans or is not a number.
    #[error(
        "{origin}: bans.bantime_factor {factor} must be a finite number of at least 1 (default 24)"
    )]
    BadFactor {
        /// The file.
        origin: String,
        /// The value given.
        factor: f64,
    },
    /// The clock bound swallows the whole ban window.
    #[error(
        "{origin}: cluster.skew_bound {} must be shorter than cluster.max_ttl {}; \
         the default is 30s",
        FormatDuration(*skew_bound), FormatDuration(*max_ttl)
    )]
    SkewAboveMaxTtl {
        /// The file.
        origin: String,
        /// `cluster.skew_bound`.
        skew_bound: std::time::Duration,
        /// `cluster.max_ttl`.
        max_ttl: std::time::Duration,
    },
    /// The control socket's path does not fit in a unix socket address.
    #[error(
        "{origin}: node.socket {} is {len} bytes long, over the unix socket limit of {limit} bytes; \
         choose a shorter path",
        path.display()
    )]
    SocketTooLong {
        /// The file.
        origin: String,
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A never-ban entry is not an address or network.
    #[error("{origin}: safety.never_ban entry {entry:?}: {error}")]
    NeverBan {
        /// The file.
        origin: String,
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        error: KeyError,
    },
    /// A `[gateway]` value is wrong.
    #[error("{origin}: {message}")]
    Gateway {
        /// The file.
        origin: String,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// An `[enforce]` or `[nftables]` value is wrong.
    #[error("{origin}: {message}")]
    Enforce {
        /// The file.
        origin: String,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// `[metrics]`, `[limits]` or `[log]` is not usable.
    #[error("{origin}: {message}")]
    Ops {
        /// Where the configuration came from.
        origin: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The old server's `serverconfig.ini` could not be read.
    #[error(transparent)]
    Seed(#[from] super::seed::SeedError),
}
