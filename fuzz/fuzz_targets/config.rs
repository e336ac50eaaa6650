//! The configuration file parser and validator on any text.
#![no_main]

use banmesh_node::config::{Config, Overrides};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::from_toml(text, "fuzz.toml", &Overrides::default());
});
