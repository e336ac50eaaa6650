//! The warning for records this node issued while its clock was ahead: they
//! are future-dated for every peer until the wall clock catches up, and new
//! records on their keys are refused until then (see `HlcClock::issue`).

use std::time::Duration;

use banmesh_crdt::Hlc;
use banmesh_crdt::duration::format_duration;
use banmesh_keys::time::format_rfc3339;

use super::Queries;
use crate::clock::now_ms;
use crate::store::query;

impl Queries {
    /// [`ahead_warning`] for this node's own records, now.
    pub(super) async fn clock_ahead_warning(&self) -> Option<String> {
        let origin = banmesh_keys::origin_of(&self.standing().node_key);
        let greatest = self.store.read(move |c, p| query::greatest_issued_by(c, p, origin)).await;
        let greatest = match greatest {
            Ok(greatest) => greatest,
            Err(e) => return Some(format!("cannot read this node's clock high-water mark: {e}")),
        };
        ahead_warning(greatest, now_ms(), self.config.cluster.params.skew_bound_ms)
    }
}

/// A warning when this node's greatest `issued_at` is more than the skew
/// bound ahead of the wall clock: peers ignore those records as future-dated.
pub fn ahead_warning(greatest_own: Option<Hlc>, now_ms: u64, skew_bound_ms: u64) -> Option<String> {
    let greatest = greatest_own?.millis();
    let ahead = greatest.checked_sub(now_ms.saturating_add(skew_bound_ms))?;
    (ahead > 0).then(|| {
        format!(
            "this node issued records up to {} ahead of the wall clock (its clock was ahead): \
             peers ignore them as future-dated until {}; new records are issued at wall-clock \
             time, except on those records' keys, where they are refused until then",
            rough(greatest - now_ms),
            format_rfc3339(greatest - skew_bound_ms),
        )
    })
}

/// A duration for a person: to the minute past an hour, else to the second.
fn rough(ms: u64) -> String {
    let secs = ms.div_ceil(1000);
    let secs = if secs >= 3600 { secs.div_ceil(60) * 60 } else { secs };
    format_duration(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_beyond_the_skew_bound_and_names_the_gap() {
        let now = 1_700_000_000_000;
        assert_eq!(ahead_warning(None, now, 30_000), None);
        assert_eq!(ahead_warning(Some(Hlc::from_millis(now - 5_000)), now, 30_000), None);
        assert_eq!(ahead_warning(Some(Hlc::from_millis(now + 30_000)), now, 30_000), None);
        let day = ahead_warning(Some(Hlc::from_millis(now + 86_399_500)), now, 30_000)
            .expect("a day ahead warns");
        assert!(day.contains("up to 1d ahead of the wall clock"), "{day}");
        assert!(day.contains(&format_rfc3339(now + 86_399_500 - 30_000)), "{day}");
    }
}
