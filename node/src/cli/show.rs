//! `banmesh keys show`: describes any key, certificate or revocation file for
//! a person (aligned text) or a program (`--json`). Nothing secret is printed.

use std::path::Path;
use std::time::Duration;

use banmesh_crdt::duration::format_duration;
use banmesh_keys::files::{self, KeyFile};
use banmesh_keys::time::format_rfc3339;
use banmesh_keys::{Certificate, PublicKey, Revocation, Role};
use serde_json::{Value, json};

/// Prints a description of the file at `path`, as of `now_ms`.
pub fn show(path: &Path, as_json: bool, now_ms: u64) -> anyhow::Result<()> {
    let item = files::read_any(path)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&to_json(&item, now_ms))?);
    } else {
        for (label, value) in to_lines(&item, now_ms) {
            println!("{:<15}{value}", format!("{label}:"));
        }
    }
    Ok(())
}

/// `in 3d4h` or `2h ago`: how far `at_ms` is from `now_ms`, in coarse units.
pub fn relative(now_ms: u64, at_ms: u64) -> String {
    let (ms, future) =
        if at_ms >= now_ms { (at_ms - now_ms, true) } else { (now_ms - at_ms, false) };
    let secs = ms / 1000;
    let unit = match secs {
        86_400.. => 3600,
        3600.. => 60,
        _ => 1,
    };
    let text = format_duration(Duration::from_secs(secs / unit * unit));
    if future { format!("in {text}") } else { format!("{text} ago") }
}

fn to_lines(item: &KeyFile, now_ms: u64) -> Vec<(&'static str, String)> {
    match item {
        KeyFile::Secret(secret) => vec![
            ("kind", "secret key (ed25519, PKCS#8)".to_owned()),
            ("public key", secret.public().to_string()),
        ],
        KeyFile::Public(public) => {
            vec![
                ("kind", "public key (ed25519, SPKI)".to_owned()),
                ("public key", public.to_string()),
            ]
        }
        KeyFile::Certificate(cert) => certificate_lines(cert, now_ms),
        KeyFile::Revocation(revocation) => vec![
            ("kind", "revocation".to_owned()),
            ("node", revocation.node().to_string()),
            ("cluster", revocation.cluster().to_string()),
            ("issued at", timestamp(now_ms, revocation.issued_at_ms())),
            ("reason", revocation.reason().to_owned()),
            ("id", hex::encode(revocation.id())),
            ("signature", "not checked here: trust it after `banmesh keys verify`".to_owned()),
        ],
    }
}

fn certificate_lines(cert: &Certificate, now_ms: u64) -> Vec<(&'static str, String)> {
    let state = match cert.check_time(now_ms) {
        Ok(()) => "valid now".to_owned(),
        Err(error) => error.to_string(),
    };
    vec![
        ("kind", "certificate".to_owned()),
        ("name", cert.name().to_owned()),
        ("node", cert.node().to_string()),
        ("cluster", cert.cluster().to_string()),
        ("roles", cert.roles().to_string()),
        ("valid from", timestamp(now_ms, cert.not_before_ms())),
        ("valid until", timestamp(now_ms, cert.not_after_ms())),
        ("time", state),
        ("widest prefix", widest_prefix_text(cert)),
        ("id", hex::encode(cert.id())),
        ("signature", "not checked here: run `banmesh keys verify`".to_owned()),
    ]
}

fn widest_prefix_text(cert: &Certificate) -> String {
    let source = match (cert.max_prefix(), cert.roles().contains(Role::WidePrefix)) {
        (Some(cap), _) => format!("explicit cap {cap}"),
        (None, true) => "wide-prefix role, no cap".to_owned(),
        (None, false) => "default".to_owned(),
    };
    format!("IPv4 /{}, IPv6 /{} ({source})", cert.widest_prefix(true), cert.widest_prefix(false))
}

fn timestamp(now_ms: u64, at_ms: u64) -> String {
    format!("{} ({})", format_rfc3339(at_ms), relative(now_ms, at_ms))
}

fn to_json(item: &KeyFile, now_ms: u64) -> Value {
    match item {
        KeyFile::Secret(secret) => key_json("secret-key", &secret.public()),
        KeyFile::Public(public) => key_json("public-key", public),
        KeyFile::Certificate(cert) => certificate_json(cert, now_ms),
        KeyFile::Revocation(revocation) => revocation_json(revocation),
    }
}

fn key_json(kind: &str, public: &PublicKey) -> Value {
    json!({ "kind": kind, "public_key": public.to_string(), "short": public.short() })
}

fn certificate_json(cert: &Certificate, now_ms: u64) -> Value {
    let roles: Vec<&str> = cert.roles().iter().map(Role::name).collect();
    let max_prefix = cert.max_prefix().map(|cap| json!({ "v4": cap.v4, "v6": cap.v6 }));
    json!({
        "kind": "certificate",
        "id": hex::encode(cert.id()),
        "name": cert.name(),
        "node": cert.node().to_string(),
        "cluster": cert.cluster().to_string(),
        "roles": roles,
        "not_before": format_rfc3339(cert.not_before_ms()),
        "not_after": format_rfc3339(cert.not_after_ms()),
        "not_before_ms": cert.not_before_ms(),
        "not_after_ms": cert.not_after_ms(),
        "valid_now": cert.check_time(now_ms).is_ok(),
        "remaining_ms": cert.not_after_ms().saturating_sub(now_ms),
        "max_prefix": max_prefix,
        "widest_prefix": { "v4": cert.widest_prefix(true), "v6": cert.widest_prefix(false) },
        "signature_checked": false,
    })
}

fn revocation_json(revocation: &Revocation) -> Value {
    json!({
        "kind": "revocation",
        "id": hex::encode(revocation.id()),
        "node": revocation.node().to_string(),
        "cluster": revocation.cluster().to_string(),
        "issued_at": format_rfc3339(revocation.issued_at_ms()),
        "issued_at_ms": revocation.issued_at_ms(),
        "reason": revocation.reason(),
        "signature_checked": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_uses_coarse_units() {
        let day = 86_400_000;
        assert_eq!(relative(0, 365 * day + 5_000), "in 52w1d");
        assert_eq!(relative(2 * 3_600_000 + 61_000, 0), "2h1m ago");
        assert_eq!(relative(0, 59_999), "in 59s");
        assert_eq!(relative(5, 5), "in 0s");
    }
}
