//! The verifier task: takes gossip messages from the swarm task, decodes
//! and judges each batch off the swarm loop (signatures in a blocking
//! thread), stores what is valid, and sends back Accept (something new),
//! Ignore or Reject. Ends when its token fires or the swarm task is gone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use banmesh_crdt::{Id, Params, Record};
use banmesh_keys::PublicKey;
use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::batch::Batch;
use super::limit::OriginLimits;
use super::swarm::MeshStats;
use super::trust::{Judged, Skip, Trust, Verdict};
use crate::clock::now_ms;
use crate::store::Store;

/// A gossip message to judge.
pub struct Inbound {
    /// Gossipsub's id for it.
    pub id: MessageId,
    /// The peer that forwarded it.
    pub source: PeerId,
    /// The batch bytes.
    pub data: Vec<u8>,
}

/// The verdict on one message.
pub struct Outcome {
    /// Gossipsub's id for it.
    pub id: MessageId,
    /// The peer that forwarded it.
    pub source: PeerId,
    /// `Ok(true)`: valid and new (Accept); `Ok(false)`: Ignore; `Err`: Reject, why.
    pub verdict: Result<bool, &'static str>,
    /// Nodes revoked by this message: drop their connections.
    pub revoked: Vec<PublicKey>,
}

/// What judging and storing a batch needs; cheap to clone.
#[derive(Clone)]
pub struct Checker {
    /// The store.
    pub store: Store,
    /// What the node trusts.
    pub trust: Arc<RwLock<Trust>>,
    /// Cluster parameters.
    pub params: Params,
    /// Per-origin rate limits.
    pub limits: Arc<OriginLimits>,
    /// Counters (refusals by reason).
    pub stats: Arc<Mutex<MeshStats>>,
}

/// Messages judged and stored together: one signature-checking pass and
/// one store transaction per sending peer, however many messages wait.
const DRAIN: usize = 256;

/// The verifier's loop: takes every message waiting (up to [`DRAIN`]),
/// judges them together and reports each one's verdict.
pub async fn run(
    mut inbound_rx: mpsc::Receiver<Inbound>,
    outcome_tx: mpsc::Sender<Outcome>,
    checker: Checker,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => break,
            inbound = inbound_rx.recv() => match inbound {
                Some(inbound) => inbound,
                None => break,
            },
        };
        let mut waiting = vec![first];
        while waiting.len() < DRAIN {
            match inbound_rx.try_recv() {
                Ok(inbound) => waiting.push(inbound),
                Err(_) => break,
            }
        }
        let (heads, data): (Vec<(MessageId, PeerId)>, Vec<Vec<u8>>) =
            waiting.into_iter().map(|i| ((i.id, i.source), i.data)).unzip();
        let sources: Vec<PeerId> = heads.iter().map(|(_, source)| *source).collect();
        let results = verify_many(data, &sources, &checker, true).await;
        for ((id, source), (verdict, revoked)) in heads.into_iter().zip(results) {
            if outcome_tx.send(Outcome { id, source, verdict, revoked }).await.is_err() {
                return;
            }
        }
    }
}

