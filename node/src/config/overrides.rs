//! The values given on the command line ([`Overrides`]), laid over the
//! file's before validation.

use std::path::PathBuf;

use super::DEFAULT_GATEWAY_LISTEN;
use super::raw::RawConfig;

/// Values given on the command line, laid over the file before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct Overrides {
    /// The data directory (node.data_dir); the node key and certificate
    /// follow it unless the file names them.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A multiaddr to listen on (node.listen); repeat for more. Replaces
    /// the file's list.
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// A peer's multiaddr to dial (node.peers); repeat for more. Replaces the
    /// file's list.
    #[arg(long = "peer", value_name = "MULTIADDR")]
    pub peers: Vec<String>,
    /// The control socket (node.socket).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The cluster's public key (cluster.public_key).
    #[arg(long, value_name = "FILE")]
    pub cluster_pub: Option<PathBuf>,
    /// Serve the Fail2BanSync REST API on ADDR (gateway.listen; without
    /// ADDR, 127.0.0.1:5000).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = DEFAULT_GATEWAY_LISTEN)]
    pub gateway: Option<String>,
    /// The old Fail2BanSync server's serverconfig.ini: its [api_tokens] and
    /// ban settings (gateway.seed_config).
    #[arg(long, value_name = "FILE")]
    pub seed_config: Option<PathBuf>,
}

impl Overrides {
    pub(super) fn apply(&self, raw: &mut RawConfig) {
        let node = &mut raw.node;
        if let Some(dir) = &self.data_dir {
            node.data_dir.clone_from(dir);
        }
        if let Some(socket) = &self.socket {
            node.socket.clone_from(socket);
        }
        if !self.listen.is_empty() {
            node.listen.clone_from(&self.listen);
        }
        if !self.peers.is_empty() {
            node.peers.clone_from(&self.peers);
        }
        if let Some(public_key) = &self.cluster_pub {
            raw.cluster.public_key = Some(public_key.clone());
        }
        if let Some(listen) = &self.gateway {
            raw.gateway.listen = Some(listen.clone());
        }
        if let Some(seed) = &self.seed_config {
            raw.gateway.seed_config = Some(seed.clone());
        }
    }
}
