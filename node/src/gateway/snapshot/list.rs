//! One status's [`List`]: items in key order, held in shared chunks of a
//! few hundred, so that the next snapshot's list is this one patched with
//! the keys that changed ([`List::patched`]): chunks no change falls in are
//! shared, not copied, and the jail counts move by the changes alone. The
//! whole unpaged answer is rendered on first request, once per list.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use banmesh_crdt::Key;
use bytes::Bytes;

use super::{Item, Page, render_page};
use crate::gateway::lifecycle::Status;

/// Items per chunk a patch aims for; a chunk splits past twice this, and
/// one left with fewer than a quarter joins the chunk before it.
const CHUNK: usize = 512;

/// One change to a list, by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add the item, or replace the item on its key.
    Put(Item),
    /// Remove the item on this key, if there is one.
    Remove(Key),
}

impl Change {
    /// The key it changes.
    pub fn key(&self) -> Key {
        match self {
            Change::Put(item) => item.key,
            Change::Remove(key) => *key,
        }
    }
}

/// One status's items, in key order.
#[derive(Debug)]
pub struct List {
    status: Status,
    pub(super) chunks: Vec<Arc<[Item]>>,
    /// `ends[i]`: how many items `chunks[..=i]` hold.
    ends: Vec<usize>,
    jail_counts: BTreeMap<Box<str>, u64>,
    plain: OnceLock<Bytes>,
    gzip: OnceLock<Bytes>,
}

pub(super) fn count(counts: &mut BTreeMap<Box<str>, u64>, jail: &str) {
    match counts.get_mut(jail) {
        Some(n) => *n += 1,
        None => {
            counts.insert(jail.into(), 1);
        }
    }
}

fn uncount(counts: &mut BTreeMap<Box<str>, u64>, jail: &str) {
    if let Some(n) = counts.get_mut(jail) {
        *n -= 1;
        if *n == 0 {
            counts.remove(jail);
        }
    }
}

pub(super) fn counts_json<'a>(counts: impl Iterator<Item = (&'a str, u64)>) -> String {
    let counts: BTreeMap<&str, u64> = counts.collect();
    serde_json::to_string(&counts).unwrap_or_else(|_| "{}".to_owned())
}

/// `items` (in key order) with `changes` (in key order, one per key)
/// applied, counting the jails that come and go in `counts`.
fn merge(items: &[Item], changes: &[Change], counts: &mut BTreeMap<Box<str>, u64>) -> Vec<Item> {
    let mut out = Vec::with_capacity(items.len() + changes.len());
    let mut i = 0;
    for change in changes {
        let key = change.key();
        while let Some(item) = items.get(i).filter(|item| item.key < key) {
            out.push(item.clone());
            i += 1;
        }
        if let Some(old) = items.get(i).filter(|item| item.key == key) {
            uncount(counts, old.jail());
            i += 1;
        }
        if let Change::Put(item) = change {
            count(counts, item.jail());
            out.push(item.clone());
        }
    }
    out.extend_from_slice(items.get(i..).unwrap_or_default());
    out
}

impl List {
    /// An empty list of `status`.
    pub fn new(status: Status) -> List {
        List {
            status,
            chunks: Vec::new(),
            ends: Vec::new(),
            jail_counts: BTreeMap::new(),
            plain: OnceLock::new(),
            gzip: OnceLock::new(),
        }
    }

    /// This list with `changes` (sorted by key, one per key) applied.
    pub fn patched(&self, changes: &[Change]) -> List {
        let mut next = List::new(self.status);
        next.jail_counts = self.jail_counts.clone();
        next.chunks.reserve(self.chunks.len() + changes.len() / CHUNK + 1);
        let mut rest = changes;
        for (n, chunk) in self.chunks.iter().enumerate() {
            let mine = match chunk.last() {
                Some(last) if n + 1 < self.chunks.len() => {
                    rest.partition_point(|c| c.key() <= last.key)
                }
                _ => rest.len(),
            };
            let (here, after) = rest.split_at(mine);
            rest = after;
            if here.is_empty() {
                next.chunks.push(chunk.clone());
            } else {
                let items = merge(chunk, here, &mut next.jail_counts);
                next.push_items(items);
            }
        }
        if !rest.is_empty() {
            let items = merge(&[], rest, &mut next.jail_counts);
            next.push_items(items);
        }
        next.ends = next
            .chunks
            .iter()
            .scan(0, |end, chunk| {
                *end += chunk.len();
                Some(*end)
            })
            .collect();
        next
    }

    /// Appends `items` (after every item held) as one or more chunks.
    fn push_items(&mut self, mut items: Vec<Item>) {
        if items.is_empty() {
            return;
        }
        if items.len() < CHUNK / 4
            && let Some(before) = self.chunks.last()
            && before.len() + items.len() <= 2 * CHUNK
        {
            let mut joined = before.to_vec();
            joined.append(&mut items);
            self.chunks.pop();
            items = joined;
        }
        let pieces = if items.len() > 2 * CHUNK { items.len().div_ceil(CHUNK) } else { 1 };
        let size = items.len().div_ceil(pieces);
        for piece in items.chunks(size) {
            self.chunks.push(Arc::from(piece));
        }
    }

    /// Its status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// How many items.
    pub fn len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every item, in key order.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }

    /// The item on `key`, if listed.
    pub fn get(&self, key: Key) -> Option<&Item> {
        let n = self.chunks.partition_point(|c| c.last().is_some_and(|last| last.key < key));
        let chunk = self.chunks.get(n)?;
        let i = chunk.binary_search_by_key(&key, |item| item.key).ok()?;
        chunk.get(i)
    }

    /// `jail_counts`: items per jail.
    pub fn jail_counts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.jail_counts.iter().map(|(jail, n)| (&**jail, *n))
    }

    /// How many chunks hold the items (for tests of the sharing).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The items from position `start` on.
    fn items_from(&self, start: usize) -> impl Iterator<Item = &Item> {
        let first = self.ends.partition_point(|end| *end <= start);
        let skip = start - first.checked_sub(1).and_then(|i| self.ends.get(i)).unwrap_or(&0);
        self.chunks.get(first..).unwrap_or_default().iter().flat_map(|c| c.iter()).skip(skip)
    }

    /// The unpaged answer without search, made once per list.
    pub fn full(&self, gzip: bool) -> Bytes {
        let plain = self.plain.get_or_init(|| {
            let counts = counts_json(self.jail_counts());
            Bytes::from(render_page(self.status, self.items(), self.len(), &counts, &Page::All, ""))
        });
        if !gzip {
            return plain.clone();
        }
        self.gzip.get_or_init(|| crate::gateway::body::gzip(plain)).clone()
    }

    /// The answer to a list request, rendered whole.
    pub fn answer(&self, search: &str, page: &Page) -> Bytes {
        let status = self.status;
        if search.is_empty() {
            let counts = counts_json(self.jail_counts());
            let body = match page {
                Page::All => render_page(status, self.items(), self.len(), &counts, page, ""),
                Page::Number { page: n, per_page } => {
                    let start = n.saturating_sub(1).saturating_mul(*per_page);
                    let shown = self.items_from(start).take(*per_page);
                    render_page(status, shown, self.len(), &counts, page, "")
                }
            };
            return Bytes::from(body);
        }
        let mut out = Vec::new();
        super::search::Scan::new(search.to_owned(), *page).render(self, &mut out, usize::MAX);
        Bytes::from(out)
    }
}
