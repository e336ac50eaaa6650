//! The endpoints' shapes and status codes, and hostile input: none may get
//! a 5xx, every error body is JSON.

use serde_json::{Value, json};

use crate::common::TestCluster;
use crate::http::{gunzip, gzip, request};
use crate::{Gw, TOKEN, seed};

#[test]
fn gateway_endpoints_answer_in_the_old_servers_shapes() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 24, "2m", "48h"), None);

    let added = gw.add(&["192.0.2.7", "not-an-ip", "2001:DB8:0::1", "198.51.100.9", "192.0.2.7"]);
    assert_eq!(added["added_ips"], json!(["192.0.2.7", "2001:db8::1", "198.51.100.9"]));
    assert_eq!(added["invalid_ips"][0]["ip"], "not-an-ip");
    assert!(added["invalid_ips"][0]["error"].as_str().unwrap().contains("invalid"));
    assert!(added["message"].is_string());
    // A client token cannot ban or free a network (0.0.0.0/0 would lock
    // everyone out of the node).
    let wide = gw.add(&["0.0.0.0/0", "10.0.0.0/8"]);
    assert_eq!(wide["added_ips"], json!([]));
    assert!(wide["invalid_ips"][0]["error"].as_str().unwrap().contains("network"), "{wide}");
    assert_eq!(wide["invalid_ips"].as_array().unwrap().len(), 2, "{wide}");
    refused(&gw.post("/allow_ip", &json!({"ip": "0.0.0.0/0"})), 400, "allow_ip of a network");

    let all = gw.get("/get_ips");
    assert_eq!(all["total_items"], 3);
    assert_eq!(all["total"], 3);
    assert_eq!(all["search_ip"], "");
    assert_eq!(all["jail_counts"], json!({"sshd": 3}));
    let ips: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ip_address"].as_str().unwrap())
        .collect();
    let mut sorted = ips.clone();
    sorted.sort_unstable();
    assert_eq!(ips.len(), 3);
    let item = gw.item("/get_ips", "192.0.2.7").expect("listed");
    assert_eq!(item["status"], "blocked");
    assert_eq!(item["block_count"], 1);
    assert_eq!(item["jail"], "sshd");
    assert_eq!(item["reported_by"], "web1@127.0.0.1");
    assert_eq!(item["allowed_since"], Value::Null);
    let until = item["blocked_until"].as_str().unwrap();
    assert!(until.len() == 26 || until.len() == 19, "Python str(datetime): {until}");
    let id = item["id"].as_u64().unwrap();
    assert!(id > 0 && id < 1 << 52);
    assert_eq!(gw.get("/get_ips")["items"], all["items"], "a stable order");

    let page = gw.get("/get_ips?page=2&page_size=2");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0], all["items"][2]);
    assert_eq!(
        page["pagination"],
        json!({"total_items": 3, "total_pages": 2, "current_page": 2, "items_per_page": 2, "search_ip": ""})
    );
    assert_eq!(page["total"], 3);
    assert_eq!(gw.get("/get_ips?page=1&per_page=2")["items"].as_array().unwrap().len(), 2);
    assert_eq!(gw.get("/get_ips?page=9")["items"], json!([]));
    // An empty `page` is page 1 (issue 16), never the whole list.
    let first = gw.get("/get_ips?page=&per_page=2");
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["pagination"]["current_page"], 1);
    let found = gw.get("/get_ips?search_ip=2001:DB8");
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["ip_address"], "2001:db8::1");
    for path in ["/get_allowed_ips", "/get_known_ips"] {
        let empty = gw.get(path);
        assert_eq!(
            (empty["total"].clone(), empty["items"].clone()),
            (json!(0), json!([])),
            "{path}"
        );
        assert_eq!(gw.get(&format!("{path}?page=1"))["pagination"]["total_pages"], 0);
    }

    // X-Forwarded-For counts only from a trusted proxy (none configured).
    let auth = format!("Bearer {TOKEN}");
    let forwarded = [("Authorization", auth.as_str()), ("X-Forwarded-For", "203.0.113.99")];
    let reply = request(gw.port, "POST", "/add_ips", &forwarded, br#"{"ips": ["192.0.2.60"]}"#);
    assert_eq!(reply.status, 201);
    assert_eq!(gw.item("/get_ips", "192.0.2.60").unwrap()["reported_by"], "web1@127.0.0.1");

    // A JSON body without a JSON content type, gzip-compressed.
    let body = gzip(
        json!({"ips": ["203.0.113.5"], "description": "five failures"}).to_string().as_bytes(),
    );
    let reply = request(
        gw.port,
        "POST",
        "/add_ips",
        &[("Authorization", &auth), ("Content-Encoding", "gzip"), ("Content-Type", "text/plain")],
        &body,
    );
    assert_eq!(reply.status, 201, "{:?}", reply.json());
    assert_eq!(gw.item("/get_ips", "203.0.113.5").unwrap()["description"], "five failures");
    // A gzip answer when asked for.
    let reply = request(
        gw.port,
        "GET",
        "/get_ips",
        &[("Authorization", &auth), ("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    let plain: Value = serde_json::from_slice(&gunzip(&reply.body)).unwrap();
    assert_eq!(plain["total"], 5);

    // allow_ip: missing ip 400, unknown 404, not blocked 400, blocked 200.
    assert_eq!(gw.post("/allow_ip", &json!({})).status, 400);
    assert_eq!(gw.post("/allow_ip", &json!({"ip": "192.0.2.99"})).status, 404);
    let allowed = gw.post("/allow_ip", &json!({"ip": "192.0.2.7"}));
    assert_eq!(allowed.status, 200, "{:?}", allowed.json());
    let item = gw.item("/get_allowed_ips", "192.0.2.7").expect("allowed");
    assert_eq!(item["status"], "allowed");
    assert!(item["allowed_since"].is_string());
    assert!(gw.item("/get_ips", "192.0.2.7").is_none());
    assert_eq!(gw.post("/allow_ip", &json!({"ip": "192.0.2.7"})).status, 400, "no longer blocked");
    // An explicit allow wins: add_ips leaves the address out.
    assert_eq!(gw.add(&["192.0.2.7"])["added_ips"], json!([]));
    let node = cluster.node(gw.node);
    assert!(node.is_allowed("192.0.2.7"));
    assert!(node.is_banned("203.0.113.5"));
}

/// Every request must get a 4xx with a JSON `error`.
fn refused(reply: &crate::http::Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", String::from_utf8_lossy(&reply.body));
    assert!(reply.json()["error"].is_string(), "{what}: no JSON error");
}

#[test]
fn gateway_hostile_input_gets_4xx_with_json_errors_never_5xx() {
    let mut cluster = TestCluster::new();
    let toml = "[gateway]\nbody_limit = 4194304\ntrusted_proxies = [\"127.0.0.0/8\"]\n";
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 24, "2m", "48h"), Some(toml));
    let ok = [("Authorization", "Bearer tok1")];

    refused(&request(gw.port, "GET", "/get_ips", &[], b""), 401, "no token");
    refused(
        &request(gw.port, "GET", "/get_ips", &[("Authorization", "Bearer nope")], b""),
        401,
        "wrong token",
    );
    refused(
        &request(gw.port, "GET", "/get_ips", &[("Authorization", "Bearer admin123")], b""),
        401,
        "a [DEFAULT] value",
    );
    refused(
        &request(gw.port, "POST", "/add_ips", &[], b"{\"ips\":[\"192.0.2.1\"]}"),
        401,
        "no token on a write",
    );

    for (body, what) in [
        (&b"{\"ips\": [\"192.0.2.1\""[..], "malformed JSON"),
        (b"[\"192.0.2.1\"]", "a JSON array"),
        (b"null", "null"),
        (b"", "an empty body"),
        (b"{\"ips\": \"192.0.2.1\"}", "a string instead of a list"),
        (b"{\"ips\": []}", "an empty list"),
        (b"{}", "no ips"),
        (b"{\"ips\": [\"192.0.2.1\"], \"jail\": 5}", "a number as jail"),
    ] {
        refused(&request(gw.port, "POST", "/add_ips", &ok, body), 400, what);
    }
    for (body, what) in [
        (&b"[]"[..], "array"),
        (b"{\"ip\": 7}", "a number"),
        (b"{\"ip\": \"x\"}", "not an address"),
    ] {
        refused(&request(gw.port, "POST", "/allow_ip", &ok, body), 400, what);
    }
    refused(
        &request(
            gw.port,
            "POST",
            "/add_ips",
            &[ok[0], ("Content-Encoding", "gzip")],
            b"not gzip at all",
        ),
        400,
        "a body that does not decompress",
    );
    refused(
        &request(gw.port, "POST", "/add_ips", &[ok[0], ("Content-Encoding", "br")], b"{}"),
        415,
        "an unknown encoding",
    );

    // Over the limit, plain and as a gzip bomb (16 MiB of spaces in ~16 KiB).
    let big = vec![b' '; 5 << 20];
    refused(&request(gw.port, "POST", "/add_ips", &ok, &big), 413, "5 MiB plain");
    let mut bomb_text = b"{\"ips\": [\"192.0.2.1\"]".to_vec();
    bomb_text.extend(vec![b' '; 16 << 20]);
    bomb_text.push(b'}');
    let bomb = gzip(&bomb_text);
    assert!(bomb.len() < 100_000);
    let reply = request(gw.port, "POST", "/add_ips", &[ok[0], ("Content-Encoding", "gzip")], &bomb);
    refused(&reply, 413, "a gzip bomb");

    for query in [
        "page=0",
        "page=abc",
        "page=-1",
        "page=1&per_page=0",
        "page=1&per_page=-1",
        "page=1&page_size=abc",
        "per_page=0",
    ] {
        for list in ["/get_ips", "/get_allowed_ips", "/get_known_ips"] {
            refused(&request(gw.port, "GET", &format!("{list}?{query}"), &ok, b""), 400, query);
        }
    }
    for search in ["%27%3B%20DROP%20TABLE%20ip_addresses%3B--", "%25", "_", "%22%5C", "%00"] {
        let reply = request(gw.port, "GET", &format!("/get_ips?search_ip={search}"), &ok, b"");
        assert_eq!(reply.status, 200, "{search}");
        assert_eq!(reply.json()["total"], 0, "{search}");
    }
    refused(&request(gw.port, "GET", "/nowhere", &ok, b""), 404, "an unknown path");
    refused(&request(gw.port, "DELETE", "/get_ips", &ok, b""), 405, "a wrong method");

    // From a trusted proxy, the client is X-Forwarded-For's rightmost entry
    // that is not a trusted proxy; what it put further left is ignored.
    let forwarded = [ok[0], ("X-Forwarded-For", "198.51.100.1, 203.0.113.99, 127.0.0.1")];
    let reply = request(gw.port, "POST", "/add_ips", &forwarded, br#"{"ips": ["192.0.2.61"]}"#);
    assert_eq!(reply.status, 201);
    assert_eq!(gw.item("/get_ips", "192.0.2.61").unwrap()["reported_by"], "web1@203.0.113.99");

    // Invalid addresses are reported, the valid ones stored.
    let mixed = gw.post(
        "/add_ips",
        &json!({"ips": ["192.0.2.10", "not-an-ip", 7, null, "192.0.2.300", "10.0.0.0/33"]}),
    );
    assert_eq!(mixed.status, 201);
    let mixed = mixed.json();
    assert_eq!(mixed["added_ips"], json!(["192.0.2.10"]));
    assert_eq!(mixed["invalid_ips"].as_array().unwrap().len(), 5, "{mixed}");
    assert!(cluster.node(gw.node).is_banned("192.0.2.10"));

    // 100,000 addresses in one request: accepted in batches, no hang (the
    // answer comes within the client's read timeout; never timed here).
    let ips: Vec<String> =
        (0..100_000u32).map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)).collect();
    let reply = gw.post("/add_ips", &json!({"ips": ips, "jail": "sshd"}));
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["added_ips"].as_array().unwrap().len(), 100_000);
    assert_eq!(gw.get("/get_ips?page=1&per_page=1")["total"], 100_002);
}