/// What one message came to: `Ok(true)` if it held something new,
/// `Ok(false)` to ignore it, `Err` to reject it (why); and the nodes it revoked.
pub type Verified = (Result<bool, &'static str>, Vec<PublicKey>);

/// Decodes, judges and stores one batch (a sync push).
/// Not held to the per-origin rate: sync is what delivers records gossip
/// delayed, and a new node must catch up at full speed; sync is bounded by
/// its sessions instead (`sync/hostile.rs`).
pub async fn verify(data: &[u8], from: &PeerId, checker: &Checker) -> Verified {
    let mut results = verify_many(vec![data.to_vec()], &[*from], checker, false).await;
    results.pop().unwrap_or((Ok(false), Vec::new()))
}

/// Decodes and judges many batches in one blocking pass, stores every valid
/// one (one transaction per sending peer), and returns a verdict for each,
/// in order. `sources[i]` sent `data[i]`. With `limited`, per-origin rate
/// limits apply (gossip).
pub async fn verify_many(
    data: Vec<Vec<u8>>,
    sources: &[PeerId],
    checker: &Checker,
    limited: bool,
) -> Vec<Verified> {
    let judged = judge_many(data, checker).await;
    store_judged(judged, sources, checker, limited).await
}

/// Batches decoded and judged ([`judge_many`]), not stored yet.
pub struct JudgedBatches {
    verdicts: Vec<Result<Verdict, &'static str>>,
    /// When they were judged: the time their records are stored as of.
    now: u64,
}

impl JudgedBatches {
    /// How many batches.
    pub fn len(&self) -> usize {
        self.verdicts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.verdicts.is_empty()
    }

    /// The records the sound batches held (valid or left out).
    pub fn records(&self) -> usize {
        let held = |v: &Result<Verdict, _>| match v {
            Ok(Verdict::Store(j)) => j.records.len() + j.skipped.len(),
            _ => 0,
        };
        self.verdicts.iter().map(held).sum()
    }
}

/// Decodes and judges batches against the trust as it is now, off the
/// runtime (on every core for many bytes); stores nothing.
pub async fn judge_many(data: Vec<Vec<u8>>, checker: &Checker) -> JudgedBatches {
    let snapshot = checker.trust.read().unwrap_or_else(PoisonError::into_inner).clone();
    let params = checker.params;
    let now = now_ms();
    let count = data.len();
    let verdicts = tokio::task::spawn_blocking(move || judge_all(&data, &snapshot, now, &params))
        .await
        // A judging thread that died stored nothing: Ignore every message.
        .unwrap_or_else(|_| (0..count).map(|_| Ok(Verdict::Store(Judged::default()))).collect());
    JudgedBatches { verdicts, now }
}

/// Stores what judged batches hold that is valid (one transaction per
/// sending peer) and returns a verdict for each, in order. `sources[i]`
/// sent batch `i`. With `limited`, per-origin rate limits apply (gossip).
pub async fn store_judged(
    judged: JudgedBatches,
    sources: &[PeerId],
    checker: &Checker,
    limited: bool,
) -> Vec<Verified> {
    let Checker { store, limits, stats, .. } = checker;
    let metrics = stats.lock().unwrap_or_else(PoisonError::into_inner).metrics.clone();
    let JudgedBatches { verdicts: judged, now } = judged;
    let count = judged.len();
    let mut results: Vec<Verified> = Vec::with_capacity(count);
    let mut by_source: HashMap<PeerId, Vec<(usize, Record)>> = HashMap::new();
    for (i, judged) in judged.into_iter().enumerate() {
        let judged = match judged {
            Err(reason) | Ok(Verdict::Reject(reason)) => {
                tracing::warn!(target: "banmesh::events::record_rejected", reason, "gossip rejected");
                results.push((Err(reason), Vec::new()));
                continue;
            }
            Ok(Verdict::Store(judged)) => judged,
        };
        let Judged { certs, revocations, records, skipped } = judged;
        count_skipped(&skipped, stats);
        let (changed, revoked) = store_trust_items(certs, revocations, store).await;
        results.push((Ok(changed), revoked));
        if records.is_empty() {
            continue;
        }
        if limited && !limits.admit(&records, std::time::Instant::now()) {
            // Delayed, not dropped: not stored or forwarded now; a later
            // sync brings these records in.
            let mut stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
            *stats.refused.entry("origin over its rate (delayed)".to_owned()).or_default() += 1;
            continue;
        }
        let source = sources.get(i).copied().unwrap_or_else(PeerId::random);
        by_source.entry(source).or_default().extend(records.into_iter().map(|r| (i, r)));
    }
    for (source, records) in by_source {
        let (owners, records): (Vec<usize>, Vec<Record>) = records.into_iter().unzip();
        let ids: Vec<Id> = records.iter().map(Record::id).collect();
        match store.apply_from(records, now, source.to_string()).await {
            Ok(applied) => {
                let new: HashSet<Id> = applied.new.iter().map(Record::id).collect();
                let via = if limited { "gossip" } else { "sync" };
                let committed = now_ms();
                let delays =
                    applied.new.iter().map(|r| committed.saturating_sub(r.issued_at().millis()));
                metrics.received(via, delays);
                if !applied.new.is_empty() {
                    tracing::info!(target: "banmesh::events::batch_applied", from = %source, via, count = applied.new.len(), "records applied");
                }
                for r in &applied.new {
                    tracing::debug!(
                        target: "banmesh::events::record_applied",
                        key = %r.key(), kind = %r.kind(), origin = %r.origin(), issued_at = r.issued_at().0,
                        "record applied"
                    );
                }
                for (owner, id) in owners.into_iter().zip(ids) {
                    if new.contains(&id)
                        && let Some((verdict, _)) = results.get_mut(owner)
                    {
                        *verdict = Ok(true);
                    }
                }
            }
            Err(e) => {
                metrics.error("store");
                tracing::error!(error = %e, "cannot store received records");
            }
        }
    }
    results
}

/// Below this many bytes in all, batches are judged on one thread: a
/// thread costs more than the signatures of a few gossip messages.
const PARALLEL_BYTES: usize = 32 * 1024;

/// Decodes and judges each batch, in order. Many bytes of batches (a sync
/// page, a drained gossip backlog) are shared out among the cores in
/// contiguous runs: signatures are most of a join's work, and each batch
/// is judged on its own against the same trust, so the verdicts are the
/// ones one thread would give.
pub(super) fn judge_all(
    data: &[Vec<u8>],
    trust: &Trust,
    now: u64,
    params: &Params,
) -> Vec<Result<Verdict, &'static str>> {
    let judge = |bytes: &Vec<u8>| match Batch::decode(bytes) {
        Ok(batch) => Ok(trust.judge(batch, now, params)),
        Err(e) => {
            tracing::warn!(target: "banmesh::events::record_rejected", error = %e, "malformed batch");
            Err("malformed batch")
        }
    };
    let bytes: usize = data.iter().map(Vec::len).sum();
    let threads = if bytes < PARALLEL_BYTES {
        1
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    };
    // A run whose judging panicked stored nothing: its batches are
    // ignored, as when the blocking task dies.
    let ignored = |n: usize| (0..n).map(|_| Ok(Verdict::Store(Judged::default()))).collect();
    crate::parallel::map_in_order(data.iter().collect(), threads, judge)
        .into_iter()
        .flat_map(|(n, run)| run.unwrap_or_else(|_| ignored(n)))
        .collect()
}

