//! The blocklist importer's reader and line parser (`banmesh import`) on
//! any bytes: every line is read within the line cap, and a parsed entry's
//! key shows as text that parses back to itself.
#![no_main]

use banmesh_node::blocklist::{LineReader, MAX_LINE, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = LineReader::new(data);
    let mut buf = Vec::new();
    while let Ok(Some(_line)) = reader.next_line(&mut buf) {
        assert!(buf.len() <= MAX_LINE, "a line over the cap was kept");
        if let Ok(Some(entry)) = parse_line(&buf) {
            let text = entry.key.to_string();
            let again = parse_line(text.as_bytes()).expect("a shown key parses");
            assert_eq!(again.map(|e| e.key), Some(entry.key), "{text} did not parse back");
        }
    }
});
