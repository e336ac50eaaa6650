//! The read side of the gateway: an immutable [`Snapshot`] of the three
//! lists (blocked, allowed, known), each a [`List`] of compact [`Item`]s
//! sorted by key, and the rendering of a list request from it (search,
//! pages, `jail_counts`). An item's JSON is written when a request asks
//! for it (a page, a search, or the whole list once per list); requests
//! only read a snapshot, and the view task patches a new one from the last
//! when records change or a lifecycle step passes.

mod list;
mod search;

use std::io::Write as _;
use std::sync::Arc;

use banmesh_crdt::Key;
use chrono::{Datelike as _, Timelike as _};
use sha2::{Digest as _, Sha256};

use super::lifecycle::{Lifecycle, Status};
use super::view::fact::{Fact, Meta};
pub use list::{Change, List};
pub use search::Search;

/// The jail name counted for records without one.
const NO_JAIL: &str = "unknown";
/// An absent time in an [`Item`] (no real time comes near it).
const NO_TIME: u64 = u64::MAX;

/// One listed key: what its JSON object says, without the JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The key.
    pub key: Key,
    /// `block_count`.
    block_count: u32,
    /// The `id` (see [`key_id`]).
    id: u64,
    /// `blocked_until`, or [`NO_TIME`].
    ban_end_ms: u64,
    /// `allowed_since`, or [`NO_TIME`].
    allowed_since_ms: u64,
    /// The deciding Ban's jail, reason and source.
    meta: Option<Arc<Meta>>,
}

fn time(ms: Option<u64>) -> u64 {
    ms.unwrap_or(NO_TIME)
}

fn some_time(ms: u64) -> Option<u64> {
    (ms != NO_TIME).then_some(ms)
}

impl Item {
    /// The item for `key` in the state `lifecycle` describes.
    pub fn new(key: Key, lifecycle: &Lifecycle<'_, Fact>) -> Item {
        Item {
            key,
            block_count: lifecycle.block_count(),
            id: key_id(key),
            ban_end_ms: time(lifecycle.ban_end_ms),
            allowed_since_ms: time(lifecycle.allowed_since_ms),
            meta: lifecycle.ban.map(|b| b.meta.clone()),
        }
    }

    /// The jail `jail_counts` counts it under (`unknown` for none).
    pub fn jail(&self) -> &str {
        self.meta.as_ref().map(|m| &*m.jail).filter(|j| !j.is_empty()).unwrap_or(NO_JAIL)
    }

    /// `allowed_since`, in Unix ms.
    pub fn allowed_since_ms(&self) -> Option<u64> {
        some_time(self.allowed_since_ms)
    }

    /// Appends its JSON object as the list of `status` shows it (the
    /// fields of the old server, in its order).
    pub fn write_json(&self, status: Status, out: &mut Vec<u8>) {
        let meta = self.meta.as_deref();
        let text = |out: &mut Vec<u8>, text: Option<&str>| match text.filter(|t| !t.is_empty()) {
            // Writing a string into a Vec cannot fail.
            Some(text) => drop(serde_json::to_writer(&mut *out, text)),
            None => out.extend_from_slice(b"null"),
        };
        let time = |out: &mut Vec<u8>, ms: u64| {
            out.push(b'"');
            if some_time(ms).is_some_and(|ms| write_local_time(ms, out)) {
                out.push(b'"');
            } else {
                out.pop();
                out.extend_from_slice(b"null");
            }
        };
        // Writing into a Vec cannot fail; a key prints as digits, dots,
        // colons and a slash, which need no escaping.
        let _ =
            write!(out, "{{\"id\":{},\"ip_address\":\"{}\",\"description\":", self.id, self.key);
        text(out, meta.map(|m| &*m.reason));
        let _ = write!(out, ",\"status\":\"{}\",\"reported_by\":", status.as_str());
        text(out, meta.map(|m| &*m.source));
        out.extend_from_slice(b",\"blocked_until\":");
        time(out, self.ban_end_ms);
        out.extend_from_slice(b",\"allowed_since\":");
        time(out, self.allowed_since_ms);
        let _ = write!(out, ",\"block_count\":{},\"jail\":", self.block_count);
        text(out, meta.map(|m| &*m.jail));
        out.push(b'}');
    }
}

