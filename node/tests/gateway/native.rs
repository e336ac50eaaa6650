//! The native API (`/v1/`) on a real node over real HTTP: every endpoint,
//! every error code in the one error shape, read-only tokens refused on
//! writes (native and compatible), and cursor pages that neither repeat nor
//! skip a key while records are added between them.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::TestCluster;
use crate::http::{Reply, request};
use crate::{Gw, seed};

const READER: &str = "read-tok";
const WRITER: &str = "write-tok";
const ADMIN: &str = "admin-tok";

/// Tokens: `reader` may only read, `writer` (no role: the default) writes
/// addresses, `admin` networks too.
const TOKENS: &str = "[gateway.tokens]\nreader = { token = \"read-tok\", role = \"read\" }\n\
                      writer = \"write-tok\"\nadmin = { token = \"admin-tok\", role = \"admin\" }\n";

fn call(gw: &Gw, token: &str, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let body = body.map(ToString::to_string).unwrap_or_default();
    request(gw.port, method, path, &headers, body.as_bytes())
}

/// The reply must have `status` and, for an error, the one error shape
/// with `code`.
fn expect(reply: &Reply, status: u16, code: Option<&str>) -> Value {
    let json = reply.json();
    assert_eq!(reply.status, status, "{json}");
    if let Some(code) = code {
        assert_eq!(json["error"]["code"], code, "{json}");
        assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
    }
    json
}

