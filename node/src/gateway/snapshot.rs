//! The read side of the gateway: an immutable [`Snapshot`] of the three
//! lists (blocked, allowed, known), each sorted by key with every item's
//! JSON already serialised, and the rendering of a list request from it
//! (search, pages, `jail_counts`). Requests only read a snapshot; the view
//! task builds a new one when records change or a lifecycle step passes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, OnceLock};

use banmesh_crdt::Key;
use bytes::Bytes;
use chrono::Timelike as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::lifecycle::{Lifecycle, Status};

/// The jail name counted for records without one.
const NO_JAIL: &str = "unknown";

/// One listed key, ready to send; one allocation, so a rebuild copies a
/// pointer and touches one reference count per item.
#[derive(Debug, Clone)]
pub struct Item(Arc<ItemData>);

/// What an [`Item`] holds.
#[derive(Debug)]
pub struct ItemData {
    /// The key as the API shows it (`192.0.2.7`, `10.0.0.0/24`).
    pub ip: Box<str>,
    /// The jail, `unknown` for none (for `jail_counts`).
    pub jail: Box<str>,
    /// The item's JSON object.
    pub json: Box<[u8]>,
}

impl std::ops::Deref for Item {
    type Target = ItemData;

    fn deref(&self) -> &ItemData {
        &self.0
    }
}

impl Item {
    /// An item from its parts.
    pub fn from_parts(ip: &str, jail: &str, json: Vec<u8>) -> Item {
        Item(Arc::new(ItemData { ip: ip.into(), jail: jail.into(), json: json.into() }))
    }
}

