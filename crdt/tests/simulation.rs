//! A seeded, virtual-time simulation of N replicas that issue records by the
//! clock rule and gossip them over a network that loses, duplicates, delays
//! and reorders messages, then run anti-entropy until they agree. Every seed
//! must converge to one state, one digest and one decision per address.

mod common;

use std::collections::BTreeMap;

use banmesh_crdt::{HlcClock, Kind, Record, State};
use common::*;

const REPLICAS: usize = 6;
const ISSUE_STEPS: u64 = 300;
const LOSS_PERCENT: u64 = 25;
const DUP_PERCENT: u64 = 15;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Replica {
    state: State,
    clock: HlcClock,
    /// This replica's wall clock runs this many ms ahead of true time.
    skew_ms: u64,
}

struct Net {
    rng: Rng,
    /// Messages in flight by (delivery time, sequence): destination, records.
    queue: BTreeMap<(u64, u64), (usize, Vec<Record>)>,
    seq: u64,
}

impl Net {
    /// Sends with loss, duplication and a random delay (so reordering).
    fn send(&mut self, now: u64, to: usize, records: Vec<Record>) {
        let copies = if self.rng.below(100) < DUP_PERCENT { 2 } else { 1 };
        for _ in 0..copies {
            if self.rng.below(100) < LOSS_PERCENT {
                continue;
            }
            self.seq += 1;
            let at = now + self.rng.below(60);
            self.queue.insert((at, self.seq), (to, records.clone()));
        }
    }

    fn deliver_until(&mut self, now: u64, replicas: &mut [Replica]) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (to, records) = entry.remove();
            for r in records {
                replicas[to].state.insert(r);
            }
        }
    }
}

fn issue(rng: &mut Rng, replica: &mut Replica, origin: u8, now: u64) -> Record {
    let kind = Kind::ALL[rng.below(4) as usize];
    let key = rng.below(KEYS.len() as u64) as usize;
    let probe = record(kind, key, origin, banmesh_crdt::Hlc(0), 1, 1);
    let greatest = replica.state.greatest_on_key(probe.key());
    // The replicas' clocks differ by a few ms: no record is ever beyond a bound.
    let at = replica.clock.issue(now + replica.skew_ms, greatest, u64::MAX).expect("no bound");
    record(kind, key, origin, at, 1 + rng.below(PARAMS.max_ttl_ms), 1 + rng.below(3) as u32)
}

fn run(seed: u64) {
    let mut rng = Rng(seed);
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|_| Replica { state: State::new(), clock: HlcClock::default(), skew_ms: rng.below(5) })
        .collect();
    let mut net = Net { rng: Rng(seed ^ 0xabad_cafe), queue: BTreeMap::new(), seq: 0 };
    for now in 0..ISSUE_STEPS {
        let who = rng.below(REPLICAS as u64) as usize;
        let r = issue(&mut rng, &mut replicas[who], who as u8, now);
        replicas[who].state.insert(r.clone());
        for _ in 0..2 {
            let to = rng.below(REPLICAS as u64) as usize;
            net.send(now, to, vec![r.clone()]);
        }
        net.deliver_until(now, &mut replicas);
    }
    // Anti-entropy: each round every replica sends its state to a random peer
    // over the same lossy network, until every replica agrees.
    let mut now = ISSUE_STEPS;
    for round in 0.. {
        assert!(round < 500, "seed {seed}: no convergence after 500 anti-entropy rounds");
        for replica in &replicas {
            let to = rng.below(REPLICAS as u64) as usize;
            net.send(now, to, replica.state.records().cloned().collect());
        }
        now += 100;
        net.deliver_until(now, &mut replicas);
        if replicas.iter().all(|r| r.state == replicas[0].state) {
            break;
        }
    }
    let digest = replicas[0].state.digest(0, &PARAMS);
    for (i, r) in replicas.iter().enumerate() {
        assert_eq!(r.state.digest(0, &PARAMS), digest, "seed {seed}: digest of replica {i}");
        for a in addrs() {
            for t in (0..ISSUE_STEPS + PARAMS.max_ttl_ms).step_by(7) {
                assert_eq!(r.state.decision(a, t), replicas[0].state.decision(a, t));
            }
        }
    }
    // The simulation did exercise something: many slots, and bans that held.
    assert!(replicas[0].state.len() > 20, "seed {seed}: only {} records", replicas[0].state.len());
}

#[test]
fn replicas_converge_under_loss_duplication_and_reordering() {
    for seed in 0..40 {
        run(seed);
    }
}
