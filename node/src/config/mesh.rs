//! `[mesh]`: how the node finds peers beyond `[node] peers` and the
//! addresses hellos carry (Kademlia over enrolled peers, mDNS on a LAN).
//! Written and validated here, apart from the other sections.

use serde::Deserialize;

use crate::mesh::discovery::Discovery;

/// `[mesh]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "mesh")]
pub(super) struct RawMesh {
    #[serde(default = "kademlia_on")]
    pub kademlia: bool,
    #[serde(default)]
    pub mdns: bool,
}

impl Default for RawMesh {
    fn default() -> RawMesh {
        let Discovery { kademlia, mdns } = Discovery::default();
        RawMesh { kademlia, mdns }
    }
}

fn kademlia_on() -> bool {
    Discovery::default().kademlia
}

/// `[mesh]`, validated (every value is valid).
pub(super) fn mesh(raw: RawMesh) -> Discovery {
    Discovery { kademlia: raw.kademlia, mdns: raw.mdns }
}