/// Counts one more item of `jail`.
fn count(counts: &mut BTreeMap<Arc<str>, u64>, jail: &str) {
    match counts.get_mut(jail) {
        Some(n) => *n += 1,
        None => {
            counts.insert(Arc::from(jail), 1);
        }
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
    let utc = chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    let local = utc.with_timezone(&chrono::Local).naive_local();
    let format =
        if local.nanosecond() == 0 { "%Y-%m-%d %H:%M:%S" } else { "%Y-%m-%d %H:%M:%S%.6f" };
    Some(local.format(format).to_string())
}

/// One listed address, as the old server wrote its rows (its OpenAPI
/// schema is derived from this struct).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CompatItem)]
pub struct ItemJson<'a> {
    /// A number stable for the address (the old server's row id).
    pub id: u64,
    /// The address, normalised.
    pub ip_address: &'a str,
    /// The ban's reason.
    pub description: Option<&'a str>,
    /// `blocked`, `allowed` or `known`.
    #[schema(pattern = "^(blocked|allowed|known)$")]
    pub status: &'static str,
    /// Who reported it, `NAME@ADDRESS` (gateway) or the node's name.
    pub reported_by: Option<&'a str>,
    /// When the ban ends (or ended), local time: `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    pub blocked_until: Option<String>,
    /// Since when it is allowed, in the same form.
    pub allowed_since: Option<String>,
    /// How many bans it has had.
    pub block_count: u32,
    /// The ban's jail.
    pub jail: Option<&'a str>,
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

impl Item {
    /// The item for `key` in the state `lifecycle` describes.
    pub fn new(key: Key, lifecycle: &Lifecycle<'_>) -> Item {
        let ip = key.to_string();
        let meta = lifecycle.ban.map(|b| &b.statement().meta);
        let jail = meta.and_then(|m| non_empty(&m.jail));
        let json = ItemJson {
            id: key_id(key),
            ip_address: &ip,
            description: meta.and_then(|m| non_empty(&m.reason)),
            status: lifecycle.status.as_str(),
            reported_by: meta.and_then(|m| non_empty(&m.source)),
            blocked_until: lifecycle.ban_end_ms.and_then(local_time),
            allowed_since: lifecycle.allowed_since_ms.and_then(local_time),
            block_count: lifecycle.block_count(),
            jail,
        };
        // Serialising plain strings and numbers cannot fail.
        let json = serde_json::to_vec(&json).unwrap_or_default();
        Item::from_parts(&ip, jail.unwrap_or(NO_JAIL), json)
    }
}

/// One status's list: items in key order, their jail counts, and the whole
/// unpaged answer made on first request (plain and gzip), shared with the
/// snapshots before and after it that hold the very same items.
#[derive(Debug, Default)]
pub struct List {
    items: Vec<Item>,
    jail_counts: BTreeMap<Arc<str>, u64>,
    full: Arc<Rendered>,
}

/// A list's unpaged answer, made on first request.
#[derive(Debug, Default)]
struct Rendered {
    plain: OnceLock<Bytes>,
    gzip: OnceLock<Bytes>,
}

impl List {
    /// Shares `previous`'s unpaged answer when this list holds the same
    /// items (the same allocations, as a rebuild that changed nothing in
    /// this status leaves them), so one body serves both snapshots.
    pub fn inherit(&mut self, previous: &List) {
        let same = self.items.len() == previous.items.len()
            && self.items.iter().zip(&previous.items).all(|(a, b)| Arc::ptr_eq(&a.0, &b.0));
        if same {
            self.full = previous.full.clone();
        }
    }

    /// Adds the next item (in key order).
    pub fn push(&mut self, item: Item) {
        count(&mut self.jail_counts, &item.jail);
        self.items.push(item);
    }

    /// Room for `additional` more items.
    pub fn reserve(&mut self, additional: usize) {
        self.items.reserve(additional);
    }

    /// How many items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The unpaged answer without search, made once per snapshot.
    pub fn full(&self, gzip: bool) -> Bytes {
        let plain = self.full.plain.get_or_init(|| {
            render(&self.items.iter().collect::<Vec<_>>(), &self.jail_counts, &Page::All, "")
        });
        if !gzip {
            return plain.clone();
        }
        self.full.gzip.get_or_init(|| super::body::gzip(plain)).clone()
    }

    /// The answer to a list request.
    pub fn answer(&self, search: &str, page: &Page) -> Bytes {
        if search.is_empty() {
            let items: Vec<&Item> = match page {
                Page::All => self.items.iter().collect(),
                Page::Number { page, per_page } => {
                    let start = page.saturating_sub(1).saturating_mul(*per_page);
                    self.items.iter().skip(start).take(*per_page).collect()
                }
            };
            return render_page(&items, self.items.len(), &self.jail_counts, page, search);
        }
        let matching: Vec<&Item> = self.items.iter().filter(|i| i.ip.contains(search)).collect();
        let mut counts: BTreeMap<Arc<str>, u64> = BTreeMap::new();
        for item in &matching {
            count(&mut counts, &item.jail);
        }
        match page {
            Page::All => render(&matching, &counts, page, search),
            Page::Number { page: n, per_page } => {
                let start = n.saturating_sub(1).saturating_mul(*per_page);
                let shown: Vec<&Item> =
                    matching.iter().skip(start).take(*per_page).copied().collect();
                render_page(&shown, matching.len(), &counts, page, search)
            }
        }
    }
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

fn render(items: &[&Item], counts: &BTreeMap<Arc<str>, u64>, page: &Page, search: &str) -> Bytes {
    render_page(items, items.len(), counts, page, search)
}

/// `{"items":[...], ...}` in the unpaged or the paged form, with the
/// top-level `total` the earlier client reads in both.
fn render_page(
    items: &[&Item],
    total: usize,
    counts: &BTreeMap<Arc<str>, u64>,
    page: &Page,
    search: &str,
) -> Bytes {
    let size: usize = items.iter().map(|i| i.json.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 256);
    out.extend_from_slice(b"{\"items\":[");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.json);
    }
    out.extend_from_slice(b"],");
    let search = serde_json::Value::String(search.to_owned());
    let counts: BTreeMap<&str, u64> = counts.iter().map(|(k, v)| (&**k, *v)).collect();
    let counts = serde_json::to_string(&counts).unwrap_or_else(|_| "{}".to_owned());
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
    Bytes::from(out)
}

