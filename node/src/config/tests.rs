//! Unit tests of the configuration: the example is the defaults, each
//! validation error, the warnings, and how command-line overrides apply.

use std::path::{Path, PathBuf};
use std::time::Duration;

use banmesh_crdt::{BanPolicy, Key, Params};

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "/etc/banmesh/banmesh.toml", &Overrides::default())
}

fn refused(text: &str) -> (ConfigError, String) {
    let error = parse(text).expect_err("config accepted");
    let message = error.to_string();
    assert!(message.contains("/etc/banmesh/banmesh.toml"), "{message}");
    (error, message)
}

#[test]
fn example_parses_to_exactly_the_defaults() {
    let example = parse(EXAMPLE).expect("example");
    let empty = parse("").expect("empty");
    assert_eq!(example, empty);
    assert!(example.warnings.is_empty(), "{:?}", example.warnings);
    assert_eq!(example.cluster.params, Params::default());
    assert_eq!(example.bans, BanPolicy::default());
    assert_eq!(Config::load(None, &Overrides::default()).expect("built-in"), empty);
}

#[test]
fn defaults_are_the_documented_ones() {
    let config = parse("").expect("empty");
    let node = &config.node;
    assert_eq!(node.data_dir, Path::new("/var/lib/banmesh"));
    assert_eq!(node.node_key, Path::new("/var/lib/banmesh/node.key"));
    assert_eq!(node.node_cert, Path::new("/var/lib/banmesh/node.cert"));
    assert_eq!(node.store_path(), Path::new("/var/lib/banmesh/banmesh.db"));
    assert_eq!(node.socket, Path::new("/run/banmesh/banmesh.sock"));
    assert_eq!(node.listen, ["/ip4/0.0.0.0/tcp/4646", "/ip6/::/tcp/4646"]);
    assert!(node.peers.is_empty());
    assert_eq!(config.cluster.public_key, None);
    assert_eq!(config.safety.never_ban, Vec::<Key>::new());
    assert!(config.safety.enforce);
    assert_eq!(config.sync.interval, Duration::from_secs(30));
    assert_eq!(config.sync.hello_timeout, Duration::from_secs(10));
}

#[test]
fn to_toml_loads_back_to_the_same_config() {
    let text = r#"
        [node]
        data_dir = "/srv/banmesh"
        peers = ["/ip4/192.0.2.10/tcp/4646"]
        [cluster]
        public_key = "/etc/banmesh/cluster.pub"
        retention = "10d"
        [bans]
        bantime = "1d12h"
        bantime_factor = 2.5
        [safety]
        never_ban = ["192.0.2.7", "2001:db8::/32"]
        enforce = false
    "#;
    let config = parse(text).expect("config");
    assert_eq!(parse(&config.to_toml()).expect("round trip"), config);
    let defaults = parse("").expect("defaults");
    assert_eq!(parse(&defaults.to_toml()).expect("round trip"), defaults);
}

#[test]
fn unknown_keys_and_wrong_types_name_the_line() {
    let (error, message) = refused("[node]\ndata_dir = \"/x\"\nlisten_on = []\n");
    assert!(matches!(error, ConfigError::Parse { .. }));
    assert!(message.contains("listen_on"), "{message}");
    assert!(message.contains("line 3"), "{message}");
    let (_, message) = refused("[bans]\nbantime_factor = \"24\"\n");
    assert!(message.contains("line 2"), "{message}");
    let (_, message) = refused("[nodes]\n");
    assert!(message.contains("nodes"), "{message}");
    let (_, message) = refused("[node\n");
    assert!(message.contains("line 1"), "{message}");
}

#[test]
fn an_unreadable_file_is_named() {
    let error = Config::load(Some(Path::new("/nonexistent/banmesh.toml")), &Overrides::default())
        .expect_err("loaded");
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(error.to_string().contains("/nonexistent/banmesh.toml"));
}

