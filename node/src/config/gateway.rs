//! `[gateway]`, validated: where the Fail2BanSync-compatible API listens,
//! its client tokens (from this file and from the old server's
//! `serverconfig.ini`), trusted proxies, the body limit, and the lifecycle
//! settings: `[bans]` with the seed file's `[DEFAULT]` laid over it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use banmesh_crdt::BanPolicy;
use banmesh_crdt::duration::FormatDuration;
use ipnet::IpNet;
use sha2::{Digest as _, Sha256};

use super::raw::{RawGateway, RawToken};
use super::seed::Seed;
use super::{ConfigError, Validator};
use crate::gateway::tls::TlsPair;

/// Why `name` cannot name a client (it becomes `NAME@ADDRESS` in records'
/// `source`), if it cannot; `[gateway.tokens]` and the seed file share it.
pub(super) fn client_name_problem(name: &str) -> Option<String> {
    let bad = |c: char| c == '@' || c.is_whitespace() || c.is_control();
    (name.is_empty() || name.chars().any(bad)).then(|| {
        format!(
            "the client name {name:?} must be non-empty, without '@', spaces or control characters"
        )
    })
}

/// Where the gateway listens when `--gateway` is given without an address.
pub const DEFAULT_GATEWAY_LISTEN: &str = "127.0.0.1:5000";

/// The prefix of a token stored as its SHA-256 hash.
const SHA256_PREFIX: &str = "sha256:";

/// What a token may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// Read the lists, decisions, status and peers; every write is a 403.
    Read,
    /// Read and write (ban, unban, allow, disallow) single addresses: what
    /// every token could do before roles existed, so the default.
    #[default]
    Write,
    /// Write networks too (`/v1` only; the old API takes addresses alone).
    Admin,
}

impl Role {
    /// `read` or `write`, as the configuration writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// One client token: the client's name, the SHA-256 of its token and its
/// role. The token itself is never kept.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The client's name, recorded in `reported_by` as `NAME@ADDRESS`.
    pub name: String,
    /// SHA-256 of the token.
    pub digest: [u8; 32],
    /// What it may do.
    pub role: Role,
    /// Whether it came from the seed file (so `config check` leaves it out).
    pub from_seed: bool,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({:?}, <redacted>)", self.name)
    }
}

impl Token {
    /// The hash of a token as presented by a client.
    pub fn digest_of(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }
}

/// `[gateway]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Where the API listens; `None`: the gateway is off.
    pub listen: Option<SocketAddr>,
    /// The old server's `serverconfig.ini`, read at start and on SIGHUP.
    pub seed_config: Option<PathBuf>,
    /// Every accepted token: this file's `[gateway.tokens]`, then the seed's.
    pub tokens: Vec<Token>,
    /// Proxies whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Largest request body, in bytes, before and after gzip decompression.
    pub body_limit: usize,
    /// Most connections open at once from one address (trusted proxies
    /// excepted).
    pub max_connections_per_source: usize,
    /// The lifecycle and escalation the gateway applies: `[bans]` with the
    /// seed file's settings laid over it, `maxtime` capped at `max_ttl`.
    pub policy: BanPolicy,
    /// `tls_cert` and `tls_key`, read and checked: the gateway serves HTTPS.
    pub tls: Option<TlsPair>,
}

