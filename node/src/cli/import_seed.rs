//! `banmesh import-seed`: turns a Fail2BanSync server's `ip_management.db`
//! (opened read-only) into records issued by the running node, in
//! `Command::Issue` batches, and reports every row it skips and why.
//!
//! Records cannot be backdated (the node's clock and its certificate window
//! decide `issued_at`), so a ban that already ended is recorded as a 1 ms
//! ban ending now that carries the row's `block_count`: escalation goes on,
//! and the gateway lists such an address as allowed, then known, from now.

mod plan;
mod seed_db;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use banmesh_crdt::duration::format_duration;
use banmesh_keys::time::format_rfc3339;
use clap::Args;
use serde_json::json;

use self::plan::{Action, ENDED_BAN_MS, RowPlan, Windows};
use super::control::Connect;
use crate::clock;
use crate::config::seed::Seed;
use crate::control::OrderSpec;
use crate::control::protocol::{MAX_ISSUE_BATCH, MAX_REQUEST_FRAME};

/// Largest encoded batch of orders sent in one call, leaving room in the
/// request frame for the envelope.
const MAX_BATCH_BYTES: usize = MAX_REQUEST_FRAME - 64 * 1024;

/// `banmesh import-seed DB`.
#[derive(Debug, Args)]
pub struct ImportSeedArgs {
    /// The old server's database (ip_management.db); opened read-only.
    db: PathBuf,
    /// The old server's serverconfig.ini, for allowed_duration and
    /// known_duration in its [DEFAULT] section (default: 2m and 48h).
    #[arg(long, value_name = "FILE")]
    seed_config: Option<PathBuf>,
    /// Show what would be issued for each row; send nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    connect: Connect,
}

/// Reads the database, issues its rows on the node (unless `--dry-run`)
/// and prints what became of each row. Fails when a row failed on the node.
pub fn run(args: ImportSeedArgs) -> anyhow::Result<()> {
    let windows = read_windows(args.seed_config.as_deref())?;
    let db = seed_db::SeedDb::open(&args.db)?;
    let rows = db.rows()?;
    let mut plans = plan::plan(&rows, clock::now_ms(), windows);
    if !args.dry_run {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(issue(&args.connect.socket, &mut plans))?;
    }
    let summary = Summary::of(&plans);
    if args.connect.json {
        let out = json!({"dry_run": args.dry_run, "rows": plans, "summary": summary});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", text(&plans, &summary, windows, args.dry_run));
    }
    anyhow::ensure!(
        summary.failed == 0,
        "{} row(s) failed on the node (listed above); importing again issues them again",
        summary.failed
    );
    Ok(())
}

/// What `run --dry-run` does with rows holding `values` (in the columns'
/// order: id, ip_address, description, status, reported_by, blocked_until,
/// allowed_since, block_count, jail), read from an in-memory database, at
/// `now_ms`: the text report. For the fuzz targets.
#[cfg(feature = "fuzzing")]
pub fn fuzz_rows(values: &[[rusqlite::types::Value; 9]], now_ms: u64) -> anyhow::Result<String> {
    let db = seed_db::SeedDb::in_memory(values)?;
    let rows = db.rows()?;
    let plans = plan::plan(&rows, now_ms, Windows::default());
    for plan in &plans {
        let _ = plan.orders(now_ms);
    }
    let summary = Summary::of(&plans);
    serde_json::to_string(&json!({"rows": plans, "summary": summary}))?;
    Ok(text(&plans, &summary, Windows::default(), true))
}