/// The id every gateway gives a key: the first 52 bits of SHA-256 of its
/// canonical bytes (52 so that JavaScript clients read it exactly).
pub fn key_id(key: Key) -> u64 {
    let digest = Sha256::digest(key.to_bytes());
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) >> 12
}

/// Unix ms as Python's `str(datetime)` of the naive local time:
/// `2026-11-25 12:56:08.123000`, without the fraction when it is zero.
pub fn local_time(ms: u64) -> Option<String> {
    let mut out = Vec::with_capacity(28);
    write_local_time(ms, &mut out).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// Appends [`local_time`]; false (nothing written) for a time chrono
/// cannot place.
fn write_local_time(ms: u64, out: &mut Vec<u8>) -> bool {
    let Some(utc) = i64::try_from(ms).ok().and_then(chrono::DateTime::from_timestamp_millis) else {
        return false;
    };
    let t = utc.with_timezone(&chrono::Local).naive_local();
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if t.nanosecond() != 0 {
        let _ = write!(out, ".{:06}", t.nanosecond() / 1_000);
    }
    true
}

/// Which part of a list a request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Every item, in the unpaged form.
    All,
    /// One page, counting from 1.
    Number {
        /// The page.
        page: usize,
        /// Items per page, at least 1.
        per_page: usize,
    },
}

/// `{"items":[...], ...}` in the unpaged or the paged form, with the
/// top-level `total` the earlier client reads in both; `counts` is the
/// `jail_counts` object, already JSON.
fn render_page<'a>(
    status: Status,
    items: impl Iterator<Item = &'a Item>,
    total: usize,
    counts: &str,
    page: &Page,
    search: &str,
) -> Vec<u8> {
    let shown = match page {
        Page::All => total,
        Page::Number { per_page, .. } => total.min(*per_page),
    };
    let mut out = Vec::with_capacity(shown.saturating_mul(240).saturating_add(256));
    out.extend_from_slice(ITEMS_OPEN);
    for (n, item) in items.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        item.write_json(status, &mut out);
    }
    write_trailer(&mut out, total, counts, page, search);
    out
}

/// What an answer opens with, before its first item.
const ITEMS_OPEN: &[u8] = b"{\"items\":[";

/// What an answer ends with, after its last item: the totals, the page
/// and `jail_counts` (`counts`, already JSON).
fn write_trailer(out: &mut Vec<u8>, total: usize, counts: &str, page: &Page, search: &str) {
    out.extend_from_slice(b"],");
    let search = serde_json::Value::String(search.to_owned());
    // Writing into a Vec cannot fail.
    let _ = match page {
        Page::All => write!(
            out,
            "\"total_items\":{total},\"search_ip\":{search},\"jail_counts\":{counts},\"total\":{total}}}"
        ),
        Page::Number { page, per_page } => write!(
            out,
            "\"pagination\":{{\"total_items\":{total},\"total_pages\":{},\"current_page\":{page},\
             \"items_per_page\":{per_page},\"search_ip\":{search}}},\"jail_counts\":{counts},\"total\":{total}}}",
            total.div_ceil(*per_page),
        ),
    };
}

/// The three lists at one moment. A list no change touched is the very
/// same [`List`] as in the snapshot before (so is its rendered body).
#[derive(Debug)]
pub struct Snapshot {
    /// Blocked, allowed and known, by [`Status::index`].
    pub lists: [Arc<List>; 3],
    /// When it was built (Unix ms).
    pub built_at_ms: u64,
}

impl Default for Snapshot {
    fn default() -> Snapshot {
        Snapshot { lists: Status::ALL.map(|s| Arc::new(List::new(s))), built_at_ms: 0 }
    }
}

impl Snapshot {
    /// The list of one status.
    pub fn list(&self, status: Status) -> &List {
        &self.lists[status.index()]
    }

    /// The list of one status, shared (for an answer rendered as it is sent).
    pub fn shared_list(&self, status: Status) -> Arc<List> {
        self.lists[status.index()].clone()
    }
}

#[cfg(test)]
mod tests;
