//! The `sync` lines of `banmesh status`: sessions since start, and each
//! running session's progress.

use crate::control::views::SyncView;

/// `sync:` and one line per running session, each ending in a newline.
pub fn lines(s: &SyncView) -> String {
    let mut out = format!(
        "{:<14}{} opened, {} answered, {} streams sent, {} refused, {} skipped (a session \
         with that peer ran)\n",
        "sync:", s.initiated, s.answered, s.streamed, s.refused, s.skipped
    );
    for r in &s.running {
        let what = if r.stream { "streaming" } else { "reconciling" };
        let of = r.total.map_or_else(String::new, |t| format!(" of {t}"));
        let eta = r.eta_s.map_or_else(String::new, |e| format!(", about {e} s left"));
        let mb = r.bytes as f64 / 1e6;
        out.push_str(&format!(
            "{:<14}{} {what} with {}: {} records{of}, {mb:.1} MB{eta}\n",
            "", r.role, r.peer_id, r.records
        ));
    }
    out
}
