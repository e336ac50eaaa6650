//! The set negentropy reconciles: the node's cached snapshot
//! ([`crate::store::set_cache`]), shared by every session running at once
//! and by a session's look-ups of ids a peer asked for.

use std::sync::Arc;

use negentropy::{Bound, Id as NegId, Item, NegentropyStorageBase};

use super::SyncContext;
use crate::store::set_cache::{Entry, SetSnapshot};

/// A sealed snapshot shared by reference count.
#[derive(Clone)]
pub struct Shared(pub Arc<SetSnapshot>);

fn item(e: &Entry) -> Item {
    Item { timestamp: e.at, id: NegId::from_byte_array(e.id) }
}

impl NegentropyStorageBase for Shared {
    fn size(&self) -> Result<usize, negentropy::Error> {
        Ok(self.0.entries().len())
    }

    fn get_item(&self, i: usize) -> Result<Option<Item>, negentropy::Error> {
        Ok(self.0.entries().get(i).map(item))
    }

    fn iterate(
        &self,
        begin: usize,
        end: usize,
        cb: &mut dyn FnMut(Item, usize) -> Result<bool, negentropy::Error>,
    ) -> Result<(), negentropy::Error> {
        let entries = self.0.entries().get(begin..end).ok_or(negentropy::Error::BadRange)?;
        for (i, e) in entries.iter().enumerate() {
            if !cb(item(e), begin + i)? {
                break;
            }
        }
        Ok(())
    }

    fn find_lower_bound(&self, first: usize, last: usize, value: &Bound) -> usize {
        let entries = self.0.entries();
        let (first, last) = (first.min(entries.len()), last.min(entries.len()));
        let range = entries.get(first..last.max(first)).unwrap_or_default();
        first + range.partition_point(|e| item(e) < value.item)
    }
}

impl Shared {
    /// The set at `horizon_ms`: the node's cached snapshot.
    pub async fn build(ctx: &SyncContext, horizon_ms: u64) -> Result<Shared, String> {
        let params = ctx.checker.params;
        let snapshot = ctx.checker.store.sync_set(horizon_ms, &params).await;
        snapshot.map(Shared).map_err(|e| e.to_string())
    }

    /// How many items the set holds.
    pub fn item_count(&self) -> usize {
        self.0.entries().len()
    }

    /// The (timestamp, id) of each of `ids` the set holds.
    pub fn find(&self, ids: &[[u8; 32]]) -> Vec<(u64, [u8; 32])> {
        self.0.find(ids)
    }
}