fn keys(page: &Value) -> Vec<String> {
    let decisions = page["decisions"].as_array().expect("decisions");
    decisions.iter().map(|d| d["key"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn native_endpoints_answer_and_refuse_with_one_error_shape() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 2, "2m", "48h"), Some(TOKENS));

    // 401 without a token or with a wrong one.
    expect(&request(gw.port, "GET", "/v1/decisions", &[], b""), 401, Some("unauthorized"));
    expect(&call(&gw, "nope", "GET", "/v1/status", None), 401, Some("unauthorized"));
    // 403: a read-only token writes nothing, here or on the old API.
    let ban = json!({"key": "2001:db8::7", "duration": "1h", "jail": "sshd", "reason": "scan"});
    expect(&call(&gw, READER, "POST", "/v1/bans", Some(&ban)), 403, Some("read_only"));
    expect(&call(&gw, READER, "DELETE", "/v1/bans/2001:db8::7", None), 403, Some("read_only"));
    let old = call(&gw, READER, "POST", "/add_ips", Some(&json!({"ips": ["192.0.2.1"]})));
    assert_eq!(old.status, 403, "{}", old.json());
    assert_eq!(keys(&expect(&call(&gw, READER, "GET", "/v1/decisions", None), 200, None)).len(), 0);

    // Writes: an IPv6 address, a network and an allow.
    let made = expect(&call(&gw, WRITER, "POST", "/v1/bans", Some(&ban)), 201, None);
    let d = &made["decision"];
    assert_eq!(
        (d["key"].as_str(), d["family"].as_str(), d["network"].as_bool()),
        (Some("2001:db8::7"), Some("ipv6"), Some(false))
    );
    assert_eq!(
        (d["kind"].as_str(), d["state"].as_str(), d["jail"].as_str()),
        (Some("ban"), Some("live"), Some("sshd"))
    );
    assert_eq!(d["origin"]["name"], "node1", "{d}");
    assert_eq!(d["origin"]["key"].as_str().map(str::len), Some(64), "{d}");
    assert_eq!(d["source"], "writer@127.0.0.1");
    let expires = d["expires_at"].as_str().unwrap();
    assert!(expires.ends_with('Z') && expires.contains('T'), "RFC 3339: {expires}");
    let net = json!({"key": "198.51.100.0/24", "jail": "recidive"});
    expect(&call(&gw, WRITER, "POST", "/v1/bans", Some(&net)), 403, Some("network_needs_admin"));
    let made = expect(&call(&gw, ADMIN, "POST", "/v1/bans", Some(&net)), 201, None);
    assert_eq!(made["decision"]["network"], true);
    let allow = json!({"key": "192.0.2.50", "duration": "1h", "reason": "office"});
    expect(&call(&gw, WRITER, "POST", "/v1/allows", Some(&allow)), 201, None);

    // 409: a ban the allow would override; 415, 413, 400, 422.
    let conflict = json!({"key": "192.0.2.50"});
    expect(&call(&gw, WRITER, "POST", "/v1/bans", Some(&conflict)), 409, Some("conflict"));
    let auth = format!("Bearer {WRITER}");
    let plain = [("Authorization", auth.as_str()), ("Content-Type", "text/plain")];
    let body = br#"{"key": "192.0.2.9"}"#;
    expect(
        &request(gw.port, "POST", "/v1/bans", &plain, body),
        415,
        Some("unsupported_media_type"),
    );
    let json_type = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let huge = format!("{{\"key\": \"192.0.2.9\", \"reason\": \"{}\"}}", "x".repeat(2 << 20));
    expect(
        &request(gw.port, "POST", "/v1/bans", &json_type, huge.as_bytes()),
        413,
        Some("too_large"),
    );
    expect(
        &request(gw.port, "POST", "/v1/bans", &json_type, b"{not json"),
        400,
        Some("bad_request"),
    );
    for bad in [
        json!({"key": "not-an-ip"}),
        json!({"key": "192.0.2.9", "duration": "99999d"}),
        json!({"key": 7}),
    ] {
        expect(&call(&gw, WRITER, "POST", "/v1/bans", Some(&bad)), 422, Some("invalid"));
    }

    // Reads and filters.
    let all = expect(&call(&gw, READER, "GET", "/v1/decisions", None), 200, None);
    // Key order, as the old API's lists: IPv4 before IPv6, then address,
    // then prefix length.
    assert_eq!(keys(&all), ["192.0.2.50", "198.51.100.0/24", "2001:db8::7"], "{all}");
    assert_eq!(all["next_cursor"], Value::Null);
    let get = |path: &str| keys(&expect(&call(&gw, READER, "GET", path, None), 200, None));
    assert_eq!(get("/v1/decisions?kind=allow"), ["192.0.2.50"]);
    assert_eq!(get("/v1/decisions?jail=recidive"), ["198.51.100.0/24"]);
    assert_eq!(get("/v1/decisions?origin=node1").len(), 3);
    let origin_key = d["origin"]["key"].as_str().unwrap();
    assert_eq!(get(&format!("/v1/decisions?origin={origin_key}")).len(), 3);
    assert_eq!(get("/v1/decisions?origin=elsewhere").len(), 0);
    assert_eq!(get("/v1/decisions?since=2000-01-01T00:00:00Z").len(), 3);
    assert_eq!(get("/v1/decisions?since=2999-01-01T00:00:00Z").len(), 0);
    for bad in ["kind=unban", "state=gone", "limit=0", "since=today", "cursor=xyz", "colour=red"] {
        let reply = call(&gw, READER, "GET", &format!("/v1/decisions?{bad}"), None);
        expect(&reply, 400, Some("bad_request"));
    }

    // Explain: the /24's ban decides .9; the allow decides .50.
    let why = expect(&call(&gw, READER, "GET", "/v1/explain/198.51.100.9", None), 200, None);
    assert_eq!(
        (why["verdict"].as_str(), why["decided_by"].as_str()),
        (Some("banned"), Some("198.51.100.0/24")),
        "{why}"
    );
    let records = why["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{why}");
    assert_eq!(
        (records[0]["decides"].as_bool(), records[0]["state"].as_str()),
        (Some(true), Some("live"))
    );
    assert!(why["until"].as_str().unwrap().ends_with('Z'));
    assert!(why["enforcement"].is_object(), "{why}");
    let why = expect(&call(&gw, READER, "GET", "/v1/explain/192.0.2.50", None), 200, None);
    assert_eq!(why["verdict"], "allowed", "{why}");
    let free = expect(&call(&gw, READER, "GET", "/v1/explain/203.0.113.1", None), 200, None);
    assert_eq!(
        (free["verdict"].as_str(), free["records"].as_array().map(Vec::len)),
        (Some("free"), Some(0))
    );
    expect(&call(&gw, READER, "GET", "/v1/explain/not-an-ip", None), 400, Some("bad_request"));
    expect(&call(&gw, READER, "GET", "/v1/explain/10.0.0.0/8", None), 400, Some("bad_request"));

    // Lifting: 200, then 404 when nothing is left to lift.
    let lifted = expect(&call(&gw, WRITER, "DELETE", "/v1/bans/2001:db8::7", None), 200, None);
    assert_eq!(lifted["record"]["kind"], "unban", "{lifted}");
    expect(&call(&gw, WRITER, "DELETE", "/v1/bans/2001:db8::7", None), 404, Some("not_found"));
    let path = "/v1/bans/198.51.100.0%2F24";
    expect(&call(&gw, WRITER, "DELETE", path, None), 403, Some("network_needs_admin"));
    expect(&call(&gw, ADMIN, "DELETE", path, None), 200, None);
    expect(&call(&gw, WRITER, "DELETE", "/v1/allows/192.0.2.50", None), 200, None);
    expect(&call(&gw, WRITER, "DELETE", "/v1/allows/192.0.2.50", None), 404, Some("not_found"));
    expect(&call(&gw, WRITER, "DELETE", "/v1/bans/nonsense", None), 400, Some("bad_request"));
    assert_eq!(get("/v1/decisions").len(), 0, "nothing live");
    let ended = expect(&call(&gw, READER, "GET", "/v1/decisions?state=ended", None), 200, None);
    let states: BTreeSet<&str> = ended["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, BTreeSet::from(["lifted"]), "{ended}");
    assert_eq!(get("/v1/decisions?state=all").len(), 3);

    // Status, peers, and what is not there.
    let status = expect(&call(&gw, READER, "GET", "/v1/status", None), 200, None);
    assert_eq!(status["name"], "node1", "{status}");
    assert_eq!(status["node_key"].as_str(), Some(origin_key));
    let peers = expect(&call(&gw, READER, "GET", "/v1/peers", None), 200, None);
    assert!(peers["peers"].is_array(), "{peers}");
    expect(&call(&gw, READER, "GET", "/v1/nothing", None), 404, Some("not_found"));
    let spec = expect(&request(gw.port, "GET", "/openapi.json", &[], b""), 200, None);
    assert!(spec["paths"]["/v1/decisions"]["get"].is_object(), "{spec}");
    expect(&call(&gw, READER, "PUT", "/v1/decisions", None), 405, Some("method_not_allowed"));
}

#[test]
fn cursor_pages_neither_repeat_nor_skip_while_records_are_added() {
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 2, "2m", "48h"), Some(TOKENS));
    let first: Vec<String> = (0..40).map(|n| format!("192.0.2.{}", n * 4 + 1)).collect();
    let refs: Vec<&str> = first.iter().map(String::as_str).collect();
    let added = call(&gw, WRITER, "POST", "/add_ips", Some(&json!({"ips": refs})));
    assert_eq!(added.status, 201);

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut ended = false;
    // 40 keys and 2 more per page, 7 a page: far fewer than 50 pages.
    for extra in 0..50 {
        let path = format!("/v1/decisions?limit=7&cursor={cursor}");
        let page = expect(&call(&gw, READER, "GET", &path, None), 200, None);
        let listed = keys(&page);
        assert!(listed.len() <= 7, "{page}");
        seen.extend(listed);
        // Between pages, addresses before and after the cursor appear.
        let more: Vec<String> =
            [extra * 4 + 2, extra * 4 + 160].iter().map(|n| format!("192.0.2.{n}")).collect();
        let reply = call(&gw, WRITER, "POST", "/add_ips", Some(&json!({"ips": more})));
        assert_eq!(reply.status, 201);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "the pages never ended: {seen:?}");
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a key listed twice: {seen:?}");
    for key in &first {
        assert!(unique.contains(key), "{key} skipped: {seen:?}");
    }
    assert!(seen.len() > first.len(), "keys added after the cursor show on later pages");
}

