//! Bans issued at a paced rate on random nodes, straight through their
//! control sockets (no `banmesh ban` process per ban, which held the rate
//! near 100/s beside 30 nodes), each call in its own task so a slow answer
//! does not hold back the schedule. Shared by the loopback propagation
//! bench and the netns bench.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use banmesh_node::control::client::call_within;
use banmesh_node::control::protocol::{Command as Ctl, Response};

use super::logs::{ms, pct};
use super::nodes::CALL_LIMIT;

/// splitmix64: a seeded PRNG without a crate.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// What issuing did.
pub struct Issued {
    /// Bans the nodes acknowledged.
    pub ok: usize,
    /// Time from the first ban to the last one's answer.
    pub secs: f64,
}

/// Issues `bans` one-hour bans, on `10.x.y.z` from ban 0 up, at `rate` a
/// second on nodes picked at random (seeded by `seed`); prints what was
/// reached and how long the control calls took.
pub async fn paced(sockets: Arc<Vec<PathBuf>>, bans: u64, rate: u64, seed: u64) -> Issued {
    let mut rng = SplitMix(seed);
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for b in 0..bans {
        tick.tick().await;
        let on = usize::try_from(rng.next() % sockets.len() as u64).unwrap_or(0);
        let key = format!("10.{}.{}.{}", (b >> 16) & 255, (b >> 8) & 255, (b & 255));
        let sockets = sockets.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ban = Ctl::Ban {
                key,
                duration_ms: Some(3_600_000),
                permanent: false,
                jail: None,
                reason: None,
            };
            let ok = match call_within(&sockets[on], ban, CALL_LIMIT).await {
                Ok(Response::Written { .. }) => Ok(()),
                Ok(other) => Err(format!("{other:?}")),
                Err(e) => Err(e.to_string()),
            };
            (ok, t.elapsed())
        }));
    }
    let scheduled = start.elapsed();
    let (mut ok, mut call_us, mut errors) = (0usize, Vec::new(), Vec::new());
    for t in tasks {
        let (r, took) = t.await.expect("ban task");
        call_us.push(i64::try_from(took.as_micros()).unwrap_or(i64::MAX));
        match r {
            Ok(()) => ok += 1,
            Err(e) => errors.push(e),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    call_us.sort_unstable();
    println!(
        "issued {ok}/{bans} bans in {secs:.2} s (schedule {:.2} s, {:.0}/s achieved); \
         control call p50 {} ms, p99 {} ms, max {} ms",
        scheduled.as_secs_f64(),
        bans as f64 / scheduled.as_secs_f64(),
        ms(pct(&call_us, 0.5)),
        ms(pct(&call_us, 0.99)),
        ms(pct(&call_us, 1.0)),
    );
    for e in errors.iter().take(5) {
        println!("  ban error: {e}");
    }
    Issued { ok, secs }
}
