//! A search's answer rendered a piece at a time from the shared [`List`]
//! ([`Search`]): the items are written as the scan reaches them and the
//! totals and `jail_counts` (which the answer puts after the items) once it
//! ends, so one answer in flight holds a piece of its body, not all of it,
//! whatever the list's length. The bytes are the same as a whole render's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::list::{count, counts_json};
use super::{ITEMS_OPEN, List, Page, write_trailer};

/// Where a [`Search`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not a byte written.
    Start,
    /// Scanning: the next item is `chunks[chunk][at]`.
    Scan { chunk: usize, at: usize },
    /// Every byte written.
    Done,
}

/// One search's answer, rendered on demand from a shared list.
pub struct Search {
    list: Arc<List>,
    scan: Scan,
    /// Compresses the pieces when the answer goes out gzipped.
    gzip: Option<GzEncoder<Vec<u8>>>,
}

/// Where a search's scan of a list stands, and what it has counted.
#[derive(Debug)]
pub struct Scan {
    search: String,
    page: Page,
    stage: Stage,
    /// Items matched so far.
    matched: usize,
    /// Items written so far.
    shown: usize,
    /// `jail_counts` of the matches so far.
    counts: BTreeMap<Box<str>, u64>,
    /// A key's text, reused.
    ip: String,
}

impl std::fmt::Debug for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search").field("scan", &self.scan).finish()
    }
}

impl Scan {
    /// The scan for `search` (lowercase), `page` of the matches.
    pub fn new(search: String, page: Page) -> Scan {
        Scan {
            search,
            page,
            stage: Stage::Start,
            matched: 0,
            shown: 0,
            counts: BTreeMap::new(),
            ip: String::new(),
        }
    }

    /// The items to write: matches `[first, first + wanted)`.
    fn window(&self) -> (usize, usize) {
        match self.page {
            Page::All => (0, usize::MAX),
            Page::Number { page, per_page } => {
                (page.saturating_sub(1).saturating_mul(per_page), per_page)
            }
        }
    }

    /// Appends the answer's next bytes on `list` (the same list each call)
    /// to `out`, stopping at the first item boundary past `limit` bytes or
    /// at the end.
    pub fn render(&mut self, list: &List, out: &mut Vec<u8>, limit: usize) {
        let (first, wanted) = self.window();
        let (mut chunk, mut at) = match self.stage {
            Stage::Done => return,
            Stage::Start => {
                out.extend_from_slice(ITEMS_OPEN);
                (0, 0)
            }
            Stage::Scan { chunk, at } => (chunk, at),
        };
        let status = list.status();
        while let Some(items) = list.chunks.get(chunk) {
            while let Some(item) = items.get(at) {
                if out.len() >= limit {
                    self.stage = Stage::Scan { chunk, at };
                    return;
                }
                at += 1;
                self.ip.clear();
                let _ = write!(self.ip, "{}", item.key);
                if !self.ip.contains(&*self.search) {
                    continue;
                }
                count(&mut self.counts, item.jail());
                if self.matched >= first && self.matched - first < wanted {
                    if self.shown > 0 {
                        out.push(b',');
                    }
                    item.write_json(status, out);
                    self.shown += 1;
                }
                self.matched += 1;
            }
            (chunk, at) = (chunk + 1, 0);
        }
        let counts = counts_json(self.counts.iter().map(|(jail, n)| (&**jail, *n)));
        write_trailer(out, self.matched, &counts, &self.page, &self.search);
        self.stage = Stage::Done;
    }
}

impl Search {
    /// The answer to `search` (not empty, lowercase) on `list`, `page` of it.
    pub fn new(list: Arc<List>, search: String, page: Page) -> Search {
        Search { list, scan: Scan::new(search, page), gzip: None }
    }

    /// Whether every byte has been rendered.
    pub fn is_done(&self) -> bool {
        self.scan.stage == Stage::Done
    }

    /// Appends the next plain bytes to `out` (see [`Scan::render`]).
    pub fn render(&mut self, out: &mut Vec<u8>, limit: usize) {
        self.scan.render(&self.list, out, limit);
    }

    /// From here on, [`Search::next_piece`] gives gzip: `head` (what was
    /// rendered before, plain) compressed first.
    pub fn start_gzip(&mut self, head: &[u8]) -> Bytes {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(head);
        let piece = Bytes::from(std::mem::take(encoder.get_mut()));
        self.gzip = Some(encoder);
        piece
    }

    /// The next piece of the body (about `size` bytes, compressed when
    /// [`Search::start_gzip`] was called), or `None` after the last.
    pub fn next_piece(&mut self, size: usize) -> Option<Bytes> {
        loop {
            if self.is_done() {
                let encoder = self.gzip.take()?;
                return Some(Bytes::from(encoder.finish().unwrap_or_default()));
            }
            let mut plain = Vec::with_capacity(size + 1024);
            self.render(&mut plain, size);
            let Some(encoder) = self.gzip.as_mut() else {
                return Some(Bytes::from(plain));
            };
            // Writing into a Vec cannot fail.
            let _ = encoder.write_all(&plain);
            let packed = std::mem::take(encoder.get_mut());
            if !packed.is_empty() {
                return Some(Bytes::from(packed));
            }
        }
    }
}
