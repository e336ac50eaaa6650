//! placeholder until certificates land
