//! Entry points for the fuzz targets (`fuzz/`), compiled only with the
//! `fuzzing` feature: they reach parsers and handlers that are private to
//! the node, without making those public.

pub use crate::cli::fuzz_rows as seed_rows;
pub use crate::gateway::fuzz as gateway;
pub use crate::mesh::sync::fuzz as sync;
