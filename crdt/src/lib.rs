//! The replicated state of banmesh: the signed record, its canonical bytes,
//! the total order, the merge, decisions, expiry, GC and the clock rule.
//! Sans-IO: no clock, RNG, network or disk; `now` is always a parameter.

pub mod duration;
