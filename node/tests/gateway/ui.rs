//! The dashboard's login and sessions over plain HTTP on a real node: the
//! page and its files are served, a wrong token is refused with a clear
//! error and, repeated, rate-limited; the cookie's flags; `/v1` takes the
//! cookie for the token, a cookie write without the CSRF token or from
//! another origin is a 403, and a read-only token's session writes nothing.

use serde_json::{Value, json};

use crate::common::TestCluster;
use crate::http::{Reply, request};
use crate::{Gw, seed};

/// `reader` may only read, `writer` bans and releases.
pub const TOKENS: &str = "[gateway.tokens]\nreader = { token = \"read-tok\", role = \"read\" }\n\
                          writer = \"write-tok\"\n";

const FORM: &str = "application/x-www-form-urlencoded";

/// `POST /ui/login` with `token`.
pub fn login(port: u16, token: &str) -> Reply {
    let body = format!("token={token}");
    request(port, "POST", "/ui/login", &[("Content-Type", FORM)], body.as_bytes())
}

/// The session cookie (`banmesh_session=...`) a successful login set.
fn cookie_of(reply: &Reply) -> String {
    let set = reply.header("set-cookie").expect("a Set-Cookie header");
    set.split(';').next().unwrap().to_owned()
}

/// A request with the session cookie and extra headers.
fn with_cookie(
    gw: &Gw,
    cookie: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let mut headers = vec![("Cookie", cookie), ("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    let body = body.map(ToString::to_string).unwrap_or_default();
    request(gw.port, method, path, &headers, body.as_bytes())
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

fn code(reply: &Reply) -> String {
    reply.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// A node with the two tokens, and its origin (`http://127.0.0.1:PORT`).
fn start(cluster: &mut TestCluster) -> (Gw, String) {
    let gw = Gw::start(cluster, "node1", &[], &seed("1h", 2, "2m", "48h"), Some(TOKENS));
    let origin = format!("http://127.0.0.1:{}", gw.port);
    (gw, origin)
}

/// Logs in with `token`: the cookie and the CSRF token.
fn session(gw: &Gw, token: &str) -> (String, String) {
    let reply = login(gw.port, token);
    assert_eq!(reply.status, 303, "{}", text(&reply));
    let cookie = cookie_of(&reply);
    let me = with_cookie(gw, &cookie, "GET", "/ui/session", &[], None).json();
    (cookie, me["csrf"].as_str().unwrap().to_owned())
}

#[test]
fn dashboard_login_refuses_wrong_tokens_and_sets_a_strict_cookie() {
    let mut cluster = TestCluster::new();
    let (gw, origin) = start(&mut cluster);

    // The page and its files, with no token.
    let page = request(gw.port, "GET", "/ui", &[], b"");
    assert_eq!(page.status, 200);
    assert!(text(&page).contains("/ui/app.js"), "{}", text(&page));
    assert!(page.header("content-security-policy").is_some_and(|c| c.contains("frame-ancestors")));
    for file in ["/ui/app.js", "/ui/style.css"] {
        assert_eq!(request(gw.port, "GET", file, &[], b"").status, 200, "{file}");
    }
    assert_eq!(request(gw.port, "GET", "/ui/session", &[], b"").status, 401);

    // A wrong token: 401, the reason on the page, no cookie. The seed
    // file's web_pass is no password here either.
    let wrong = login(gw.port, "nope");
    assert_eq!(wrong.status, 401, "{}", text(&wrong));
    assert!(text(&wrong).contains("Wrong token"), "{}", text(&wrong));
    assert!(wrong.header("set-cookie").is_none());
    assert_eq!(login(gw.port, "admin123").status, 401);

    // A good one: a redirect to /ui and a strict, HttpOnly cookie.
    let ok = login(gw.port, "write-tok");
    assert_eq!((ok.status, ok.header("location")), (303, Some("/ui")), "{}", text(&ok));
    let set = ok.header("set-cookie").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    assert!(!set.contains("Secure"), "no TLS, no Secure: {set}");
    let cookie = cookie_of(&ok);
    let me = with_cookie(&gw, &cookie, "GET", "/ui/session", &[], None).json();
    assert_eq!((me["name"].as_str(), me["may_write"].as_bool()), (Some("writer"), Some(true)));
    assert_eq!(with_cookie(&gw, &cookie, "GET", "/v1/decisions", &[], None).status, 200);

    // Logging out ends the session; a made-up cookie is no session.
    let csrf = me["csrf"].as_str().unwrap();
    let good = [("X-CSRF-Token", csrf), ("Origin", origin.as_str())];
    assert_eq!(with_cookie(&gw, &cookie, "POST", "/ui/logout", &good, None).status, 204);
    assert_eq!(with_cookie(&gw, &cookie, "GET", "/v1/decisions", &[], None).status, 401);
    let forged = "banmesh_session=00";
    assert_eq!(with_cookie(&gw, forged, "GET", "/v1/status", &[], None).status, 401);

    // Failed logins from one address are limited (10 a minute), the right
    // token included, with a clear error.
    let mut last = 0;
    for _ in 0..12 {
        last = login(gw.port, "nope").status;
    }
    assert_eq!(last, 429);
    let limited = login(gw.port, "write-tok");
    assert_eq!(limited.status, 429);
    assert!(text(&limited).contains("Too many failed logins"), "{}", text(&limited));
}

#[test]
fn dashboard_sessions_write_only_with_csrf_and_their_tokens_role() {
    let mut cluster = TestCluster::new();
    let (gw, origin) = start(&mut cluster);
    let (cookie, csrf) = session(&gw, "write-tok");

    // A write with the cookie needs the CSRF token and our origin.
    let ban = json!({"key": "192.0.2.50", "duration": "1h", "jail": "sshd"});
    let no_csrf = with_cookie(&gw, &cookie, "POST", "/v1/bans", &[], Some(&ban));
    assert_eq!((no_csrf.status, code(&no_csrf).as_str()), (403, "csrf"));
    let bad_csrf = [("X-CSRF-Token", "0000"), ("Origin", origin.as_str())];
    assert_eq!(with_cookie(&gw, &cookie, "POST", "/v1/bans", &bad_csrf, Some(&ban)).status, 403);
    let elsewhere = [("X-CSRF-Token", csrf.as_str()), ("Origin", "http://evil.example")];
    let cross = with_cookie(&gw, &cookie, "POST", "/v1/bans", &elsewhere, Some(&ban));
    assert_eq!((cross.status, code(&cross).as_str()), (403, "csrf"));
    let good = [("X-CSRF-Token", csrf.as_str()), ("Origin", origin.as_str())];
    let made = with_cookie(&gw, &cookie, "POST", "/v1/bans", &good, Some(&ban));
    assert_eq!(made.status, 201, "{}", made.json());
    assert_eq!(made.json()["decision"]["source"], "writer@127.0.0.1");
    let unban = with_cookie(&gw, &cookie, "DELETE", "/v1/bans/192.0.2.50", &[], None);
    assert_eq!(unban.status, 403, "a delete needs the CSRF token too");
    let counts = with_cookie(&gw, &cookie, "GET", "/v1/counts", &[], None).json();
    assert_eq!(counts["total"]["bans"], 1, "{counts}");
    assert_eq!(counts["jails"][0]["jail"], "sshd", "{counts}");
    assert_eq!(counts["origins"][0]["name"], "node1", "{counts}");

    // A read-only token's session reads but writes nothing, CSRF or not.
    let (reader, csrf_r) = session(&gw, "read-tok");
    let me = with_cookie(&gw, &reader, "GET", "/ui/session", &[], None).json();
    assert_eq!(me["may_write"], false, "{me}");
    let headers = [("X-CSRF-Token", csrf_r.as_str()), ("Origin", origin.as_str())];
    let refused = with_cookie(&gw, &reader, "POST", "/v1/bans", &headers, Some(&ban));
    assert_eq!((refused.status, code(&refused).as_str()), (403, "read_only"));
    let lift = with_cookie(&gw, &reader, "DELETE", "/v1/bans/192.0.2.50", &headers, None);
    assert_eq!(lift.status, 403);
    assert_eq!(with_cookie(&gw, &reader, "GET", "/v1/decisions", &[], None).status, 200);

    // The writer releases it with the CSRF token.
    let lifted = with_cookie(&gw, &cookie, "DELETE", "/v1/bans/192.0.2.50", &good, None);
    assert_eq!(lifted.status, 200, "{}", lifted.json());
    let counts = with_cookie(&gw, &cookie, "GET", "/v1/counts", &[], None).json();
    assert_eq!(counts["total"]["bans"], 0, "{counts}");
}
