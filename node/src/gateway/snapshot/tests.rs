//! Lists: the paged and unpaged forms, search, and patching by changed
//! keys (shared chunks, counts moved by the changes).

use chrono::Timelike as _;

use super::*;

fn item(ip: &str, jail: &str) -> Item {
    let key: Key = ip.parse().unwrap();
    let meta = Meta { jail: jail.into(), reason: "".into(), source: "".into() };
    Item {
        key,
        block_count: 1,
        id: key_id(key),
        ban_end_ms: NO_TIME,
        allowed_since_ms: NO_TIME,
        meta: Some(Arc::new(meta)),
    }
}

fn puts(items: impl IntoIterator<Item = Item>) -> Vec<Change> {
    let mut changes: Vec<Change> = items.into_iter().map(Change::Put).collect();
    changes.sort_by_key(Change::key);
    changes
}

fn list() -> List {
    let items = [("192.0.2.1", "sshd"), ("192.0.2.2", ""), ("198.51.100.3", "sshd")];
    List::new(Status::Blocked).patched(&puts(items.map(|(ip, jail)| item(ip, jail))))
}

fn json(bytes: bytes::Bytes) -> serde_json::Value {
    serde_json::from_slice(&bytes).unwrap()
}

fn ips(value: &serde_json::Value) -> Vec<&str> {
    value["items"].as_array().unwrap().iter().map(|i| i["ip_address"].as_str().unwrap()).collect()
}

#[test]
fn unpaged_and_paged_forms_carry_total() {
    let list = list();
    let all = json(list.full(false));
    assert_eq!(all["total_items"], 3);
    assert_eq!(all["total"], 3);
    assert_eq!(all["search_ip"], "");
    assert_eq!(all["jail_counts"], serde_json::json!({"sshd": 2, "unknown": 1}));
    assert_eq!(ips(&all), ["192.0.2.1", "192.0.2.2", "198.51.100.3"]);
    assert_eq!(all["items"][0]["status"], "blocked");
    assert_eq!(
        all["items"][1]["jail"],
        serde_json::Value::Null,
        "no jail is null, counted unknown"
    );
    assert_eq!(json(list.answer("", &Page::All)), all);
    let page = json(list.answer("", &Page::Number { page: 2, per_page: 2 }));
    assert_eq!(ips(&page), ["198.51.100.3"]);
    assert_eq!(
        page["pagination"],
        serde_json::json!({"total_items": 3, "total_pages": 2, "current_page": 2, "items_per_page": 2, "search_ip": ""})
    );
    assert_eq!(page["total"], 3);
    let beyond = json(list.answer("", &Page::Number { page: 9, per_page: 2 }));
    assert_eq!(beyond["items"], serde_json::json!([]));
}

#[test]
fn search_filters_items_and_counts() {
    let list = list();
    let found = json(list.answer("192.0", &Page::All));
    assert_eq!(found["total"], 2);
    assert_eq!(found["jail_counts"], serde_json::json!({"sshd": 1, "unknown": 1}));
    let paged = json(list.answer("192.0", &Page::Number { page: 2, per_page: 1 }));
    assert_eq!(ips(&paged), ["192.0.2.2"]);
    let nothing = json(list.answer("'; DROP TABLE ip_addresses; --", &Page::All));
    assert_eq!(nothing["total"], 0);
    assert_eq!(nothing["search_ip"], "'; DROP TABLE ip_addresses; --");
}

#[test]
fn a_patch_shares_the_chunks_no_change_falls_in() {
    let many: Vec<Item> = (0..5_000u32)
        .map(|i| item(&std::net::Ipv4Addr::from(0x0a00_0000 + i * 2).to_string(), "sshd"))
        .collect();
    let first = List::new(Status::Blocked).patched(&puts(many.clone()));
    assert_eq!(first.len(), 5_000);
    assert!(first.chunk_count() > 4, "{} chunks", first.chunk_count());
    let added = item("10.0.0.3", "nginx");
    let gone = Change::Remove(many[4_000].key);
    let second = first.patched(&[Change::Put(added.clone()), gone]);
    assert_eq!(second.len(), 5_000);
    let shared = first.chunks.iter().filter(|c| second.chunks.iter().any(|d| Arc::ptr_eq(c, d)));
    assert_eq!(shared.count(), first.chunk_count() - 2, "only the two chunks changed were copied");
    assert_eq!(second.items().nth(2), Some(&added));
    assert!(!second.items().any(|i| i.key == many[4_000].key));
    let counts: Vec<_> = second.jail_counts().collect();
    assert_eq!(counts, [("nginx", 1), ("sshd", 4_999)]);
    let page = json(second.answer("", &Page::Number { page: 3_000, per_page: 1 }));
    assert_eq!(
        page["items"][0]["ip_address"],
        many[2_998].key.to_string(),
        "positions past the put"
    );
    let emptied =
        second.patched(&second.items().map(|i| Change::Remove(i.key)).collect::<Vec<_>>());
    assert!(emptied.is_empty());
    assert_eq!(emptied.chunk_count(), 0);
    assert_eq!(emptied.jail_counts().count(), 0);
}

