//! What each row of an old server's database becomes, decided with `now` as
//! a parameter: its status as the old server would see it now (its expiry
//! is lazy, so a stored status may be stale), the orders that make the
//! gateway list it the same way, or why it is skipped.

use std::collections::HashMap;

use banmesh_crdt::Key;
use banmesh_crdt::duration::format_duration;
use banmesh_crdt::record::{MAX_JAIL, MAX_REASON, MAX_SOURCE};
use serde::Serialize;

use super::seed_db::{SeedRow, Stamp};
use crate::control::OrderSpec;

/// How long a record that must end at once lasts: records cannot be
/// backdated, so a ban that already ended is recorded as ending now.
pub const ENDED_BAN_MS: u64 = 1;

/// The old server's lifecycle settings (`[DEFAULT]` of `serverconfig.ini`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// `allowed_duration`: how long an address stays allowed.
    pub allowed_ms: u64,
    /// `known_duration`: how long after its ban ended an address is kept.
    pub known_ms: u64,
}

impl Default for Windows {
    /// The old server's defaults: `2m` and `48h`.
    fn default() -> Windows {
        Windows { allowed_ms: 2 * 60_000, known_ms: 48 * 3_600_000 }
    }
}

/// What becomes of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// A Ban until `until_ms` (a live `blocked` row).
    Ban {
        /// When the ban ends (Unix ms).
        until_ms: u64,
    },
    /// A 1 ms Ban carrying `block_count`, then an Allow until `until_ms` (an
    /// `allowed` row within its window).
    Allow {
        /// When the allowed window ends (Unix ms).
        until_ms: u64,
    },
    /// A 1 ms Ban carrying `block_count` (a `known` row, or one whose ban or
    /// allowed window has passed): the gateway lists it as allowed for
    /// `allowed_duration`, then known for `known_duration`, from now.
    Ended {
        /// When its ban ended, if the row says.
        ended_ms: Option<u64>,
    },
    /// Nothing is issued.
    Skipped {
        /// The kind of problem (`invalid address`, `bad timestamp`, ...).
        category: String,
        /// The problem, for a person.
        reason: String,
    },
}

/// One row and what becomes of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowPlan {
    /// The row's `id`.
    pub row: i64,
    /// `ip_address` as stored.
    pub ip_address: String,
    /// `status` as stored.
    pub status: String,
    /// The canonical key, unless the address is invalid.
    pub key: Option<String>,
    /// `block_count`, as the Ban's strikes.
    pub strikes: u32,
    /// What is issued.
    #[serde(flatten)]
    pub action: Action,
    /// Changes made on the way (key normalised, text shortened, merged rows).
    pub notes: Vec<String>,
    /// Why the node refused an order of this row, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `jail`, `description` and `reported_by`, cleaned to the record limits.
    #[serde(skip)]
    meta: (String, String, String),
}

impl RowPlan {
    /// Whether the row is skipped.
    pub fn skipped(&self) -> bool {
        matches!(self.action, Action::Skipped { .. })
    }

    /// The orders that record this row, in the order to issue them.
    pub fn orders(&self, now_ms: u64) -> Vec<OrderSpec> {
        let Some(key) = &self.key else { return Vec::new() };
        let (jail, reason, source) = self.meta.clone();
        let order = |kind: &str, duration_ms: u64| OrderSpec {
            kind: kind.to_owned(),
            key: key.clone(),
            duration_ms: Some(duration_ms.max(1)),
            strikes: if kind == "ban" { self.strikes } else { 1 },
            jail: jail.clone(),
            reason: reason.clone(),
            source: source.clone(),
            keep_longer: true,
            ..OrderSpec::default()
        };
        match self.action {
            Action::Ban { until_ms } => vec![order("ban", until_ms.saturating_sub(now_ms))],
            Action::Allow { until_ms } => {
                vec![order("ban", ENDED_BAN_MS), order("allow", until_ms.saturating_sub(now_ms))]
            }
            Action::Ended { .. } => vec![order("ban", ENDED_BAN_MS)],
            Action::Skipped { .. } => Vec::new(),
        }
    }
}

/// Plans every row, then merges rows that name the same key (the old
/// server stored `2001:db8::1` and `2001:DB8:0::1` as two rows).
pub fn plan(rows: &[SeedRow], now_ms: u64, windows: Windows) -> Vec<RowPlan> {
    let mut plans: Vec<RowPlan> = rows.iter().map(|r| plan_row(r, now_ms, windows)).collect();
    merge_duplicates(&mut plans);
    plans
}

fn skip(category: &str, reason: String) -> Action {
    Action::Skipped { category: category.to_owned(), reason }
}

