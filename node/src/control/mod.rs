//! The control socket: a root-only unix socket speaking length-prefixed,
//! versioned JSON, and its client (placeholder: being written).