/// Deletes the test's own nftables table on drop (by its unique name).
struct Table(String);

impl Drop for Table {
    fn drop(&mut self) {
        let _ =
            std::process::Command::new("nft").args(["delete", "table", "inet", &self.0]).output();
    }
}

/// Needs root and `nft`: the node runs the nftables backend in this
/// namespace, in a table of its own, holding only documentation addresses.
#[test]
fn explain_says_what_the_nftables_backend_holds_and_what_it_leaves_out() {
    let table = Table(format!("bmapi{}", std::process::id()));
    let toml = format!(
        "{TOKENS}[enforce]\nbackends = [\"nftables\"]\n[nftables]\ntable = \"{}\"\n\
         remove_on_stop = true\nreconcile = \"1s\"\n",
        table.0
    );
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 2, "2m", "48h"), Some(&toml));
    let ban = json!({"key": "203.0.113.9", "duration": "1h"});
    expect(&call(&gw, WRITER, "POST", "/v1/bans", Some(&ban)), 201, None);
    let mut last = Value::Null;
    let held = crate::common::wait_until(crate::common::SOON, || {
        last = expect(&call(&gw, READER, "GET", "/v1/explain/203.0.113.9", None), 200, None);
        last["enforcement"]["backends"][0]["holds"] == json!(["203.0.113.9"])
    });
    assert!(held, "{last}");
    assert_eq!(last["enforcement"]["enforce"], true, "{last}");
    assert_eq!(last["enforcement"]["backends"][0]["name"], "nftables", "{last}");
    // The kernel follows within a reconcile.
    let mut listed = String::new();
    let in_kernel = crate::common::wait_until(crate::common::SOON, || {
        let out =
            std::process::Command::new("nft").args(["list", "table", "inet", &table.0]).output();
        listed = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        listed.contains("203.0.113.9")
    });
    assert!(in_kernel, "{listed}");

    // A network banned and then allowed: left out, and why.
    let net = json!({"key": "198.51.100.0/24", "duration": "1h"});
    expect(&call(&gw, ADMIN, "POST", "/v1/bans", Some(&net)), 201, None);
    expect(&call(&gw, ADMIN, "POST", "/v1/allows", Some(&net)), 201, None);
    let left_out = crate::common::wait_until(crate::common::SOON, || {
        last = expect(&call(&gw, READER, "GET", "/v1/explain/198.51.100.20", None), 200, None);
        last["enforcement"]["left_out"][0]["key"] == "198.51.100.0/24"
    });
    assert!(left_out, "{last}");
    assert!(
        last["enforcement"]["left_out"][0]["why"].as_str().unwrap().contains("allow"),
        "{last}"
    );
    assert_eq!(last["enforcement"]["backends"][0]["holds"], json!([]), "{last}");
    assert_eq!(last["verdict"], "allowed", "{last}");
}