#[test]
fn bad_durations_name_the_key() {
    for (text, key) in [
        ("[cluster]\nmax_ttl = \"5 weeks\"", "cluster.max_ttl"),
        ("[bans]\nbantime = \"3\"", "bans.bantime"),
        ("[bans]\nknown_duration = \"\"", "bans.known_duration"),
        ("[sync]\ninterval = \"1.5m\"", "sync.interval"),
    ] {
        let (error, message) = refused(text);
        assert!(matches!(error, ConfigError::Duration { .. }), "{message}");
        assert!(message.contains(key), "{message}");
    }
}

#[test]
fn zero_durations_are_refused_where_meaningless() {
    for (text, key) in [
        ("[cluster]\nmax_ttl = \"0s\"", "cluster.max_ttl"),
        ("[cluster]\nskew_bound = \"0m\"", "cluster.skew_bound"),
        ("[bans]\nbantime = \"0s\"", "bans.bantime"),
        ("[bans]\nbantime_maxtime = \"0s\"", "bans.bantime_maxtime"),
        ("[sync]\ninterval = \"0s\"", "sync.interval"),
        ("[sync]\nhello_timeout = \"0s\"", "sync.hello_timeout"),
    ] {
        let (error, message) = refused(text);
        assert!(matches!(error, ConfigError::Zero { .. }), "{message}");
        assert!(message.contains(key), "{message}");
    }
    let config = parse("[bans]\nallowed_duration = \"0s\"\nknown_duration = \"0s\"")
        .expect("zero windows are allowed");
    assert_eq!(config.bans.known_duration, Duration::ZERO);
}

#[test]
fn retention_must_cover_the_lifecycle() {
    let (error, message) = refused("[cluster]\nretention = \"2d\"");
    assert!(matches!(error, ConfigError::RetentionTooShort { .. }));
    for part in ["cluster.retention 2d", "2m", "2d", "2d2m"] {
        assert!(message.contains(part), "{part}: {message}");
    }
    parse("[cluster]\nretention = \"2d2m\"").expect("exactly enough");
}

#[test]
fn bantime_must_fit_in_max_ttl() {
    let (error, message) = refused("[cluster]\nmax_ttl = \"1d\"\n[bans]\nbantime = \"2d\"");
    assert!(matches!(error, ConfigError::BantimeAboveMaxTtl { .. }));
    assert!(message.contains("bans.bantime 2d") && message.contains("1d"), "{message}");
}

#[test]
fn bantime_factor_must_be_finite_and_at_least_one() {
    for factor in ["0.5", "0.0", "-2.0", "nan", "inf"] {
        let (error, message) = refused(&format!("[bans]\nbantime_factor = {factor}"));
        assert!(matches!(error, ConfigError::BadFactor { .. }), "{message}");
        assert!(message.contains("bans.bantime_factor"), "{message}");
    }
    parse("[bans]\nbantime_factor = 1.0").expect("factor 1");
}

#[test]
fn skew_bound_must_be_below_max_ttl() {
    let (error, message) = refused("[cluster]\nmax_ttl = \"1m\"\nskew_bound = \"1m\"");
    assert!(matches!(error, ConfigError::SkewAboveMaxTtl { .. }));
    assert!(message.contains("cluster.skew_bound"), "{message}");
}

#[test]
fn socket_path_must_fit_a_unix_socket() {
    let fits = format!("/{}", "s".repeat(SOCKET_PATH_MAX - 1));
    parse(&format!("[node]\nsocket = \"{fits}\"")).expect("107 bytes");
    let long = format!("/{}", "s".repeat(SOCKET_PATH_MAX));
    let (error, message) = refused(&format!("[node]\nsocket = \"{long}\""));
    assert!(matches!(error, ConfigError::SocketTooLong { len: 108, .. }));
    assert!(message.contains("107 bytes"), "{message}");
}

#[test]
fn never_ban_entries_are_keys() {
    let (error, message) = refused("[safety]\nnever_ban = [\"192.0.2.7\", \"10.0.0.0/33\"]");
    assert!(matches!(error, ConfigError::NeverBan { .. }));
    assert!(message.contains("10.0.0.0/33"), "{message}");
    let config = parse("[safety]\nnever_ban = [\"::ffff:192.0.2.7\", \"10.1.2.3/8\"]").expect("ok");
    let keys: Vec<String> = config.safety.never_ban.iter().map(Key::to_string).collect();
    assert_eq!(keys, ["192.0.2.7", "10.0.0.0/8"]);
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
}

