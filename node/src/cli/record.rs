//! `banmesh record ...`: sign one record offline with a node key and check a
//! record the way a receiving node does (decode, signature, cluster rules,
//! certificate). For debugging gossip and for trying the record format.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use banmesh_crdt::duration::{format_duration, parse_duration};
use banmesh_crdt::state::decide_key;
use banmesh_crdt::{BanPolicy, HlcClock, Key, Kind, Metadata, Origin, Params, Record, Statement};
use banmesh_keys::files;
use banmesh_keys::time::format_rfc3339;
use banmesh_keys::{record_valid, sign_record, verify_record};
use clap::{Args, Subcommand, ValueEnum};

use super::keys::{now_ms, trust_files};

/// The `record` subcommands.
#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Sign one record with a node key and print it as hex.
    Sign(SignArgs),
    /// Decode a record and check it as a receiving node would.
    Check(CheckArgs),
}

/// A record kind on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Ban,
    Unban,
    Allow,
    Disallow,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Ban => Kind::Ban,
            KindArg::Unban => Kind::Unban,
            KindArg::Allow => Kind::Allow,
            KindArg::Disallow => Kind::Disallow,
        }
    }
}

/// Arguments of `record sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The node's secret key (node.key).
    #[arg(long, value_name = "FILE")]
    node_key: PathBuf,
    /// What the record says.
    #[arg(value_enum)]
    kind: KindArg,
    /// The address or network, e.g. 192.0.2.7 or 2001:db8::/48.
    #[arg(value_name = "IP|CIDR")]
    key: String,
    /// How long a ban or allow lasts (default: bantime 3m for a ban, max_ttl 5w for an allow).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Which repeat a ban is (Fail2BanSync's block_count).
    #[arg(long, default_value_t = 1)]
    strikes: u32,
    /// The Fail2Ban jail.
    #[arg(long, default_value = "")]
    jail: String,
    /// Why.
    #[arg(long, default_value = "")]
    reason: String,
}

/// Arguments of `record check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The cluster's public key (cluster.pub).
    #[arg(long, value_name = "FILE")]
    cluster_pub: PathBuf,
    /// The certificate of the record's origin.
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// A directory of revocation files.
    #[arg(long, value_name = "DIR")]
    revocations: Option<PathBuf>,
    /// The record as hex, or - to read it from standard input.
    #[arg(value_name = "HEX")]
    record: String,
}

/// Runs one `record` subcommand.
pub fn run(command: RecordCommand) -> anyhow::Result<()> {
    match command {
        RecordCommand::Sign(args) => sign(&args),
        RecordCommand::Check(args) => check(&args),
    }
}

fn sign(args: &SignArgs) -> anyhow::Result<()> {
    let secret = files::read_secret_key(&args.node_key)?;
    let parsed = Key::parse(&args.key)?;
    if let Some(note) = parsed.note(&args.key) {
        eprintln!("note: {note}");
    }
    let kind = Kind::from(args.kind);
    let params = Params::default();
    let now = now_ms()?;
    let issued_at = HlcClock::default().tick(now);
    let expires_at = if kind.expires() {
        let default = match kind {
            Kind::Ban => BanPolicy::default().bantime_for(args.strikes),
            _ => Duration::from_millis(params.max_ttl_ms),
        };
        let ttl = args.duration.unwrap_or(default);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        Some(issued_at.millis().saturating_add(ttl_ms))
    } else {
        if args.duration.is_some() {
            bail!("--for applies to ban and allow only: a {kind} acts at once and does not expire");
        }
        None
    };
    let statement = Statement {
        key: parsed.key,
        kind,
        issued_at,
        expires_at,
        strikes: if kind == Kind::Ban { args.strikes } else { 0 },
        meta: Metadata {
            jail: args.jail.clone(),
            reason: args.reason.clone(),
            source: "cli".into(),
        },
        origin: Origin::default(),
    };
    statement.validate(&params)?;
    let record = sign_record(&secret, statement);
    println!("{}", hex::encode(record.encode()));
    Ok(())
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let (cluster, cert, revocations) =
        trust_files(&args.cluster_pub, &args.cert, args.revocations.as_deref())?;
    let text = if args.record == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
        text
    } else {
        args.record.clone()
    };
    let bytes = hex::decode(text.trim()).context("the record is not hex")?;
    let record = Record::decode(&bytes)?;
    print_record(&record);
    let now = now_ms()?;
    verify_record(&record)?;
    record.statement().validate(&Params::default())?;
    cert.verify_signature(&cluster)?;
    record_valid(&record, &cert, &revocations)?;
    let decision = decide_key([&record], now);
    let state = match (decision.banned, decision.allowed) {
        (Some(b), _) => format!("bans {} until {}", record.key(), format_rfc3339(b.until_ms)),
        (_, Some(a)) => format!("allows {} until {}", record.key(), format_rfc3339(a.until_ms)),
        _ if record.kind().expires() => "has expired".to_owned(),
        _ => format!("lifts older {}s on {}", lifted(record.kind()), record.key()),
    };
    println!("valid: signed by {} ({}); alone, it {state}", cert.name(), cert.node().short());
    Ok(())
}

fn lifted(kind: Kind) -> &'static str {
    if kind == Kind::Unban { "ban" } else { "allow" }
}

fn print_record(record: &Record) {
    let s = record.statement();
    let issued_ms = s.issued_at.millis();
    let mut lines = vec![
        ("kind", s.kind.to_string()),
        ("key", s.key.to_string()),
        ("issued at", format!("{} ({})", format_rfc3339(issued_ms), s.issued_at)),
    ];
    if let Some(at) = s.expires_at {
        let ttl = Duration::from_millis(at.saturating_sub(issued_ms));
        lines.push((
            "expires at",
            format!("{} (after {})", format_rfc3339(at), format_duration(ttl)),
        ));
    }
    if s.kind == Kind::Ban {
        lines.push(("strikes", s.strikes.to_string()));
    }
    lines.extend([
        ("jail", s.meta.jail.clone()),
        ("reason", s.meta.reason.clone()),
        ("source", s.meta.source.clone()),
        ("origin", s.origin.to_string()),
        ("id", record.id().to_string()),
    ]);
    for (label, value) in lines {
        println!("{:<12}{value}", format!("{label}:"));
    }
}
