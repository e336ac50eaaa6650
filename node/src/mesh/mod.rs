//! The mesh: gossip of signed record batches over libp2p, the hello
//! exchange, and anti-entropy (being built; the message format and the
//! trust rules come first).

pub mod batch;
pub mod trust;

#[cfg(test)]
mod tests;