fn plan_row(row: &SeedRow, now_ms: u64, windows: Windows) -> RowPlan {
    let mut notes = Vec::new();
    let (jail, reason, source) = (
        clean("jail", &row.jail, MAX_JAIL, &mut notes),
        clean("description", &row.description, MAX_REASON, &mut notes),
        clean("reported_by", &row.reported_by, MAX_SOURCE, &mut notes),
    );
    let mut plan = RowPlan {
        row: row.id,
        ip_address: row.ip.clone(),
        status: row.status.clone(),
        key: None,
        strikes: 1,
        action: Action::Ended { ended_ms: None },
        notes,
        error: None,
        meta: (jail, reason, source),
    };
    match Key::parse(&row.ip) {
        Ok(parsed) => {
            plan.key = Some(parsed.key.to_string());
            plan.notes.extend(parsed.note(&row.ip));
        }
        Err(_) => {
            let why = format!("{:?} is not an IP address or network", row.ip);
            plan.action = skip("invalid address", why);
            return plan;
        }
    }
    plan.action = match (&row.block_count, decide(row, now_ms, windows)) {
        (Err(text), _) => skip("bad block_count", format!("block_count {text:?} is not a number")),
        (_, Err(action)) => action,
        (Ok(count), Ok(action)) => {
            plan.strikes = u32::try_from((*count).max(1)).unwrap_or(u32::MAX);
            action
        }
    };
    plan
}

/// The row's state now, as the old server's lazy expiry would find it.
fn decide(row: &SeedRow, now_ms: u64, windows: Windows) -> Result<Action, Action> {
    let stamp = |name: &str, stamp: &Stamp| match stamp {
        Stamp::Missing => Ok(None),
        Stamp::At(ms) => Ok(Some(*ms)),
        Stamp::Bad(text) => Err(skip(
            "bad timestamp",
            format!("{name} {text:?} is not a timestamp like 2026-11-25 12:56:08.123456"),
        )),
    };
    let blocked_until = stamp("blocked_until", &row.blocked_until)?;
    let allowed_since = stamp("allowed_since", &row.allowed_since)?;
    let missing = |name: &str| {
        skip("missing timestamp", format!("a {} row without {name}", row.status.trim()))
    };
    // A ban released by hand ended when it was allowed; one that ran out,
    // at blocked_until.
    let ended_ms = [blocked_until, allowed_since].into_iter().flatten().min();
    let action = match row.status.trim().to_ascii_lowercase().as_str() {
        "blocked" => match blocked_until {
            None => return Err(missing("blocked_until")),
            Some(until_ms) if until_ms > now_ms => Action::Ban { until_ms },
            Some(until_ms) => Action::Ended { ended_ms: Some(until_ms) },
        },
        "allowed" => match allowed_since {
            None => return Err(missing("allowed_since")),
            Some(since) => {
                let until_ms = since.saturating_add(windows.allowed_ms);
                if until_ms > now_ms {
                    Action::Allow { until_ms }
                } else {
                    Action::Ended { ended_ms }
                }
            }
        },
        "known" => Action::Ended { ended_ms },
        _ => {
            let why = format!("status {:?} is not blocked, allowed or known", row.status);
            return Err(skip("unknown status", why));
        }
    };
    match action {
        Action::Ended { ended_ms: Some(ended) }
            if ended.saturating_add(windows.known_ms) <= now_ms =>
        {
            let known = format_duration(std::time::Duration::from_millis(windows.known_ms));
            Err(skip(
                "forgotten",
                format!(
                    "its ban ended more than known_duration ({known}) ago: the old server deletes such rows"
                ),
            ))
        }
        action => Ok(action),
    }
}

/// Control characters become spaces; text past the record's limit is cut
/// at a character boundary, with a note.
fn clean(field: &str, text: &str, max: usize, notes: &mut Vec<String>) -> String {
    let mut out: String =
        text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    out = out.trim().to_owned();
    if out.len() > max {
        let mut end = max;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        notes.push(format!("{field} shortened to {max} bytes"));
    }
    out
}

