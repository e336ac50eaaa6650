//! HTTPS on the gateway: a node with `[gateway] tls_cert`/`tls_key` (a
//! self-signed certificate made here with rcgen) answers over TLS, refuses
//! plain HTTP on the same port with a 400, takes a new certificate on
//! SIGHUP for new connections, keeps serving the old one when the new file
//! is broken; a broken pair is a configuration error (the node will not
//! start, `config check` says why).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::common::{SOON, TestCluster, arg, signal, wait_until};
use crate::http::{Reply, parse, request};
use crate::{Gw, TOKEN, failed_reload, seed};

/// A self-signed certificate for 127.0.0.1, written as PEM to `cert` and
/// `key`; its DER.
fn make_cert(cert: &Path, key: &Path) -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(cert, made.cert.pem()).unwrap();
    std::fs::write(key, made.key_pair.serialize_pem()).unwrap();
    made.cert.der().clone()
}

/// `GET path` over HTTPS with the bearer token, trusting only `trusted`:
/// the reply, or the handshake's error.
fn https_get(port: u16, path: &str, trusted: &CertificateDer<'static>) -> Result<Reply, String> {
    let auth = format!("Bearer {TOKEN}");
    https_request(port, &format!("GET {path}"), &[("Authorization", &auth)], b"", trusted)
}

/// `line` (`METHOD PATH`) over HTTPS with `headers` and `body`, trusting
/// only `trusted` (and checking the server presented it).
fn https_request(
    port: u16,
    line: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    trusted: &CertificateDer<'static>,
) -> Result<Reply, String> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    let mut head = format!("{line} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    tls.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    tls.write_all(body).map_err(|e| e.to_string())?;
    let presented = tls.conn.peer_certificates().and_then(|c| c.first().cloned());
    assert_eq!(presented.as_ref(), Some(trusted), "the handshake passed with another certificate");
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Servers may close without close_notify once the answer is sent.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(parse(&raw))
}

fn tls_toml(cert: &Path, key: &Path) -> String {
    format!(
        "[gateway]\ntls_cert = {:?}\ntls_key = {:?}\n[gateway.tokens]\nwriter = \"tls-writer\"\n",
        arg(cert),
        arg(key)
    )
}

#[test]
fn gateway_serves_https_and_reloads_its_certificate_on_sighup() {
    let mut cluster = TestCluster::new();
    let (cert, key) = (cluster.path("gateway.crt"), cluster.path("gateway.key"));
    let first = make_cert(&cert, &key);
    let settings = seed("1h", 24, "2m", "48h");
    let gw = Gw::start(&mut cluster, "node1", &[], &settings, Some(&tls_toml(&cert, &key)));

    let reply = https_get(gw.port, "/get_ips", &first).expect("https request");
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["total"], 0);
    // Over HTTPS the dashboard's session cookie is `Secure`.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let login = https_request(gw.port, "POST /ui/login", &form, b"token=tls-writer", &first)
        .expect("https login");
    assert_eq!(login.status, 303, "{}", String::from_utf8_lossy(&login.body));
    let set = login.header("set-cookie").expect("a session cookie");
    assert!(set.contains("Secure") && set.contains("HttpOnly"), "{set}");
    // Plain HTTP on the TLS port: a clear 400, then the close.
    let plain = request(gw.port, "GET", "/get_ips", &[], b"");
    assert_eq!(plain.status, 400);
    assert!(plain.json()["error"].as_str().unwrap().contains("https"), "{plain:?}");

    let second = make_cert(&cert, &key);
    let pid = cluster.node(gw.node).pid().unwrap();
    signal(pid, "HUP");
    assert!(
        wait_until(SOON, || https_get(gw.port, "/get_ips", &second).is_ok()),
        "new connections never saw the new certificate"
    );
    assert!(https_get(gw.port, "/get_ips", &first).is_err(), "the old certificate is still served");

    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        .unwrap();
    let error = failed_reload(cluster.node(gw.node));
    assert!(error.contains("tls_cert"), "the error names the setting: {error}");
    let reply = https_get(gw.port, "/get_ips", &second).expect("still served after a bad reload");
    assert_eq!(reply.status, 200);
}

#[test]
fn a_broken_certificate_or_key_is_a_config_error() {
    let cluster = TestCluster::new();
    let (cert, key) = (cluster.path("gateway.crt"), cluster.path("gateway.key"));
    make_cert(&cert, &key);
    let (other_cert, other_key) = (cluster.path("other.crt"), cluster.path("other.key"));
    make_cert(&other_cert, &other_key);
    let empty = cluster.path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let cases = [
        (tls_toml(&empty, &key), "no certificate"),
        (tls_toml(&cert, &empty), "no private key"),
        (tls_toml(&cert, &other_key), "does not serve"),
        (tls_toml(&cluster.path("missing.crt"), &key), "missing.crt"),
        (format!("[gateway]\ntls_cert = {:?}\n", arg(&cert)), "go together"),
    ];
    // The node itself stops at start, naming the file.
    let path = cluster.path("node.toml");
    std::fs::write(&path, tls_toml(&cert, &empty)).unwrap();
    let data = cluster.path("data");
    let out = std::process::Command::new(crate::common::bin())
        .args(["node", "--data-dir", arg(&data), "--gateway", "--config", arg(&path)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("gateway.tls_key") && stderr.contains("empty.pem"), "{stderr}");
    for (toml, want) in cases {
        let path = cluster.path("tls.toml");
        std::fs::write(&path, toml).unwrap();
        let out = crate::common::run_cli(&["config", "check", "--config", arg(&path)]);
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "config check passed: {text}");
        assert!(text.contains(want), "wanted {want:?} in: {text}");
    }
}