impl Validator<'_> {
    pub(super) fn gateway(
        &mut self,
        raw: RawGateway,
        bans: &BanPolicy,
        max_ttl: Duration,
        retention: Duration,
    ) -> Result<GatewayConfig, ConfigError> {
        let listen = match raw.listen.as_deref().map(str::trim) {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| self.gateway_error(
                format!("gateway.listen {text:?} is not an address and port; write it like {DEFAULT_GATEWAY_LISTEN}"),
            ))?),
        };
        let mut tokens = Vec::new();
        for (name, value) in &raw.tokens {
            tokens.push(self.token(name, value)?);
        }
        let mut trusted_proxies = Vec::new();
        for entry in &raw.trusted_proxies {
            let key = banmesh_crdt::Key::parse(entry).map_err(|e| {
                self.gateway_error(format!("gateway.trusted_proxies entry {entry:?}: {e}"))
            })?;
            trusted_proxies.push(key.key.net());
        }
        if raw.body_limit < 1024 {
            return Err(self.gateway_error(format!(
                "gateway.body_limit {} is below its minimum of 1024 bytes",
                raw.body_limit
            )));
        }
        let body_limit = usize::try_from(raw.body_limit).unwrap_or(usize::MAX);
        let max = crate::gateway::listener::MAX_CONNECTIONS;
        let max_connections_per_source = usize::try_from(raw.max_connections_per_source)
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                self.gateway_error(format!(
                    "gateway.max_connections_per_source {} must be between 1 and {max}",
                    raw.max_connections_per_source
                ))
            })?;
        let mut policy = *bans;
        if let Some(path) = &raw.seed_config {
            let seed = Seed::load(path).map_err(ConfigError::Seed)?;
            for (name, token) in seed.tokens.iter().cloned() {
                let digest = Token::digest_of(&token);
                tokens.push(Token { name, digest, role: Role::Write, from_seed: true });
            }
            policy = self.seed_policy(&seed, policy, path, max_ttl)?;
        }
        let needed = policy.allowed_duration.saturating_add(policy.known_duration);
        if retention < needed {
            return Err(self.gateway_error(format!(
                "cluster.retention {} is shorter than the gateway's allowed_duration + known_duration ({} + {}); raise cluster.retention",
                FormatDuration(retention),
                FormatDuration(policy.allowed_duration),
                FormatDuration(policy.known_duration),
            )));
        }
        let tls = match (&raw.tls_cert, &raw.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                Some(TlsPair::load(cert, key).map_err(|e| self.gateway_error(e.to_string()))?)
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(self.gateway_error(
                    "gateway.tls_cert and gateway.tls_key go together: give both (HTTPS) or neither (HTTP)".into(),
                ));
            }
        };
        Ok(GatewayConfig {
            tls,
            listen,
            seed_config: raw.seed_config,
            tokens,
            trusted_proxies,
            body_limit,
            max_connections_per_source,
            policy,
        })
    }

    fn token(&self, name: &str, raw: &RawToken) -> Result<Token, ConfigError> {
        if let Some(problem) = client_name_problem(name) {
            return Err(self.gateway_error(format!("gateway.tokens: {problem}")));
        }
        let (value, role) = match raw {
            RawToken::Plain(value) => (value, Role::Write),
            RawToken::Table { token, role } => {
                let role = match role.as_deref().map(str::trim) {
                    None | Some("write") => Role::Write,
                    Some("read") => Role::Read,
                    Some("admin") => Role::Admin,
                    Some(other) => {
                        return Err(self.gateway_error(format!(
                            "gateway.tokens.{name}: role {other:?} is not read, write or admin"
                        )));
                    }
                };
                (token, role)
            }
        };
        let digest = match value.strip_prefix(SHA256_PREFIX) {
            Some(hex_text) => {
                let bytes = hex::decode(hex_text.trim()).ok().filter(|b| b.len() == 32);
                let Some(bytes) = bytes else {
                    return Err(self.gateway_error(format!(
                        "gateway.tokens.{name}: {SHA256_PREFIX} must be followed by 64 hex digits (sha256sum of the token)"
                    )));
                };
                let mut digest = [0; 32];
                digest.copy_from_slice(&bytes);
                digest
            }
            None if value.is_empty() => {
                return Err(self.gateway_error(format!("gateway.tokens.{name} is empty")));
            }
            None => Token::digest_of(value),
        };
        Ok(Token { name: name.to_owned(), digest, role, from_seed: false })
    }

    /// `policy` with the seed file's settings laid over it.
    fn seed_policy(
        &mut self,
        seed: &Seed,
        mut policy: BanPolicy,
        path: &std::path::Path,
        max_ttl: Duration,
    ) -> Result<BanPolicy, ConfigError> {
        let file = path.display();
        policy.bantime = seed.bantime.unwrap_or(policy.bantime);
        policy.increment = seed.increment.unwrap_or(policy.increment);
        policy.factor = seed.factor.unwrap_or(policy.factor);
        policy.maxtime = seed.maxtime.unwrap_or(policy.maxtime);
        policy.allowed_duration = seed.allowed_duration.unwrap_or(policy.allowed_duration);
        policy.known_duration = seed.known_duration.unwrap_or(policy.known_duration);
        if policy.bantime.is_zero() {
            return Err(self.gateway_error(format!("{file}: bantime must be longer than 0s")));
        }
        if !policy.factor.is_finite() || policy.factor < 1.0 {
            return Err(self.gateway_error(format!(
                "{file}: bantime.factor {} must be a finite number of at least 1",
                policy.factor
            )));
        }
        for (name, value) in
            [("bantime.maxtime", &mut policy.maxtime), ("bantime", &mut policy.bantime)]
        {
            if *value > max_ttl {
                self.warnings.push(format!(
                    "{file}: {name} {} is longer than cluster.max_ttl {}; the gateway's bans are capped at {}",
                    FormatDuration(*value),
                    FormatDuration(max_ttl),
                    FormatDuration(max_ttl),
                ));
                *value = max_ttl;
            }
        }
        Ok(policy)
    }

    fn gateway_error(&self, message: String) -> ConfigError {
        ConfigError::Gateway { origin: self.origin.to_owned(), message }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::config::{Config, Overrides};

    fn seed_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn with_seed(toml: &str, seed: &tempfile::NamedTempFile) -> Result<Config, ConfigError> {
        let overrides = Overrides {
            gateway: Some(DEFAULT_GATEWAY_LISTEN.to_owned()),
            seed_config: Some(seed.path().to_owned()),
            ..Overrides::default()
        };
        Config::from_toml(toml, "banmesh.toml", &overrides)
    }

    #[test]
    fn off_by_default_and_on_with_the_flag() {
        let config = Config::from_toml("", "x", &Overrides::default()).unwrap();
        assert_eq!(config.gateway.listen, None);
        assert_eq!(config.gateway.body_limit, 1 << 20);
        assert_eq!(config.gateway.policy, config.bans);
        let on = Overrides { gateway: Some("127.0.0.1:5000".into()), ..Overrides::default() };
        let config = Config::from_toml("", "x", &on).unwrap();
        assert_eq!(config.gateway.listen, Some("127.0.0.1:5000".parse().unwrap()));
        let refused =
            Config::from_toml("[gateway]\nlisten = \"here\"\n", "x", &Overrides::default());
        assert!(refused.unwrap_err().to_string().contains("gateway.listen"));
    }

    #[test]
    fn seed_tokens_and_settings_apply_and_default_keys_are_not_tokens() {
        let seed = seed_file(
            "[DEFAULT]\nbantime = 2s\nbantime.factor = 3\nbantime.maxtime = 10w\n\
             allowed_duration = 2s\nknown_duration = 4s\nweb_pass = admin123\n\
             [api_tokens]\nweb1 = tok1\n",
        );
        let toml = "[gateway.tokens]\nops = \"plain\"\nweb9 = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n";
        let config = with_seed(toml, &seed).unwrap();
        let names: Vec<&str> = config.gateway.tokens.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ops", "web9", "web1"]);
        assert_eq!(config.gateway.tokens[1].digest, Token::digest_of("test"));
        assert!(!config.gateway.tokens.iter().any(|t| t.digest == Token::digest_of("admin123")));
        let policy = config.gateway.policy;
        assert_eq!(policy.bantime, Duration::from_secs(2));
        assert_eq!(policy.factor, 3.0);
        assert_eq!(policy.maxtime, Duration::from_secs(35 * 86_400), "capped at max_ttl");
        assert_eq!(policy.known_duration, Duration::from_secs(4));
        assert!(
            config.warnings.iter().any(|w| w.contains("bantime.maxtime")),
            "{:?}",
            config.warnings
        );
        let shown = config.to_toml();
        assert!(!shown.contains("plain") && !shown.contains("tok1"), "{shown}");
        assert_eq!(with_seed(&shown, &seed).unwrap(), config);
    }

    #[test]
    fn tokens_take_a_role_and_default_to_write() {
        let toml = "[gateway.tokens]\nops = \"plain\"\nboard = { token = \"seen\", role = \"read\" }\n\
                    cron = { token = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\" }\n";
        let config = Config::from_toml(toml, "x", &Overrides::default()).unwrap();
        let roles: Vec<(&str, Role)> =
            config.gateway.tokens.iter().map(|t| (t.name.as_str(), t.role)).collect();
        assert_eq!(roles, [("board", Role::Read), ("cron", Role::Write), ("ops", Role::Write)]);
        assert_eq!(config.gateway.tokens[1].digest, Token::digest_of("test"));
        let shown = config.to_toml();
        assert!(shown.contains("role = \"read\""), "{shown}");
        assert_eq!(Config::from_toml(&shown, "x", &Overrides::default()).unwrap(), config);
        let bad = "[gateway.tokens]\nops = { token = \"t\", role = \"root\" }\n";
        let message = Config::from_toml(bad, "x", &Overrides::default()).unwrap_err().to_string();
        assert!(message.contains("role \"root\" is not read, write or admin"), "{message}");
    }

    #[test]
    fn broken_seed_and_tokens_name_the_file_and_line() {
        let seed = seed_file("[api_tokens]\nweb1 = tok1\nno separator here\n");
        let message = with_seed("", &seed).unwrap_err().to_string();
        assert!(message.contains(&format!("{}:3", seed.path().display())), "{message}");
        let seed = seed_file("[DEFAULT]\nbantime.factor = 0.5\n");
        assert!(with_seed("", &seed).unwrap_err().to_string().contains("bantime.factor"));
        let seed = seed_file("");
        let bad_hash = with_seed("[gateway.tokens]\nweb1 = \"sha256:abc\"\n", &seed);
        assert!(bad_hash.unwrap_err().to_string().contains("64 hex digits"));
        for name in ["\"a@b\"", "\"web 1\"", "\"web\\t1\""] {
            let toml = format!("[gateway.tokens]\n{name} = \"tok\"\n");
            let message = with_seed(&toml, &seed).unwrap_err().to_string();
            assert!(message.contains("client name"), "{message}");
        }
        let seed = seed_file("[api_tokens]\nweb1 = tok1\nweb@2 = tok2\n");
        let message = with_seed("", &seed).unwrap_err().to_string();
        assert!(message.contains(&format!("{}:3", seed.path().display())), "{message}");
        assert!(message.contains("client name \"web@2\""), "{message}");
        let missing = Overrides {
            seed_config: Some("/nonexistent/serverconfig.ini".into()),
            ..Overrides::default()
        };
        let message = Config::from_toml("", "x", &missing).unwrap_err().to_string();
        assert!(message.contains("/nonexistent/serverconfig.ini"), "{message}");
    }
}
