//! The node's configuration: one TOML file read into a raw form, then
//! validated once at start into [`Config`] (placeholder: being written).
