//! The dashboard in a real browser: Debian's headless `chromium` driven
//! through `chromedriver` over WebDriver (plain HTTP, spoken here) against
//! a real node. Logs in, bans an address, sees it listed, explains it,
//! releases it and sees it gone, then logs in again with a read-only token
//! and finds no write buttons; keeps screenshots under
//! `target/test-artifacts/`. Needs the `chromium` and `chromium-driver`
//! packages (scripts/test.sh installs them).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::ui::TOKENS;
use crate::common::{SOON, TestCluster, free_port, wait_until};
use crate::http::request;
use crate::{Gw, seed};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver and one browser session; both end on drop.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the dashboard test needs Debian's chromium and \
                 chromium-driver (apt-get install chromium chromium-driver, or run \
                 scripts/test.sh as root)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let ready = wait_until(SOON, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && wd(port, "GET", "/status", None)["value"]["ready"] == true
        });
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser { driver, port, session: String::new(), _profile: profile };
        assert!(ready, "chromedriver did not become ready on port {port}");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-gpu".to_owned(),
            "--window-size=1280,1400".to_owned(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let made = wd(port, "POST", "/session", Some(&caps));
        browser.session = made["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {made}"))
            .to_owned();
        browser
    }

    /// A command on the session; panics on a WebDriver error.
    fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_cmd(method, path, body)
            .unwrap_or_else(|answer| panic!("WebDriver {method} {path}: {answer}"))
    }

    /// A command on the session, or the WebDriver error (an element the
    /// page's refresh replaced is "stale").
    fn try_cmd(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Value> {
        let answer = wd(self.port, method, &format!("/session/{}{path}", self.session), body);
        if answer["value"]["error"].is_string() { Err(answer) } else { Ok(answer["value"].clone()) }
    }

    /// Whether element `e` is displayed (false once the page replaced it).
    fn displayed(&self, e: &str) -> bool {
        self.try_cmd("GET", &format!("/element/{e}/displayed"), None).is_ok_and(|v| v == true)
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(&json!({"url": url})));
    }

    /// The elements `css` matches now.
    fn find_all(&self, css: &str) -> Vec<String> {
        let found =
            self.cmd("POST", "/elements", Some(&json!({"using": "css selector", "value": css})));
        let found = found.as_array().cloned().unwrap_or_default();
        found.iter().filter_map(|e| e[ELEMENT].as_str().map(str::to_owned)).collect()
    }

    /// The first element `css` matches that is displayed, waiting for one.
    fn find(&self, css: &str) -> String {
        let mut found = None;
        let shown = wait_until(SOON, || {
            found = self.find_all(css).into_iter().find(|e| self.displayed(e));
            found.is_some()
        });
        assert!(shown, "no visible {css}; page text: {}", self.text("body"));
        found.unwrap()
    }

    /// Whether the first element `css` matches is displayed.
    fn shown(&self, css: &str) -> bool {
        self.find_all(css).first().is_some_and(|e| self.displayed(e))
    }

    /// The text of the first element `css` matches, empty when none (or
    /// when the page replaced it meanwhile).
    fn text(&self, css: &str) -> String {
        let Some(e) = self.find_all(css).into_iter().next() else { return String::new() };
        let text = self.try_cmd("GET", &format!("/element/{e}/text"), None);
        text.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/value"), Some(&json!({"text": text})));
    }

    /// Clicks the element `css` matches, again if the page replaced it
    /// between finding and clicking.
    fn click(&self, css: &str) {
        let mut last = Value::Null;
        let clicked = wait_until(SOON, || {
            let e = self.find(css);
            let done = self.try_cmd("POST", &format!("/element/{e}/click"), Some(&json!({})));
            done.map_err(|answer| last = answer).is_ok()
        });
        assert!(clicked, "cannot click {css}: {last}");
    }

    /// Waits until the text of `css` contains `want`.
    fn wait_text(&self, css: &str, want: &str) {
        let mut last = String::new();
        let seen = wait_until(SOON, || {
            last = self.text(css);
            last.contains(want)
        });
        assert!(seen, "{css} never showed {want:?}: {last:?}; page: {}", self.text("body"));
    }

    fn screenshot(&self, path: &Path) {
        let data = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(data.as_str().expect("screenshot data"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(|| {
                wd(self.port, "DELETE", &format!("/session/{}", self.session), None)
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One WebDriver request to chromedriver. Its answer is read by its
/// `Content-Length`: chromedriver says `Connection: close` but keeps the
/// connection open.
fn wd(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(ToString::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to chromedriver");
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes())).unwrap();
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read chromedriver's answer");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut answer = vec![0; length];
    reader.read_exact(&mut answer).expect("read chromedriver's answer");
    serde_json::from_slice(&answer).unwrap_or_else(|e| {
        panic!("chromedriver {method} {path}: {e}: {}", String::from_utf8_lossy(&answer))
    })
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(sextets.len() * 3 / 4);
    for chunk in sextets.chunks(4) {
        let n = chunk.iter().fold(0u32, |n, s| (n << 6) | u32::from(*s)) << (6 * (4 - chunk.len()));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// Where test artifacts go: `target/test-artifacts/`.
fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("test-artifacts").join(name)
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
}

#[test]
fn dashboard_bans_explains_and_releases_in_chromium() {
    let browser = Browser::start();
    let mut cluster = TestCluster::new();
    let gw = Gw::start(&mut cluster, "node1", &[], &seed("1h", 2, "2m", "48h"), Some(TOKENS));
    let url = format!("http://127.0.0.1:{}/ui", gw.port);

    // Log in.
    browser.go(&url);
    browser.type_into("#token", "write-tok");
    browser.click("#login-submit");
    browser.wait_text("#who", "writer (write)");
    browser.wait_text("#node-status", "node1");

    // An earlier ban, first in key order.
    gw.add(&["192.0.2.5"]);

    // Ban an address; it is listed and counted, first in recent activity
    // (newest first, not key order).
    let ip = "192.0.2.77";
    let row = format!("#decision-table tr[data-key=\"{ip}\"]");
    browser.type_into("#write-key", ip);
    browser.type_into("#write-jail", "sshd");
    browser.type_into("#write-reason", "seen by the ui test");
    browser.click("#ban-submit");
    browser.wait_text("#write-result", &format!("Banned {ip}"));
    browser.wait_text(&row, "seen by the ui test");
    browser.wait_text("#by-jail", "sshd");
    browser.wait_text("#recent li:first-child", &format!("ban {ip}"));
    browser.wait_text("#recent", "ban 192.0.2.5");

    // Its explanation.
    browser.click(&format!("{row} button.explain"));
    browser.wait_text("#explain-verdict", &format!("{ip}: banned"));
    browser.wait_text("#explanation", "seen by the ui test");
    let shot = artifact("dashboard.png");
    browser.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "{} is too small", shot.display());

    // Release it: gone from the live list, and free on the node.
    browser.click(&format!("{row} button.release"));
    browser.wait_text("#write-result", &format!("Released {ip}"));
    let gone = wait_until(SOON, || browser.find_all(&row).is_empty());
    assert!(gone, "{ip} still listed: {}", browser.text("#decision-table"));
    let auth = [("Authorization", "Bearer write-tok")];
    let explained = request(gw.port, "GET", &format!("/v1/explain/{ip}"), &auth, b"").json();
    assert_eq!(explained["verdict"], "free", "{explained}");
    browser.screenshot(&artifact("dashboard-released.png"));

    // A read-only token sees the decisions but no write buttons.
    let auth = [("Authorization", "Bearer write-tok"), ("Content-Type", "application/json")];
    let other = r#"{"key": "192.0.2.78", "jail": "sshd"}"#;
    assert_eq!(request(gw.port, "POST", "/v1/bans", &auth, other.as_bytes()).status, 201);
    browser.click("#logout");
    browser.type_into("#token", "read-tok");
    browser.click("#login-submit");
    browser.wait_text("#who", "reader (read)");
    browser.wait_text("#decision-table", "192.0.2.78");
    assert!(!browser.shown("#write"), "a read session got the ban form");
    assert!(browser.find_all("button.release").is_empty(), "a read session got release buttons");
}