#[test]
fn empty_addresses_and_paths_are_refused() {
    let (error, message) = refused("[node]\npeers = [\"/ip4/192.0.2.1/tcp/4646\", \" \"]");
    assert!(matches!(error, ConfigError::EmptyEntry { position: 2, .. }));
    assert!(message.contains("node.peers"), "{message}");
    let (error, _) = refused("[node]\nlisten = [\"\"]");
    assert!(matches!(error, ConfigError::EmptyEntry { key: "node.listen", .. }));
    let (error, _) = refused("[node]\ndata_dir = \"\"");
    assert!(matches!(error, ConfigError::EmptyPath { key: "node.data_dir", .. }));
    let (error, _) = refused("[node]\nnode_key = \"\"");
    assert!(matches!(error, ConfigError::EmptyPath { key: "node.node_key", .. }));
}

#[test]
fn maxtime_above_max_ttl_is_capped_with_a_warning() {
    let config =
        parse("[cluster]\nmax_ttl = \"2w\"\n[bans]\nbantime_maxtime = \"5w\"").expect("ok");
    assert_eq!(config.bans.maxtime, Duration::from_secs(14 * 86_400));
    assert_eq!(config.warnings.len(), 1);
    let warning = &config.warnings[0];
    assert!(warning.contains("bans.bantime_maxtime 5w"), "{warning}");
    assert!(warning.contains("cluster.max_ttl 2w"), "{warning}");
}

#[test]
fn data_dir_override_moves_default_key_and_cert() {
    let overrides = Overrides { data_dir: Some(PathBuf::from("/srv/bm")), ..Overrides::default() };
    let config =
        Config::from_toml("[node]\ndata_dir = \"/file/dir\"", "f", &overrides).expect("ok");
    assert_eq!(config.node.data_dir, Path::new("/srv/bm"));
    assert_eq!(config.node.node_key, Path::new("/srv/bm/node.key"));
    assert_eq!(config.node.node_cert, Path::new("/srv/bm/node.cert"));
    let config = parse("[node]\ndata_dir = \"/file/dir\"").expect("ok");
    assert_eq!(config.node.node_key, Path::new("/file/dir/node.key"));
}

#[test]
fn explicit_key_and_cert_stay_put_when_data_dir_moves() {
    let text = "[node]\nnode_key = \"/etc/bm/k\"\nnode_cert = \"/etc/bm/c\"";
    let overrides = Overrides { data_dir: Some(PathBuf::from("/srv/bm")), ..Overrides::default() };
    let config = Config::from_toml(text, "f", &overrides).expect("ok");
    assert_eq!(config.node.node_key, Path::new("/etc/bm/k"));
    assert_eq!(config.node.node_cert, Path::new("/etc/bm/c"));
}

#[test]
fn non_empty_lists_replace_and_empty_lists_keep_the_file() {
    let text = "[node]\nlisten = [\"/ip4/127.0.0.1/tcp/1\"]\npeers = [\"/ip4/192.0.2.1/tcp/1\"]";
    let keep = Config::from_toml(text, "f", &Overrides::default()).expect("ok");
    assert_eq!(keep.node.listen, ["/ip4/127.0.0.1/tcp/1"]);
    assert_eq!(keep.node.peers, ["/ip4/192.0.2.1/tcp/1"]);
    let overrides = Overrides {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        peers: vec!["/ip4/192.0.2.2/tcp/2".into(), "/ip4/192.0.2.3/tcp/3".into()],
        ..Overrides::default()
    };
    let replaced = Config::from_toml(text, "f", &overrides).expect("ok");
    assert_eq!(replaced.node.listen, ["/ip4/127.0.0.1/tcp/0"]);
    assert_eq!(replaced.node.peers, ["/ip4/192.0.2.2/tcp/2", "/ip4/192.0.2.3/tcp/3"]);
}

