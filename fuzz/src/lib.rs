//! What the fuzz targets share: a fixed cluster with two enrolled nodes and
//! one revoked, and statements built from fuzzer bytes (`arbitrary`) that are
//! then signed for real, so a target gets past the signature checks.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use banmesh_crdt::{Hlc, Key, Kind, Metadata, Origin, Params, Record, Statement};
use banmesh_keys::cert::Certificate;
use banmesh_keys::record::{origin_of, sign_record};
use banmesh_keys::revocation::Revocation;
use banmesh_keys::roles::{Role, Roles};
use banmesh_keys::{PublicKey, SecretKey};
use banmesh_node::mesh::Trust;

/// The `now` the targets judge at (November 2023): before the machine's
/// clock, so targets that run the node's own tasks (which read the clock)
/// find the fixture's records in the past.
pub const NOW_MS: u64 = 1_700_000_000_000;
/// How long the fixture's certificates last from a day before [`NOW_MS`].
const CERT_LIFE_MS: u64 = 100 * 365 * 86_400_000;

/// A fixed cluster: its key, nodes, certificates and the trust built from them.
pub struct Fixture {
    /// The cluster's secret key.
    pub cluster: SecretKey,
    /// Enrolled nodes' secret keys: 0 may ban and allow, 1 only ban.
    pub nodes: [SecretKey; 3],
    /// Certificates of the three nodes.
    pub certs: [Certificate; 3],
    /// A revocation of node 2.
    pub revocation: Revocation,
    /// A trust knowing the cluster, the certificates and the revocation.
    pub trust: Trust,
}

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let cluster = SecretKey::from_bytes(&[7; 32]);
        let nodes = [1u8, 2, 3].map(|b| SecretKey::from_bytes(&[b; 32]));
        let roles = [
            Roles::NONE.with(Role::Ban).with(Role::Allow),
            Roles::NONE.with(Role::Ban),
            Roles::NONE.with(Role::Ban).with(Role::Allow),
        ];
        let names = ["alpha", "beta", "gamma"];
        let certs = [0, 1, 2].map(|i| {
            Certificate::issue(
                &cluster,
                nodes[i].public(),
                names[i],
                roles[i],
                NOW_MS - 86_400_000,
                NOW_MS + CERT_LIFE_MS,
                None,
            )
            .expect("fixture certificate")
        });
        let revocation = Revocation::issue(&cluster, nodes[2].public(), NOW_MS, "stolen")
            .expect("fixture revocation");
        let mut trust = Trust::new(cluster.public());
        for cert in &certs {
            trust.add_certificate(cert.clone()).expect("fixture certificate is trusted");
        }
        trust.add_revocation(revocation.clone()).expect("fixture revocation is trusted");
        Fixture { cluster, nodes, certs, revocation, trust }
    })
}

/// The cluster parameters the targets judge by.
pub fn params() -> Params {
    Params::default()
}

/// A statement's fields as the fuzzer picks them; [`ArbStatement::sign`]
/// turns it into a record signed by one of the fixture's nodes.
#[derive(Debug, Arbitrary)]
pub struct ArbStatement {
    /// Which node signs (mod 3); also the origin unless `foreign_origin`.
    pub signer: u8,
    /// An origin that is not the signer's (signature then fails).
    pub foreign_origin: Option<[u8; 32]>,
    /// v6 or v4.
    pub v6: bool,
    /// The address bytes (the first 4 for v4).
    pub addr: [u8; 16],
    /// The prefix length (clamped to the family's maximum).
    pub prefix: u8,
    /// The kind (mod 4).
    pub kind: u8,
    /// Milliseconds relative to [`NOW_MS`] (may be far off).
    pub issued_offset: i64,
    /// The HLC counter.
    pub counter: u16,
    /// The expiry, relative to `issued_at`.
    pub expires: Option<u64>,
    /// Strikes.
    pub strikes: u32,
    /// Jail, reason, source.
    pub jail: String,
    /// See `jail`.
    pub reason: String,
    /// See `jail`.
    pub source: String,
}

impl ArbStatement {
    /// The statement (possibly breaking cluster rules).
    pub fn statement(&self) -> Statement {
        let f = fixture();
        let signer = &f.nodes[usize::from(self.signer % 3)];
        let net = if self.v6 {
            let addr = std::net::Ipv6Addr::from(self.addr);
            ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(addr, self.prefix % 129).trunc())
        } else {
            let a = self.addr;
            let addr = std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(addr, self.prefix % 33).trunc())
        };
        let issued_ms = NOW_MS.saturating_add_signed(self.issued_offset);
        let counter = u64::from(self.counter);
        Statement {
            key: Key::from_net(net),
            kind: Kind::ALL[usize::from(self.kind % 4)],
            issued_at: Hlc(Hlc::from_millis(issued_ms).0 | counter),
            expires_at: self.expires.map(|e| issued_ms.saturating_add(e)),
            strikes: self.strikes,
            meta: Metadata {
                jail: self.jail.clone(),
                reason: self.reason.clone(),
                source: self.source.clone(),
            },
            origin: self.foreign_origin.map_or_else(|| origin_of(&signer.public()), Origin),
        }
    }

    /// The statement signed by its signer.
    pub fn sign(&self) -> Record {
        let secret = &fixture().nodes[usize::from(self.signer % 3)];
        let statement = self.statement();
        if self.foreign_origin.is_none() {
            return sign_record(secret, statement);
        }
        let signature = secret.sign(&statement.signed_bytes());
        Record::new(statement, signature)
    }
}

/// A gossip batch of up to `max` of `records`, each signed, with the
/// fixture certificates whose bits are set in `certs` riding along, and
/// the revocation of node 2 when `revocation`.
pub fn signed_batch(
    records: &[ArbStatement],
    max: usize,
    certs: u8,
    revocation: bool,
) -> banmesh_node::mesh::batch::Batch {
    let f = fixture();
    banmesh_node::mesh::batch::Batch {
        certs: (0..3).filter(|i| certs & (1 << i) != 0).map(|i| f.certs[i].clone()).collect(),
        revocations: if revocation { vec![f.revocation.clone()] } else { Vec::new() },
        records: records.iter().take(max).map(ArbStatement::sign).collect(),
    }
}

/// The public key of fixture node `i`.
pub fn node_key(i: usize) -> PublicKey {
    fixture().nodes[i].public()
}

pub mod seeds;

/// Writes the seed corpora when `BANMESH_FUZZ_SEEDS` names a directory
/// (see [`seeds`]); the `record` target calls it at start.
pub fn write_seeds_if_asked() {
    if let Some(dir) = std::env::var_os("BANMESH_FUZZ_SEEDS") {
        seeds::write_all(std::path::Path::new(&dir)).expect("seeds written");
    }
}