/// `allowed_duration` and `known_duration` from `[DEFAULT]` of the old
/// server's `serverconfig.ini` (read as the gateway reads it), or the old
/// server's defaults.
fn read_windows(path: Option<&Path>) -> anyhow::Result<Windows> {
    let defaults = Windows::default();
    let Some(path) = path else { return Ok(defaults) };
    let seed = Seed::load(path)?;
    let ms = |d: Option<Duration>, default| {
        d.map_or(default, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    Ok(Windows {
        allowed_ms: ms(seed.allowed_duration, defaults.allowed_ms),
        known_ms: ms(seed.known_duration, defaults.known_ms),
    })
}

/// Sends the rows' orders in batches of whole rows, at most
/// [`MAX_ISSUE_BATCH`] orders and [`MAX_BATCH_BYTES`] each, and records each
/// row's errors in its plan.
async fn issue(socket: &Path, plans: &mut [RowPlan]) -> anyhow::Result<()> {
    let mut start = 0;
    while start < plans.len() {
        let now = clock::now_ms();
        let (mut orders, mut owners, mut bytes) = (Vec::new(), Vec::new(), 0);
        let mut end = start;
        while end < plans.len() {
            let row_orders = plans[end].orders(now);
            let row_bytes: usize =
                row_orders.iter().map(|o| serde_json::to_vec(o).map_or(0, |v| v.len() + 1)).sum();
            let full = orders.len() + row_orders.len() > MAX_ISSUE_BATCH
                || bytes + row_bytes > MAX_BATCH_BYTES;
            if full && !orders.is_empty() {
                break;
            }
            owners.extend(std::iter::repeat_n(end, row_orders.len()));
            orders.extend(row_orders);
            bytes += row_bytes;
            end += 1;
        }
        if !orders.is_empty() {
            send(socket, orders, &owners, plans, start).await?;
        }
        start = end;
    }
    Ok(())
}

async fn send(
    socket: &Path,
    orders: Vec<OrderSpec>,
    owners: &[usize],
    plans: &mut [RowPlan],
    first: usize,
) -> anyhow::Result<()> {
    let done = || match first {
        0 => "nothing was imported".to_owned(),
        _ => format!("the rows before row {} were imported", plans[first].row),
    };
    let items = super::issue_batch::send(socket, orders, done).await?;
    for (item, &owner) in items.iter().zip(owners) {
        if let Some(why) = &item.skipped {
            plans[owner].notes.push(format!("the ban was not recorded: {why}"));
        }
        if let Some(error) = &item.error {
            let plan = &mut plans[owner];
            let joined = match plan.error.take() {
                Some(before) => format!("{before}; {error}"),
                None => error.clone(),
            };
            plan.error = Some(joined);
        }
    }
    Ok(())
}

/// The counts printed at the end.
#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    /// Rows in the database.
    rows: usize,
    /// Rows imported, by stored status.
    imported: BTreeMap<String, usize>,
    /// Imported rows whose ban had already ended (recorded as ending now).
    ended_now: usize,
    /// Rows skipped, by kind of problem.
    skipped: BTreeMap<String, usize>,
    /// Rows some order of which the node refused.
    failed: usize,
}

impl Summary {
    fn of(plans: &[RowPlan]) -> Summary {
        let mut summary = Summary { rows: plans.len(), ..Summary::default() };
        for plan in plans {
            match &plan.action {
                Action::Skipped { category, .. } => {
                    *summary.skipped.entry(category.clone()).or_default() += 1;
                }
                _ if plan.error.is_some() => summary.failed += 1,
                action => {
                    let status = plan.status.trim().to_ascii_lowercase();
                    *summary.imported.entry(status).or_default() += 1;
                    if matches!(action, Action::Ended { .. }) {
                        summary.ended_now += 1;
                    }
                }
            }
        }
        summary
    }
}

/// The report for a person: every row that needs a word (skipped, failed,
/// changed; every row in a dry run), then the summary.
fn text(plans: &[RowPlan], summary: &Summary, windows: Windows, dry_run: bool) -> String {
    let mut out = String::new();
    if dry_run {
        out.push_str("dry run: nothing is sent to the node\n");
    }
    for plan in plans {
        let head = format!("row {} ({}, {})", plan.row, plan.ip_address, plan.status);
        let mut line = match (&plan.action, &plan.error) {
            (Action::Skipped { category, reason }, _) => {
                format!("{head}: skipped ({category}): {reason}")
            }
            (_, Some(error)) => format!("{head}: failed on the node: {error}"),
            (action, None) if dry_run || !plan.notes.is_empty() => {
                format!("{head}: {}", describe(plan, action))
            }
            _ => continue,
        };
        for note in &plan.notes {
            line.push_str(&format!("; note: {note}"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    let joined = |map: &BTreeMap<String, usize>| {
        let parts: Vec<String> = map.iter().map(|(k, n)| format!("{n} {k}")).collect();
        if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
    };
    let imported: usize = summary.imported.values().sum();
    let verb = if dry_run { "would import" } else { "imported" };
    out.push_str(&format!(
        "{verb} {imported} of {} row(s): {}\n",
        summary.rows,
        joined(&summary.imported)
    ));
    if summary.ended_now > 0 {
        let (allowed, known) = (ms(windows.allowed_ms), ms(windows.known_ms));
        out.push_str(&format!(
            "  {} of them had already ended (known rows, bans past blocked_until, allowed windows \
             past): records cannot be backdated, so each is a {ENDED_BAN_MS} ms ban ending now \
             with its block_count as strikes; gateways list them as allowed for {allowed}, then \
             known for {known}, counted from now\n",
            summary.ended_now
        ));
    }
    let skipped: usize = summary.skipped.values().sum();
    out.push_str(&format!("skipped {skipped} row(s): {}\n", joined(&summary.skipped)));
    if summary.failed > 0 {
        out.push_str(&format!("failed {} row(s) on the node\n", summary.failed));
    }
    out
}

fn describe(plan: &RowPlan, action: &Action) -> String {
    let key = plan.key.as_deref().unwrap_or("-");
    let strikes = plan.strikes;
    match action {
        Action::Ban { until_ms } => {
            format!("ban {key} until {}, strikes {strikes}", format_rfc3339(*until_ms))
        }
        Action::Allow { until_ms } => format!(
            "ban {key} for {ENDED_BAN_MS} ms with strikes {strikes}, then allow it until {}",
            format_rfc3339(*until_ms)
        ),
        Action::Ended { ended_ms } => format!(
            "ended{}: ban {key} for {ENDED_BAN_MS} ms with strikes {strikes} (ending now)",
            ended_ms.map(|at| format!(" {}", format_rfc3339(at))).unwrap_or_default()
        ),
        Action::Skipped { reason, .. } => format!("skipped: {reason}"),
    }
}

fn ms(millis: u64) -> String {
    format_duration(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_seed_reads_the_lifecycle_windows_from_default_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("serverconfig.ini");
        let ini = "[DEFAULT]\nbantime = 3m\nallowed_duration = 5m\nKnown_Duration: 1d\n\
                   [api_tokens]\nweb1 = secret\n";
        std::fs::write(&path, ini).expect("write");
        let windows = read_windows(Some(&path)).expect("read");
        assert_eq!(windows, Windows { allowed_ms: 5 * 60_000, known_ms: 86_400_000 });
        std::fs::write(&path, "[DEFAULT]\nbantime = 3m\n").expect("write");
        assert_eq!(read_windows(Some(&path)).expect("defaults"), Windows::default());
        std::fs::write(&path, "[DEFAULT]\nknown_duration = soon\n").expect("write");
        let error = format!("{:#}", read_windows(Some(&path)).expect_err("refused"));
        assert!(
            error.contains("known_duration") && error.contains("serverconfig.ini:2"),
            "{error}"
        );
        assert_eq!(read_windows(None).expect("defaults"), Windows::default());
    }
}