/// Keeps one row per key: a live allow over a live ban over an ended one,
/// the later end among equals; the kept row carries the highest
/// `block_count` of them all and the others are skipped as duplicates.
fn merge_duplicates(plans: &mut [RowPlan]) {
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, plan) in plans.iter().enumerate() {
        if let (Some(key), false) = (&plan.key, plan.skipped()) {
            groups.entry(key.clone()).or_default().push(i);
        }
    }
    for members in groups.values().filter(|m| m.len() > 1) {
        let rank = |p: &RowPlan| match p.action {
            Action::Allow { until_ms } => (2, until_ms),
            Action::Ban { until_ms } => (1, until_ms),
            _ => (0, 0),
        };
        let Some(&kept) = members.iter().max_by_key(|&&i| (rank(&plans[i]), std::cmp::Reverse(i)))
        else {
            continue;
        };
        let strikes = members.iter().map(|&i| plans[i].strikes).max().unwrap_or(1);
        let (kept_row, kept_ip) = (plans[kept].row, plans[kept].ip_address.clone());
        let mut merged = Vec::new();
        for &i in members.iter().filter(|&&i| i != kept) {
            merged.push(plans[i].row.to_string());
            let why = format!("the same address as row {kept_row} ({kept_ip}), imported once");
            plans[i].action = skip("duplicate", why);
        }
        plans[kept].strikes = strikes;
        plans[kept].notes.push(format!(
            "merged with row(s) {} (the same address), block_count {strikes}",
            merged.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;
    const MIN: u64 = 60_000;

    fn row(id: i64, ip: &str, status: &str, until: Stamp, since: Stamp, count: i64) -> SeedRow {
        SeedRow {
            id,
            ip: ip.to_owned(),
            description: "ssh brute force".to_owned(),
            status: status.to_owned(),
            reported_by: "web1@10.0.0.5".to_owned(),
            blocked_until: until,
            allowed_since: since,
            block_count: Ok(count),
            jail: "sshd".to_owned(),
        }
    }

    fn action(plans: &[RowPlan], id: i64) -> &Action {
        &plans.iter().find(|p| p.row == id).expect("row planned").action
    }

    fn category(plans: &[RowPlan], id: i64) -> String {
        match action(plans, id) {
            Action::Skipped { category, .. } => category.clone(),
            other => panic!("row {id} not skipped: {other:?}"),
        }
    }

    #[test]
    fn import_seed_maps_each_status_as_the_old_server_would_see_it_now() {
        use Stamp::{At, Missing};
        let rows = [
            row(1, "192.0.2.1", "blocked", At(NOW + 10 * MIN), Missing, 3),
            row(2, "192.0.2.2", "blocked", At(NOW - MIN), Missing, 1),
            row(3, "192.0.2.3", "allowed", At(NOW - MIN), At(NOW - MIN), 2),
            row(4, "192.0.2.4", "allowed", At(NOW - 10 * MIN), At(NOW - 10 * MIN), 2),
            row(5, "192.0.2.5", "known", At(NOW - 60 * MIN), Missing, 4),
            row(6, "192.0.2.6", "known", At(NOW - 49 * 60 * MIN), Missing, 4),
            row(7, "192.0.2.7", "known", Missing, Missing, 2),
        ];
        let plans = plan(&rows, NOW, Windows::default());
        assert_eq!(action(&plans, 1), &Action::Ban { until_ms: NOW + 10 * MIN });
        assert_eq!(action(&plans, 2), &Action::Ended { ended_ms: Some(NOW - MIN) });
        assert_eq!(action(&plans, 3), &Action::Allow { until_ms: NOW + MIN });
        assert_eq!(action(&plans, 4), &Action::Ended { ended_ms: Some(NOW - 10 * MIN) });
        assert_eq!(action(&plans, 5), &Action::Ended { ended_ms: Some(NOW - 60 * MIN) });
        assert_eq!(category(&plans, 6), "forgotten");
        assert_eq!(action(&plans, 7), &Action::Ended { ended_ms: None });
        let orders = plans[0].orders(NOW);
        assert_eq!((orders.len(), orders[0].strikes), (1, 3));
        assert_eq!(orders[0].duration_ms, Some(10 * MIN));
        assert_eq!((orders[0].jail.as_str(), orders[0].source.as_str()), ("sshd", "web1@10.0.0.5"));
        let kinds: Vec<_> = plans[2].orders(NOW).into_iter().map(|o| (o.kind, o.strikes)).collect();
        assert_eq!(kinds, [("ban".to_owned(), 2), ("allow".to_owned(), 1)]);
        assert_eq!(plans[4].orders(NOW)[0].duration_ms, Some(ENDED_BAN_MS));
    }

    #[test]
    fn import_seed_skips_bad_rows_and_merges_duplicates() {
        use Stamp::{At, Bad, Missing};
        let mut rows = vec![
            row(1, "not-an-ip", "blocked", At(NOW + MIN), Missing, 1),
            row(2, "192.0.2.2", "banned", At(NOW + MIN), Missing, 1),
            row(3, "192.0.2.3", "blocked", Bad("yesterday".into()), Missing, 1),
            row(4, "192.0.2.4", "blocked", Missing, Missing, 1),
            row(5, "2001:db8::1", "known", At(NOW - MIN), Missing, 5),
            row(6, "2001:DB8:0::1", "blocked", At(NOW + MIN), Missing, 2),
            row(7, "192.0.2.7", "known", Missing, Missing, 1),
        ];
        rows[6].block_count = Err("many".into());
        rows[6].description = format!("line\nbreak {}", "x".repeat(600));
        let plans = plan(&rows, NOW, Windows::default());
        assert_eq!(category(&plans, 1), "invalid address");
        assert_eq!(category(&plans, 2), "unknown status");
        assert_eq!(category(&plans, 3), "bad timestamp");
        assert_eq!(category(&plans, 4), "missing timestamp");
        assert_eq!(category(&plans, 5), "duplicate");
        assert_eq!(action(&plans, 6), &Action::Ban { until_ms: NOW + MIN });
        assert_eq!((plans[5].key.as_deref(), plans[5].strikes), (Some("2001:db8::1"), 5));
        assert_eq!(category(&plans, 7), "bad block_count");
        let cleaned = plan_row(
            &{
                rows[6].block_count = Ok(1);
                rows[6].clone()
            },
            NOW,
            Windows::default(),
        );
        assert!(cleaned.meta.1.starts_with("line break x"), "{}", cleaned.meta.1);
        assert_eq!(cleaned.meta.1.len(), MAX_REASON);
        assert_eq!(cleaned.notes, ["description shortened to 512 bytes"]);
    }
}
