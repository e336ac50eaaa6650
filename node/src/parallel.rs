//! Work shared out among the cores in contiguous runs, its answers kept
//! in order: checking the signatures of a sync page and signing an
//! import's batch are the two CPU-bound loops a node runs, and both must
//! give the answers one thread would, in the same order.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;

/// The answers of one run of items, or its thread's panic, with the number
/// of items in the run (so a caller can stand in for them).
pub type Run<R> = (usize, thread::Result<Vec<R>>);

/// `f` applied to each of `items`, in order. The items are cut into at
/// most `threads` contiguous runs: the first runs on the calling thread,
/// each other on a scoped thread of its own. Each run's answers come back
/// with its length, in order, or its panic: what a panic means (ignore the
/// run, or raise it again) is the caller's rule.
pub fn map_in_order<T: Send, R: Send>(
    mut items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<Run<R>> {
    let run = items.len().div_ceil(threads.max(1)).max(1);
    let mut runs = Vec::with_capacity(threads.max(1));
    while items.len() > run {
        let rest = items.split_off(run);
        runs.push(std::mem::replace(&mut items, rest));
    }
    runs.push(items);
    let f = &f;
    let map = move |run: Vec<T>| -> Vec<R> { run.into_iter().map(f).collect() };
    thread::scope(|scope| {
        let mut runs = runs.into_iter();
        let first = runs.next().unwrap_or_default();
        let others: Vec<_> = runs.map(|run| (run.len(), scope.spawn(move || map(run)))).collect();
        let mut answers = vec![(first.len(), catch_unwind(AssertUnwindSafe(|| map(first))))];
        answers.extend(others.into_iter().map(|(n, handle)| (n, handle.join())));
        answers
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_keep_their_order_and_each_panic_is_told_with_its_length() {
        for threads in [1, 2, 3, 8] {
            let items: Vec<u32> = (0..10).collect();
            let runs = map_in_order(items, threads, |i| i * 2);
            assert!(runs.len() <= threads.max(1));
            let all: Vec<u32> = runs.into_iter().flat_map(|(_, r)| r.unwrap()).collect();
            assert_eq!(all, (0..10).map(|i| i * 2).collect::<Vec<_>>(), "{threads} threads");
        }
        assert_eq!(map_in_order(Vec::<u8>::new(), 4, |i| i).len(), 1);
        let runs = map_in_order((0..9).collect(), 3, |i: u32| {
            assert!(!(3..6).contains(&i), "item {i}");
            i
        });
        let told: Vec<(usize, bool)> = runs.iter().map(|(n, r)| (*n, r.is_ok())).collect();
        assert_eq!(told, [(3, true), (3, false), (3, true)]);
    }
}