/// The three lists at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Blocked, allowed and known, by [`Status::index`].
    pub lists: [List; 3],
    /// When it was built (Unix ms).
    pub built_at_ms: u64,
}

impl Snapshot {
    /// The list of one status.
    pub fn list(&self, status: Status) -> &List {
        &self.lists[status.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(ip: &str, jail: &str) -> Item {
        Item::from_parts(ip, jail, format!("{{\"ip\":\"{ip}\"}}").into_bytes())
    }

    fn list() -> List {
        let mut list = List::default();
        for (ip, jail) in
            [("192.0.2.1", "sshd"), ("192.0.2.2", "unknown"), ("198.51.100.3", "sshd")]
        {
            list.push(item(ip, jail));
        }
        list
    }

    fn json(bytes: Bytes) -> serde_json::Value {
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn unpaged_and_paged_forms_carry_total() {
        let list = list();
        let all = json(list.full(false));
        assert_eq!(all["total_items"], 3);
        assert_eq!(all["total"], 3);
        assert_eq!(all["search_ip"], "");
        assert_eq!(all["jail_counts"], serde_json::json!({"sshd": 2, "unknown": 1}));
        assert_eq!(all["items"].as_array().unwrap().len(), 3);
        assert_eq!(json(list.answer("", &Page::All)), all);
        let page = json(list.answer("", &Page::Number { page: 2, per_page: 2 }));
        assert_eq!(page["items"], serde_json::json!([{"ip": "198.51.100.3"}]));
        assert_eq!(
            page["pagination"],
            serde_json::json!({"total_items": 3, "total_pages": 2, "current_page": 2, "items_per_page": 2, "search_ip": ""})
        );
        assert_eq!(page["total"], 3);
        let beyond = json(list.answer("", &Page::Number { page: 9, per_page: 2 }));
        assert_eq!(beyond["items"], serde_json::json!([]));
    }

    #[test]
    fn a_list_with_the_same_items_shares_the_rendered_body() {
        let first = list();
        let body = first.full(true);
        let mut same = List::default();
        for item in &first.items {
            same.push(item.clone());
        }
        same.inherit(&first);
        assert_eq!(same.full(true).as_ptr(), body.as_ptr(), "rendered once for both");
        let mut other = list();
        other.inherit(&first);
        assert_ne!(other.full(true).as_ptr(), body.as_ptr(), "equal text, other items");
        let mut shorter = List::default();
        shorter.push(first.items[0].clone());
        shorter.inherit(&first);
        assert_eq!(json(shorter.full(false))["total"], 1);
    }

    #[test]
    fn search_filters_items_and_counts() {
        let list = list();
        let found = json(list.answer("192.0", &Page::All));
        assert_eq!(found["total"], 2);
        assert_eq!(found["jail_counts"], serde_json::json!({"sshd": 1, "unknown": 1}));
        let nothing = json(list.answer("'; DROP TABLE ip_addresses; --", &Page::All));
        assert_eq!(nothing["total"], 0);
        assert_eq!(nothing["search_ip"], "'; DROP TABLE ip_addresses; --");
    }

    #[test]
    fn ids_take_52_bits_and_times_look_like_python() {
        let key: Key = "192.0.2.7".parse().unwrap();
        assert!(key_id(key) < 1 << 52);
        assert_eq!(key_id(key), key_id("::ffff:192.0.2.7".parse().unwrap()));
        assert_ne!(key_id(key), key_id("192.0.2.8".parse().unwrap()));
        let t = local_time(1_764_075_368_123).unwrap();
        assert_eq!(t.len(), "2026-11-25 12:56:08.123000".len(), "{t}");
        assert!(t.ends_with(".123000"), "{t}");
        assert_eq!(local_time(1_764_075_368_000).unwrap().len(), 19);
    }
}
