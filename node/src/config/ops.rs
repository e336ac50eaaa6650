//! `[metrics]`, `[limits]` and `[log]`: where Prometheus scrapes the node,
//! how many libp2p connections it takes, and what it logs. Written and
//! validated here, apart from the other sections.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

/// Where `/metrics` is served when `[metrics]` has no port of its own.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9646";

/// `[metrics]`, `[limits]` and `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "metrics")]
pub(super) struct RawMetrics {
    /// `None`: metrics are off.
    #[serde(default)]
    pub listen: Option<String>,
}

/// `[limits]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "limits")]
pub(super) struct RawLimits {
    #[serde(default = "LimitsConfig::pending_incoming")]
    pub max_pending_incoming: u32,
    #[serde(default = "LimitsConfig::established_incoming")]
    pub max_established_incoming: u32,
    #[serde(default = "LimitsConfig::established")]
    pub max_established: u32,
    #[serde(default = "LimitsConfig::per_peer")]
    pub max_established_per_peer: u32,
}

impl Default for RawLimits {
    fn default() -> RawLimits {
        RawLimits {
            max_pending_incoming: LimitsConfig::pending_incoming(),
            max_established_incoming: LimitsConfig::established_incoming(),
            max_established: LimitsConfig::established(),
            max_established_per_peer: LimitsConfig::per_peer(),
        }
    }
}

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "log")]
pub(super) struct RawLog {
    #[serde(default)]
    pub level: Option<String>,
}

/// `[metrics]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served; `None`: off.
    pub listen: Option<SocketAddr>,
}

/// `[limits]`, validated: libp2p's connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Inbound connections still in their handshake (TCP accepted, Noise
    /// and yamux not done). A flood of silent connections waits here and is
    /// closed on accept beyond it.
    pub max_pending_incoming: u32,
    /// Inbound connections established.
    pub max_established_incoming: u32,
    /// Connections established in all, both ways.
    pub max_established: u32,
    /// Connections established with one peer.
    pub max_established_per_peer: u32,
}

impl LimitsConfig {
    /// Each cap under its key in `[limits]`, in the example's order.
    pub fn keys(&self) -> [(&'static str, u32); 4] {
        [
            ("max_pending_incoming", self.max_pending_incoming),
            ("max_established_incoming", self.max_established_incoming),
            ("max_established", self.max_established),
            ("max_established_per_peer", self.max_established_per_peer),
        ]
    }

    fn pending_incoming() -> u32 {
        64
    }
    fn established_incoming() -> u32 {
        256
    }
    fn established() -> u32 {
        384
    }
    fn per_peer() -> u32 {
        4
    }
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_pending_incoming: LimitsConfig::pending_incoming(),
            max_established_incoming: LimitsConfig::established_incoming(),
            max_established: LimitsConfig::established(),
            max_established_per_peer: LimitsConfig::per_peer(),
        }
    }
}

/// `[log]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing` filter (`info`, `warn,banmesh_node=debug`); `RUST_LOG`
    /// wins over it. `None`: `info`.
    pub level: Option<String>,
}

fn invalid(origin: &str, message: String) -> ConfigError {
    ConfigError::Ops { origin: origin.to_owned(), message }
}

pub(super) fn metrics(origin: &str, raw: RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let listen = match raw.listen.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse().map_err(|_| {
            let fix = format!("write it like {DEFAULT_METRICS_LISTEN}");
            invalid(origin, format!("metrics.listen {text:?} is not an address and port; {fix}"))
        })?),
    };
    Ok(MetricsConfig { listen })
}

pub(super) fn limits(origin: &str, raw: RawLimits) -> Result<LimitsConfig, ConfigError> {
    let at_least_one = [
        ("limits.max_pending_incoming", raw.max_pending_incoming),
        ("limits.max_established_incoming", raw.max_established_incoming),
        ("limits.max_established", raw.max_established),
        ("limits.max_established_per_peer", raw.max_established_per_peer),
    ];
    if let Some((key, _)) = at_least_one.iter().find(|(_, n)| *n == 0) {
        return Err(invalid(
            origin,
            format!("{key} is 0, so no peer could connect; give at least 1"),
        ));
    }
    Ok(LimitsConfig {
        max_pending_incoming: raw.max_pending_incoming,
        max_established_incoming: raw.max_established_incoming,
        max_established: raw.max_established,
        max_established_per_peer: raw.max_established_per_peer,
    })
}

pub(super) fn log(origin: &str, raw: RawLog) -> Result<LogConfig, ConfigError> {
    let level = raw.level.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
    if let Some(level) = &level
        && let Err(error) = tracing_subscriber::EnvFilter::try_new(level)
    {
        let fix = "write a level (error, warn, info, debug, trace) or a filter like warn,banmesh_node=debug";
        return Err(invalid(origin, format!("log.level {level:?}: {error}; {fix}")));
    }
    Ok(LogConfig { level })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Overrides};

    fn load(toml: &str) -> Result<Config, String> {
        Config::from_toml(toml, "x", &Overrides::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn metrics_are_off_and_limits_default_unless_written() {
        let config = load("").unwrap();
        assert_eq!(config.metrics.listen, None);
        assert_eq!(config.limits.max_pending_incoming, 64);
        assert_eq!(config.log.level, None);
        let config =
            load("[metrics]\nlisten = \"127.0.0.1:9646\"\n[log]\nlevel = \"warn\"\n").unwrap();
        assert_eq!(config.metrics.listen, Some("127.0.0.1:9646".parse().unwrap()));
        assert_eq!(config.log.level.as_deref(), Some("warn"));
    }

    #[test]
    fn the_sections_are_written_back_as_loaded() {
        let text = "[metrics]\nlisten = \"127.0.0.1:9646\"\n[limits]\nmax_established = 9\n\
                    [log]\nlevel = \"warn\"\n";
        let config = load(text).unwrap();
        assert_eq!(load(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn bad_values_name_the_key() {
        assert!(load("[metrics]\nlisten = \"here\"\n").unwrap_err().contains("metrics.listen"));
        let zero = load("[limits]\nmax_established_per_peer = 0\n").unwrap_err();
        assert!(zero.contains("limits.max_established_per_peer is 0"), "{zero}");
        assert!(load("[log]\nlevel = \"info,=[\"\n").unwrap_err().contains("log.level"));
    }
}