#[test]
fn ids_take_52_bits_and_times_look_like_python() {
    let key: Key = "192.0.2.7".parse().unwrap();
    assert!(key_id(key) < 1 << 52);
    assert_eq!(key_id(key), key_id("::ffff:192.0.2.7".parse().unwrap()));
    assert_ne!(key_id(key), key_id("192.0.2.8".parse().unwrap()));
    let t = local_time(1_764_075_368_123).unwrap();
    assert_eq!(t.len(), "2026-11-25 12:56:08.123000".len(), "{t}");
    assert!(t.ends_with(".123000"), "{t}");
    assert_eq!(local_time(1_764_075_368_000).unwrap().len(), 19);
}

/// The item as the old code wrote it: serde over the schema's struct.
use crate::gateway::compat::ItemJson;

fn chrono_time(ms: u64) -> Option<String> {
    let utc = chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    let local = utc.with_timezone(&chrono::Local).naive_local();
    let format =
        if local.nanosecond() == 0 { "%Y-%m-%d %H:%M:%S" } else { "%Y-%m-%d %H:%M:%S%.6f" };
    Some(local.format(format).to_string())
}

#[test]
fn items_are_written_as_serde_and_chrono_wrote_them() {
    let mut state = 11u64;
    for n in 0..2_000u64 {
        state =
            state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let ms = (state >> 20) % (1 << 47);
        let ms = if n % 3 == 0 { ms - ms % 1_000 } else { ms };
        assert_eq!(local_time(ms), chrono_time(ms), "{ms}");
        let texts = ["", "sshd", "a \"quoted\" \\ reason\n", "ünïcode"];
        let pick = |i: u64| texts[usize::try_from((state >> i) % 4).unwrap()];
        let meta = Meta { jail: pick(3).into(), reason: pick(7).into(), source: pick(11).into() };
        let key: Key = if n % 2 == 0 {
            "2001:db8::/48".parse().unwrap()
        } else {
            "192.0.2.9".parse().unwrap()
        };
        let item = Item {
            key,
            block_count: u32::try_from(n % 5).unwrap(),
            id: key_id(key),
            ban_end_ms: if n % 4 == 1 { NO_TIME } else { ms },
            allowed_since_ms: if n % 4 == 2 { ms / 2 } else { NO_TIME },
            meta: (n % 5 != 0).then(|| Arc::new(meta)),
        };
        let m = item.meta.as_deref();
        let expected = ItemJson {
            id: item.id,
            ip_address: &key.to_string(),
            description: m.map(|m| &*m.reason).filter(|t| !t.is_empty()),
            status: "known",
            reported_by: m.map(|m| &*m.source).filter(|t| !t.is_empty()),
            blocked_until: some_time(item.ban_end_ms).and_then(chrono_time),
            allowed_since: some_time(item.allowed_since_ms).and_then(chrono_time),
            block_count: item.block_count,
            jail: m.map(|m| &*m.jail).filter(|t| !t.is_empty()),
        };
        let mut out = Vec::new();
        item.write_json(Status::Known, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&expected).unwrap());
    }
}

#[test]
fn a_search_sent_in_pieces_is_the_whole_answer() {
    use std::io::Read as _;
    let many = (0..3_000u32).map(|n| {
        let ip = format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255);
        item(&ip, if n % 3 == 0 { "sshd" } else { "" })
    });
    let list = Arc::new(List::new(Status::Blocked).patched(&puts(many)));
    for (search, page) in [
        (".", Page::All),
        ("10.0.1", Page::All),
        (".", Page::Number { page: 3, per_page: 700 }),
        ("not there", Page::All),
    ] {
        let whole = list.answer(search, &page);
        let mut plain = Search::new(list.clone(), search.to_owned(), page);
        let pieces: Vec<_> = std::iter::from_fn(|| plain.next_piece(1_000)).collect();
        assert!(whole.len() < 2_000 || pieces.len() > whole.len() / 2_000, "{search}: one piece");
        assert!(pieces.iter().all(|p| p.len() < 1_000 + 300), "{search}: a piece past its size");
        assert_eq!(pieces.concat(), whole, "{search} {page:?}");
        let mut gzipped = Search::new(list.clone(), search.to_owned(), page);
        let mut head = Vec::new();
        gzipped.render(&mut head, 1_000);
        let mut packed = gzipped.start_gzip(&head).to_vec();
        while let Some(piece) = gzipped.next_piece(1_000) {
            packed.extend_from_slice(&piece);
        }
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut unpacked).unwrap();
        assert_eq!(unpacked, whole, "{search} {page:?} gzipped");
    }
    let all = json(list.answer(".", &Page::All));
    assert_eq!(all["items"], json(list.full(false))["items"], "every item matches `.`");
    assert_eq!(all["jail_counts"], serde_json::json!({"sshd": 1_000, "unknown": 2_000}));
}
