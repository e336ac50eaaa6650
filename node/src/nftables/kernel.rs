//! The kernel's side: running `nft` (a transaction on its standard input,
//! or `-j list table`), and reading its JSON listing back into what the
//! table holds: sets (whether banmesh's own type and flags, and their
//! elements with the time left), counters and chains.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use banmesh_crdt::Key;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::elements::{Elements, Set};

/// The comment banmesh gives its table: a table of the same name without
/// it is someone else's, never touched.
pub const MARK: &str = "banmesh";
/// How long one `nft` call may take.
const NFT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why `nft` failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The program could not be started.
    #[error("cannot run {program} (apt-get install nftables, or set nftables.nft): {error}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        error: std::io::Error,
    },
    /// It ran past [`NFT_TIMEOUT`].
    #[error("{program} did not finish within {} s", NFT_TIMEOUT.as_secs())]
    Timeout {
        /// The program.
        program: String,
    },
    /// It refused: no permission, an overlap, a table of another shape.
    #[error("{program} refused{hint}: {stderr}")]
    Refused {
        /// The program.
        program: String,
        /// What it said.
        stderr: String,
        /// What to do, when known.
        hint: &'static str,
    },
    /// A table of banmesh's name that banmesh did not make.
    #[error(
        "table inet {table} exists but was not made by banmesh (it has no comment \"{MARK}\"): banmesh leaves it alone; delete it (nft delete table inet {table}) or set another nftables.table"
    )]
    NotOurs {
        /// Its name.
        table: String,
    },
    /// Its JSON could not be read.
    #[error("cannot read the output of nft -j: {0}")]
    Json(String),
}

/// One set as the kernel holds it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KernelSet {
    /// Whether its type and flags are banmesh's (else it is made again).
    pub ours: bool,
    /// Its elements, with their time left in ms (timed elements).
    pub elements: Vec<(Key, Option<u64>)>,
    /// Ranges (`A-B`), which banmesh never adds: removed on reconcile.
    pub foreign: Vec<String>,
}

/// One base or regular chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelChain {
    /// Its name.
    pub name: String,
    /// Its hook, for a base chain.
    pub hook: Option<String>,
    /// Its priority, for a base chain.
    pub prio: Option<i32>,
}

/// What the table holds; `exists` false when there is no table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// Whether the table exists.
    pub exists: bool,
    /// Whether it carries banmesh's comment ([`MARK`]).
    pub owned: bool,
    /// banmesh's sets found in it.
    pub sets: BTreeMap<Set, KernelSet>,
    /// Named counters: packets and bytes.
    pub counters: BTreeMap<String, (u64, u64)>,
    /// Its chains.
    pub chains: Vec<KernelChain>,
}

impl Kernel {
    /// What banmesh's own sets hold, as [`Elements`] (time left made an
    /// end from `now_ms`); sets of another shape count as empty.
    pub fn elements(&self, now_ms: u64) -> Elements {
        let mut out = BTreeMap::new();
        for (set, held) in self.sets.iter().filter(|(_, s)| s.ours) {
            for (key, left) in &held.elements {
                let until = if set.timed() {
                    // An element without a timeout in a timed set: never ends.
                    Some(left.map_or(u64::MAX, |l| now_ms.saturating_add(l)))
                } else {
                    None
                };
                out.insert((*set, *key), until);
            }
        }
        Elements(out)
    }
}

/// Runs `nft` with `args`, `input` on its standard input; its output.
pub async fn run(program: &str, args: &[&str], input: &str) -> Result<String, NftError> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.kill_on_drop(true);
    let spawn = |error| NftError::Spawn { program: program.to_owned(), error };
    let mut child = command.spawn().map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).await.map_err(spawn)?;
    }
    let output = tokio::time::timeout(NFT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| NftError::Timeout { program: program.to_owned() })?
        .map_err(spawn)?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let hint = if stderr.contains("Operation not permitted") {
        " (banmesh needs CAP_NET_ADMIN for nftables: run it as root or grant the capability)"
    } else {
        ""
    };
    Err(NftError::Refused { program: program.to_owned(), stderr, hint })
}

