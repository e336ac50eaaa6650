//! The `banmesh` binary.

fn main() {}