#[test]
fn gateway_allow_ip_on_a_node_without_the_allow_role_is_refused_with_403() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 24, "2m", "48h"), None);
    // Re-enroll the node with the ban role only, and restart it.
    cluster.node_mut(gw.node).stop();
    let data_dir = cluster.node(gw.node).data_dir.clone();
    let cert = data_dir.join("node.cert");
    std::fs::remove_file(&cert).unwrap();
    crate::common::cli_ok(&[
        "keys",
        "enroll",
        "--cluster-key",
        crate::common::arg(&cluster.cluster_key),
        "--node-pub",
        crate::common::arg(&data_dir.join("node.pub")),
        "--name",
        "node1",
        "--roles",
        "ban",
        "--out",
        crate::common::arg(&cert),
    ]);
    cluster.node_mut(gw.node).restart();
    assert_eq!(gw.add(&["192.0.2.77"])["added_ips"], json!(["192.0.2.77"]));
    let reply = gw.post("/allow_ip", &json!({"ip": "192.0.2.77"}));
    refused(&reply, 403, "allow_ip without the allow role");
    assert!(reply.json()["error"].as_str().unwrap().contains("allow"), "{:?}", reply.json());
    assert!(cluster.node(gw.node).is_banned("192.0.2.77"), "the refused allow changed the ban");
}

/// A node whose clock was ten minutes ahead when it banned an address
/// refuses, once its clock is right, a new record on that key until the
/// wall clock passes the ban's `issued_at` (NodeError::ClockAhead). The
/// gateway answers that with 503 (it passes by itself), by the error's
/// variant: not with the 403 of a certificate that does not allow it.
#[test]
fn gateway_allow_ip_on_a_key_issued_ahead_of_the_clock_answers_503() {
    let mut cluster = TestCluster::new();
    let mut spec = cluster.spec("node1", &[]);
    spec.clock_offset = Some("+10m".to_owned());
    let gw = Gw::start_spec(&mut cluster, spec, &seed("1h", 24, "2m", "48h"), None);
    let node = gw.node;
    assert_eq!(gw.add(&["192.0.2.50"])["added_ips"], json!(["192.0.2.50"]));
    cluster.node_mut(node).stop();
    cluster.node_mut(node).set_clock_offset(None);
    cluster.node_mut(node).restart();
    let reply = gw.post("/allow_ip", &json!({"ip": "192.0.2.50"}));
    refused(&reply, 503, "allow_ip on a key issued ahead of the clock");
    let error = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("ahead of the wall clock"), "{error}");
}
