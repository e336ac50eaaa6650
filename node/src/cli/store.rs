//! `banmesh store check`: opens a stopped node's store as the node would at
//! start (schema migration), always with the integrity check a start skips
//! after a clean close, and reports what it holds;
//! it also decodes every record and checks the index built from them is
//! the one the node builds from the summary columns.

use std::path::PathBuf;

use crate::store::{DB_FILE, Db, SCHEMA_VERSION, query};
use anyhow::bail;
use banmesh_crdt::Params;
use clap::{Args, Subcommand};
use serde_json::json;

use super::keys::now_ms;

/// The `store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Open the store as the node would at start, and report what it holds.
    Check(CheckArgs),
}

/// Arguments of `store check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The node's data directory (the store is DIR/banmesh.db).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs one `store` subcommand.
pub fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Check(args) => check(&args),
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let path = args.data_dir.join(DB_FILE);
    if !path.exists() {
        bail!("no store at {}: a node creates it on its first start", path.display());
    }
    let db = Db::open_checked(&path, Params::default())?;
    let counts = query::counts(db.conn(), &path)?;
    let now = now_ms()?;
    let index = db.build_index(now)?;
    if !index.same_as(&db.build_index_full(now)?) {
        bail!(
            "the index built from {}'s summary columns differs from the one built from its \
             records: please report this as a bug",
            path.display()
        );
    }
    let live = index.live(now).count();
    if args.json {
        let report = json!({
            "path": path, "schema_version": SCHEMA_VERSION, "integrity": "ok",
            "counts": counts, "live_keys": live,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let [ban, unban, allow, disallow] = counts.by_kind;
    println!("store:        {} (schema {SCHEMA_VERSION}, integrity ok)", path.display());
    println!(
        "records:      {} ({ban} ban, {unban} unban, {allow} allow, {disallow} disallow)",
        counts.records
    );
    println!("origins:      {} ({} revoked)", counts.origins, counts.revocations);
    println!("certificates: {}", counts.certificates);
    println!("live keys:    {live} banned or allowed now");
    Ok(())
}