/// Counts the records a sound batch held that were left out, by reason
/// (`status` shows them): one revoked or unknown origin never keeps other
/// records out, and never goes unnoticed.
fn count_skipped(skipped: &[Skip], stats: &Mutex<MeshStats>) {
    let Some(first) = skipped.first() else { return };
    let mut stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
    for skip in skipped {
        *stats.skipped.entry(skip.reason().to_owned()).or_default() += 1;
    }
    drop(stats);
    tracing::debug!(target: "banmesh::events::record_ignored", skipped = skipped.len(), first = %first, "records skipped");
}

/// Stores the certificates and revocations a sound batch carried (the store
/// writer adds each to the trust once stored); returns whether any was new,
/// and the nodes newly revoked.
async fn store_trust_items(
    certs: Vec<banmesh_keys::Certificate>,
    revocations: Vec<banmesh_keys::Revocation>,
    store: &Store,
) -> (bool, Vec<PublicKey>) {
    let mut changed = false;
    let mut revoked = Vec::new();
    for cert in certs {
        changed |= store.add_certificate(cert).await.unwrap_or(false);
    }
    for revocation in revocations {
        let node = *revocation.node();
        if store.add_revocation(revocation).await.unwrap_or(false) {
            changed = true;
            revoked.push(node);
        }
    }
    (changed, revoked)
}
