//! The set negentropy reconciles, built straight from the store (one
//! 40-byte item per record, no copy beside it) and shared by a session's
//! negentropy and its look-ups of ids a peer asked for.

use std::collections::HashSet;
use std::sync::Arc;

use negentropy::{Bound, Id as NegId, Item, NegentropyStorageBase, NegentropyStorageVector};

use super::SyncContext;
use crate::store::sync_set;

/// A sealed storage shared by reference count.
#[derive(Clone)]
pub struct Shared(pub Arc<NegentropyStorageVector>);

impl NegentropyStorageBase for Shared {
    fn size(&self) -> Result<usize, negentropy::Error> {
        self.0.size()
    }

    fn get_item(&self, i: usize) -> Result<Option<Item>, negentropy::Error> {
        self.0.get_item(i)
    }

    fn iterate(
        &self,
        begin: usize,
        end: usize,
        cb: &mut dyn FnMut(Item, usize) -> Result<bool, negentropy::Error>,
    ) -> Result<(), negentropy::Error> {
        self.0.iterate(begin, end, cb)
    }

    fn find_lower_bound(&self, first: usize, last: usize, value: &Bound) -> usize {
        self.0.find_lower_bound(first, last, value)
    }
}

impl Shared {
    /// The set at `horizon_ms`, read from the store.
    pub async fn build(ctx: &SyncContext, horizon_ms: u64) -> Result<Shared, String> {
        let params = ctx.checker.params;
        let storage = ctx
            .checker
            .store
            .read(move |c, p| {
                let mut storage = NegentropyStorageVector::new();
                let mut failed = None;
                sync_set::each_sync_item(c, p, horizon_ms, &params, |item| {
                    if let Err(e) = storage.insert(item.at, NegId::from_byte_array(item.id)) {
                        failed.get_or_insert(e);
                    }
                })?;
                Ok((storage, failed))
            })
            .await
            .map_err(|e| e.to_string())?;
        let (mut storage, failed) = storage;
        if let Some(e) = failed {
            return Err(e.to_string());
        }
        storage.seal().map_err(|e| e.to_string())?;
        Ok(Shared(Arc::new(storage)))
    }

    /// How many items the set holds.
    pub fn item_count(&self) -> usize {
        self.0.size().unwrap_or(0)
    }

    /// The (timestamp, id) of each of `ids` the set holds (one pass over
    /// the set: ids are not indexed).
    pub fn find(&self, ids: &[[u8; 32]]) -> Vec<(u64, [u8; 32])> {
        let wanted: HashSet<&[u8; 32]> = ids.iter().collect();
        let mut found = Vec::with_capacity(ids.len());
        let size = self.0.size().unwrap_or(0);
        let _ = self.0.iterate(0, size, &mut |item: Item, _| {
            if wanted.contains(item.id.as_bytes()) {
                found.push((item.timestamp, *item.id.as_bytes()));
            }
            Ok(found.len() < wanted.len())
        });
        found
    }
}