/// Reads table `inet TABLE`: an absent table is an empty [`Kernel`].
/// Whether it is banmesh's is read from its comment (`nft -t list`: the
/// JSON of nft 1.0.6 leaves table comments out).
pub async fn read(program: &str, table: &str) -> Result<Kernel, NftError> {
    let mut kernel = match run(program, &["-j", "list", "table", "inet", table], "").await {
        Ok(json) => parse(&json)?,
        Err(NftError::Refused { stderr, .. }) if stderr.contains("No such file or directory") => {
            return Ok(Kernel::default());
        }
        Err(e) => return Err(e),
    };
    if kernel.exists && !kernel.owned {
        let terse = run(program, &["-t", "list", "table", "inet", table], "").await?;
        kernel.owned = marked(&terse);
    }
    Ok(kernel)
}

/// Whether a table listing (`nft -t list table`) carries [`MARK`] as the
/// table's own comment (its first line inside the table's braces).
pub fn marked(listing: &str) -> bool {
    let wanted = format!("comment \"{MARK}\"");
    listing.lines().nth(1).is_some_and(|line| line.trim() == wanted)
}

/// Reads `nft -j list table` output.
pub fn parse(json: &str) -> Result<Kernel, NftError> {
    let value: Value = serde_json::from_str(json).map_err(|e| NftError::Json(e.to_string()))?;
    let items = value
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| NftError::Json("no \"nftables\" array".to_owned()))?;
    let mut out = Kernel::default();
    for item in items {
        if let Some(table) = item.get("table") {
            out.exists = true;
            out.owned = table.get("comment").and_then(Value::as_str) == Some(MARK);
        } else if let Some(set) = item.get("set") {
            let Some(name) = set.get("name").and_then(Value::as_str).and_then(Set::named) else {
                continue;
            };
            out.sets.insert(name, read_set(name, set));
        } else if let Some(counter) = item.get("counter") {
            let number = |k: &str| counter.get(k).and_then(Value::as_u64).unwrap_or(0);
            if let Some(name) = counter.get("name").and_then(Value::as_str) {
                out.counters.insert(name.to_owned(), (number("packets"), number("bytes")));
            }
        } else if let Some(chain) = item.get("chain") {
            let text = |k: &str| chain.get(k).and_then(Value::as_str).map(str::to_owned);
            out.chains.push(KernelChain {
                name: text("name").unwrap_or_default(),
                hook: text("hook"),
                prio: chain.get("prio").and_then(Value::as_i64).and_then(|p| i32::try_from(p).ok()),
            });
        }
    }
    Ok(out)
}

fn read_set(set: Set, json: &Value) -> KernelSet {
    let flags: Vec<&str> = match json.get("flags") {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let wanted_flag = if set.timed() { "timeout" } else { "interval" };
    let ours =
        json.get("type").and_then(Value::as_str) == Some(set.addr_type()) && flags == [wanted_flag];
    let mut out = KernelSet { ours, ..KernelSet::default() };
    for elem in json.get("elem").and_then(Value::as_array).into_iter().flatten() {
        let (val, left) = match elem.get("elem") {
            Some(inner) => {
                let left = inner.get("expires").and_then(Value::as_u64).map(|s| s * 1000);
                (inner.get("val").unwrap_or(&Value::Null), left)
            }
            None => (elem, None),
        };
        if let Some(key) = key_of(val) {
            out.elements.push((key, left));
        } else if let Some([Value::String(a), Value::String(b)]) =
            val.get("range").and_then(Value::as_array).map(Vec::as_slice)
        {
            out.foreign.push(format!("{a}-{b}"));
        }
    }
    out
}

/// An element's value as a key: `"ADDR"` or `{"prefix": {"addr", "len"}}`.
fn key_of(val: &Value) -> Option<Key> {
    if let Some(text) = val.as_str() {
        return text.parse().ok();
    }
    let prefix = val.get("prefix")?;
    let addr = prefix.get("addr")?.as_str()?;
    let len = prefix.get("len")?.as_u64()?;
    format!("{addr}/{len}").parse().ok()
}
