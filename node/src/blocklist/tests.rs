//! Unit tests of the line parser and the bounded line reader.

use std::io::{BufReader, Read as _};

use super::*;

fn key_of(line: &str) -> String {
    match parse_line(line.as_bytes()) {
        Ok(Some(entry)) => entry.key.to_string(),
        other => panic!("{line:?} gave {other:?}"),
    }
}

#[test]
fn plain_addresses_networks_and_comments() {
    assert_eq!(key_of("192.0.2.7"), "192.0.2.7");
    assert_eq!(key_of("  198.51.100.0/24  "), "198.51.100.0/24");
    assert_eq!(key_of("2001:db8::/32"), "2001:db8::/32");
    assert_eq!(key_of("192.0.2.7 # seen 3 times"), "192.0.2.7");
    assert_eq!(key_of("192.0.2.7\t;x"), "192.0.2.7");
    for blank in ["", "   ", "# FireHOL netset", "; Spamhaus DROP List", "#192.0.2.1", "\t"] {
        assert_eq!(parse_line(blank.as_bytes()), Ok(None), "{blank:?}");
    }
}

#[test]
fn spamhaus_drop_text_and_json() {
    assert_eq!(key_of("1.10.16.0/20 ; SBL256894"), "1.10.16.0/20");
    let json = r#"{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}"#;
    assert_eq!(key_of(json), "1.10.16.0/20");
    let meta = r#"{"type":"metadata","timestamp":1700000000,"size":1234,"records":2}"#;
    assert_eq!(parse_line(meta.as_bytes()), Ok(None));
    assert_eq!(parse_line(br#"{"sblid":"SBL1"}"#), Err(LineError::BadJson));
    assert_eq!(parse_line(b"{not json"), Err(LineError::BadJson));
    assert_eq!(
        parse_line(br#"{"cidr":"1.2.3.0/99"}"#),
        Err(LineError::BadKey("1.2.3.0/99".into()))
    );
}

#[test]
fn normalised_keys_say_so() {
    let mapped = parse_line(b"::ffff:192.0.2.1").expect("ok").expect("entry");
    assert_eq!(mapped.key.to_string(), "192.0.2.1");
    assert!(mapped.normalised);
    let cleared = parse_line(b"192.0.2.9/24").expect("ok").expect("entry");
    assert_eq!(cleared.key.to_string(), "192.0.2.0/24");
    assert!(cleared.normalised);
    assert!(!parse_line(b"192.0.2.9").expect("ok").expect("entry").normalised);
}

#[test]
fn bad_lines_say_why() {
    assert!(matches!(parse_line(b"not-an-ip"), Err(LineError::BadKey(_))));
    assert!(matches!(parse_line(b"192.0.2.1 192.0.2.2"), Err(LineError::TrailingText(_))));
    assert!(matches!(parse_line(b"1.2.3.4-1.2.3.9"), Err(LineError::BadKey(_))));
    assert_eq!(parse_line(b"\xff\xfe\x00junk"), Err(LineError::NotText));
    assert_eq!(parse_line(b"192.0.2.1\0"), Err(LineError::NotText));
    let long = "x".repeat(500);
    let Err(LineError::BadKey(shown)) = parse_line(long.as_bytes()) else { panic!("accepted") };
    assert!(shown.len() < 100, "{shown}");
}

#[test]
fn the_parser_survives_any_bytes() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..20_000 {
        let len = (state % 40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b"0123456789abcdef.:/#; {}\"\xff"[(state % 26) as usize]
            })
            .collect();
        let _ = parse_line(&bytes);
    }
}

#[test]
fn the_reader_caps_lines_and_skips_the_rest() {
    let mut input = b"a\r\nbb\n".to_vec();
    input.extend(std::iter::repeat_n(b'z', MAX_LINE * 3));
    input.extend_from_slice(b"\nlast");
    let mut reader = LineReader::new(BufReader::with_capacity(64, &input[..]));
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    while let Some(line) = reader.next_line(&mut buf).expect("read") {
        lines.push((line, buf.len(), buf.first().copied()));
    }
    let line = |number, too_long| Line { number, too_long };
    assert_eq!(
        lines,
        vec![
            (line(1, false), 1, Some(b'a')),
            (line(2, false), 2, Some(b'b')),
            (line(3, true), MAX_LINE, Some(b'z')),
            (line(4, false), 4, Some(b'l')),
        ]
    );
    assert_eq!(reader.consumed(), input.len() as u64);
}

#[test]
fn a_huge_line_is_read_in_bounded_memory() {
    // 64 MiB without a newline, produced as it is read: the buffer stays at MAX_LINE.
    let endless = std::io::repeat(b'7').take(64 << 20).chain(&b"\n192.0.2.1\n"[..]);
    let mut reader = LineReader::new(BufReader::new(endless));
    let mut buf = Vec::new();
    let first = reader.next_line(&mut buf).expect("read").expect("line");
    assert!(first.too_long);
    assert!(buf.capacity() <= 2 * MAX_LINE, "{}", buf.capacity());
    reader.next_line(&mut buf).expect("read").expect("line");
    assert_eq!(buf, b"192.0.2.1");
    assert_eq!(reader.next_line(&mut buf).expect("read"), None);
}
