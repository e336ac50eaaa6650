//! `banmesh import FILE`: bans every address and network of a public
//! blocklist (see [`crate::blocklist`] for the formats) through the running
//! node, in [`Command::Issue`] batches, so the mesh carries them by gossip
//! and sync. Bad lines are reported by number and the good ones kept.
//!
//! Each ban records its list in the record's `source` field, as
//! `import:NAME` (NAME: `--replace-source`, else `--source`, else the file's
//! name). Records are kept one per key and origin, latest wins, so importing
//! the same list again renews its bans rather than adding records.
//! `--replace-source NAME` also unbans the entries this node last banned
//! for that source and the new copy no longer lists (see [`replace`]).

mod batch;
mod never;
mod progress;
mod replace;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use banmesh_crdt::Key;
use banmesh_crdt::duration::parse_duration;
use clap::Args;
use serde_json::json;

use self::batch::Batcher;
use self::never::Verdict;
use self::progress::Progress;
use super::control::Connect;
use crate::blocklist::{Entry, LineError, LineReader, parse_line};

/// `banmesh import`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  banmesh import drop.txt --for 2d --reason \"Spamhaus DROP\"
  curl -s https://lists.blocklist.de/lists/all.txt | banmesh import - --replace-source blocklist.de")]
pub struct ImportArgs {
    /// The list: a file, or - for standard input.
    file: PathBuf,
    /// How long each ban lasts (re-import before it ends to keep it).
    #[arg(long = "for", value_name = "DURATION", default_value = "1d", value_parser = parse_duration)]
    lasting: Duration,
    /// The jail to record on each ban.
    #[arg(long, value_name = "J", default_value = "blocklist")]
    jail: String,
    /// Why, recorded on each ban.
    #[arg(long, value_name = "R")]
    reason: Option<String>,
    /// Name the list (recorded as `import:NAME`; default: the file's name).
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// Name the list and unban what this node banned for it before and the
    /// new copy no longer lists.
    #[arg(long, value_name = "NAME", conflicts_with = "source")]
    replace_source: Option<String>,
    #[command(flatten)]
    connect: Connect,
}

/// What became of the lines, printed at the end.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Entries the node issued a ban for.
    pub imported: u64,
    /// Lines that are no entry (reported by number).
    pub bad: u64,
    /// Entries refused: inside the node's never-ban list, or refused by the
    /// node (its certificate's prefixes, ...).
    pub refused: u64,
    /// Entries this node already bans for longer: left standing (a node
    /// keeps one Ban per key, so the import's would shorten it).
    pub kept_longer: u64,
    /// Entries listed twice in the file (banned once).
    pub duplicates: u64,
    /// Entries gone from the list and unbanned (`--replace-source`).
    pub unbanned: u64,
}

/// Reads the list, bans its entries on the node and prints the summary.
pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(import(&args))?;
    if args.connect.json {
        println!("{}", serde_json::to_string_pretty(&json!(summary))?);
    } else {
        println!(
            "imported {}, bad {}, refused {}, kept longer {}, duplicates {}, unbanned {} ({} lines)",
            summary.imported,
            summary.bad,
            summary.refused,
            summary.kept_longer,
            summary.duplicates,
            summary.unbanned,
            summary.lines
        );
    }
    Ok(())
}

fn source_name(args: &ImportArgs) -> String {
    let name = args.replace_source.clone().or_else(|| args.source.clone()).unwrap_or_else(|| {
        match args.file.to_str() {
            Some("-") => "stdin".to_owned(),
            _ => args.file.file_name().map_or("list".into(), |n| n.to_string_lossy().into()),
        }
    });
    format!("import:{name}")
}

async fn import(args: &ImportArgs) -> anyhow::Result<Summary> {
    let (input, size): (Box<dyn BufRead>, Option<u64>) = if args.file.to_str() == Some("-") {
        (Box::new(BufReader::with_capacity(1 << 16, std::io::stdin())), None)
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 16, file)), size)
    };
    let source = source_name(args);
    let spec = batch::Spec {
        duration_ms: u64::try_from(args.lasting.as_millis()).unwrap_or(u64::MAX),
        jail: args.jail.clone(),
        reason: args.reason.clone().unwrap_or_default(),
        source: source.clone(),
    };
    let never_ban = never::fetch(&args.connect.socket).await?;
    let batcher = Batcher::new(&args.connect.socket, spec);
    let progress = Progress::new(size);
    let mut reader = LineReader::new(input);
    let mut state = State { batcher, progress, seen: HashSet::new(), never_ban };
    let mut buf = Vec::new();
    while let Some(line) = reader.next_line(&mut buf).context("cannot read the list")? {
        let parsed = if line.too_long { Err(LineError::TooLong) } else { parse_line(&buf) };
        state.take(line.number, parsed).await?;
        state.batcher.summary.lines = line.number;
        state.progress.update(reader.consumed(), &state.batcher.summary);
    }
    let State { mut batcher, mut progress, seen, .. } = state;
    batcher.flush(&mut progress).await?;
    if args.replace_source.is_some() {
        // An empty or unreadable copy (a failed download) must not unban the list.
        anyhow::ensure!(
            !seen.is_empty(),
            "the list holds no entry: nothing is unbanned for --replace-source"
        );
        let gone = replace::gone(&args.connect.socket, &source, &seen).await?;
        drop(seen);
        batcher.unban(gone, &mut progress).await?;
    }
    progress.finish(&batcher.summary);
    Ok(batcher.summary)
}

/// An import under way: the batch being filled, the keys seen so far.
struct State {
    batcher: Batcher,
    progress: Progress,
    seen: HashSet<Key>,
    never_ban: Vec<ipnet::IpNet>,
}

impl State {
    /// Counts, reports or sends the entry of line `number`.
    async fn take(
        &mut self,
        number: u64,
        parsed: Result<Option<Entry>, LineError>,
    ) -> anyhow::Result<()> {
        let entry = match parsed {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(()),
            Err(error) => {
                self.batcher.summary.bad += 1;
                self.progress.println(&format!("line {number}: {error}"));
                return Ok(());
            }
        };
        if !self.seen.insert(entry.key) {
            self.batcher.summary.duplicates += 1;
            return Ok(());
        }
        let key = entry.key;
        match never::verdict(&self.never_ban, key) {
            Verdict::Inside(net) => {
                self.batcher.summary.refused += 1;
                let why = format!("inside the node's never-ban network {net}");
                self.progress.println(&format!("line {number}: {key} refused: {why}"));
                return Ok(());
            }
            Verdict::Covers(net) => self.progress.println(&format!(
                "line {number}: note: {key} covers the never-ban network {net}, which stays unbanned"
            )),
            Verdict::Clear => {}
        }
        self.batcher.push(key, number, &mut self.progress).await
    }
}