#[test]
fn socket_and_cluster_pub_overrides_are_validated_too() {
    let overrides = Overrides {
        socket: Some(PathBuf::from("/tmp/bm.sock")),
        cluster_pub: Some(PathBuf::from("/etc/bm/cluster.pub")),
        ..Overrides::default()
    };
    let config = Config::from_toml("[node]\nsocket = \"/x.sock\"", "f", &overrides).expect("ok");
    assert_eq!(config.node.socket, Path::new("/tmp/bm.sock"));
    assert_eq!(config.cluster.public_key.as_deref(), Some(Path::new("/etc/bm/cluster.pub")));
    let long = Overrides {
        socket: Some(PathBuf::from(format!("/{}", "s".repeat(200)))),
        ..Overrides::default()
    };
    let error = Config::from_toml("", "f", &long).expect_err("long socket");
    assert!(matches!(error, ConfigError::SocketTooLong { .. }));
}

#[test]
fn jail_filters_publish_and_apply() {
    let config =
        parse("[fail2ban]\npublish_jails = [\"sshd\"]\napply_jails = [\"sshd\", \"nginx\"]\n")
            .expect("ok");
    let f2b = &config.fail2ban;
    assert!(f2b.publishes("sshd"));
    assert!(!f2b.publishes("nginx"), "not listed");
    assert_eq!(f2b.apply_jails, ["sshd", "nginx"]);
    assert_eq!(parse(&config.to_toml()).expect("round trip"), config);
    let all = parse("").expect("defaults");
    assert!(all.fail2ban.publishes("anything"), "empty: every jail publishes");
    assert!(!all.fail2ban.publishes("banmesh"), "the mesh jail never publishes");
    let warned = parse("[fail2ban]\npublish_jails = [\"banmesh\"]\n").expect("ok");
    assert!(warned.warnings[0].contains("never published"), "{:?}", warned.warnings);
    assert!(!warned.fail2ban.publishes("banmesh"));
    let (_, message) = refused("[fail2ban]\napply_jails = [\"sshd\", \" \"]\n");
    assert!(message.contains("fail2ban.apply_jails"), "{message}");
}

#[test]
fn enforce_backends_follow_fail2ban_apply_unless_given() {
    assert!(parse("").expect("empty").enforce.backends.is_empty());
    let old = parse("[fail2ban]\napply = true").expect("apply");
    assert_eq!(old.enforce.backends, [Backend::Fail2Ban]);
    let nft = parse("[enforce]\nbackends = [\"nftables\"]").expect("nftables");
    assert_eq!(nft.enforce.backends, [Backend::Nftables]);
    assert!(!nft.fail2ban.apply);
    let both = parse("[enforce]\nbackends = [\"nftables\", \"fail2ban\"]").expect("both");
    assert_eq!(both.enforce.backends, [Backend::Fail2Ban, Backend::Nftables]);
    assert!(both.fail2ban.apply);
    let dropped = parse("[fail2ban]\napply = true\n[enforce]\nbackends = [\"nftables\"]").unwrap();
    assert!(!dropped.fail2ban.apply);
    assert!(dropped.warnings.iter().any(|w| w.contains("enforce.backends")), "{dropped:?}");
    assert_eq!(parse(&dropped.to_toml()).unwrap().enforce, dropped.enforce);
    let (_, message) = refused("[enforce]\nbackends = [\"iptables\"]");
    assert!(message.contains("unknown backend \"iptables\""), "{message}");
    let (_, message) = refused("[nftables]\ntable = \"ban mesh\"");
    assert!(message.contains("nftables.table"), "{message}");
    let nft = parse("[nftables]\npriority = -150\nforward = true\nreconcile = \"2s\"").unwrap();
    assert_eq!((nft.nftables.priority, nft.nftables.forward), (-150, true));
    assert_eq!(nft.nftables.reconcile, Duration::from_secs(2));
    assert_eq!(nft.nftables.table, "banmesh");
}
