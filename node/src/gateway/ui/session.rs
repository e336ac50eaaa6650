//! Dashboard sessions and the login limiter. A login with a configured
//! token makes a session: a random id (the `HttpOnly; SameSite=Strict`
//! cookie), a random CSRF token the page sends back on writes, and the
//! token's SHA-256, resolved against the tokens in force on every request
//! (so a token removed on reload ends its sessions). At most
//! [`MAX_SESSIONS`] live at once, each for [`SESSION_TTL`]; a login past
//! the cap ends the oldest. Failed logins are counted per client address:
//! past [`LOGIN_FAILURES`] in [`LOGIN_WINDOW`] the address is refused
//! until the window ends; at most [`MAX_TRACKED`] addresses are tracked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The session cookie's name.
pub const COOKIE: &str = "banmesh_session";
/// Most sessions at once.
pub const MAX_SESSIONS: usize = 1_024;
/// How long a session lasts from its login.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Failed logins an address may make per [`LOGIN_WINDOW`].
pub const LOGIN_FAILURES: u32 = 10;
/// The window failed logins are counted in.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Most addresses whose failed logins are tracked.
pub const MAX_TRACKED: usize = 4_096;

/// Why a session could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The system's random source failed.
    #[error("no random bytes for a session: {0}")]
    Random(String),
}

/// A session as a request finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the token that logged in.
    pub digest: [u8; 32],
    /// The CSRF token writes must carry.
    pub csrf: String,
}

struct Entry {
    session: Session,
    created: Instant,
}

#[derive(Default)]
struct Inner {
    /// By SHA-256 of the id, so lookups take no time that depends on it.
    sessions: HashMap<[u8; 32], Entry>,
    /// Failed logins: when the window started, how many in it.
    failures: HashMap<IpAddr, (Instant, u32)>,
}

/// The sessions and the login limiter.
pub struct Sessions {
    inner: Mutex<Inner>,
    secure_cookies: bool,
}

impl Sessions {
    /// No sessions; cookies carry `Secure` when `secure_cookies` (the
    /// listener serves HTTPS).
    pub fn new(secure_cookies: bool) -> Sessions {
        Sessions { inner: Mutex::new(Inner::default()), secure_cookies }
    }

    /// A new session for the token whose SHA-256 is `digest`: its id and
    /// CSRF token.
    pub fn create(
        &self,
        digest: [u8; 32],
        now: Instant,
    ) -> Result<(String, Session), SessionError> {
        let id = random_hex()?;
        let session = Session { digest, csrf: random_hex()? };
        let mut inner = self.lock();
        inner.sessions.retain(|_, e| now.saturating_duration_since(e.created) < SESSION_TTL);
        if inner.sessions.len() >= MAX_SESSIONS {
            let oldest = inner.sessions.iter().min_by_key(|(_, e)| e.created).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                inner.sessions.remove(&oldest);
            }
        }
        inner.sessions.insert(hash(&id), Entry { session: session.clone(), created: now });
        Ok((id, session))
    }

    /// The live session with this id.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let key = hash(id);
        let mut inner = self.lock();
        let entry = inner.sessions.get(&key)?;
        if now.saturating_duration_since(entry.created) >= SESSION_TTL {
            inner.sessions.remove(&key);
            return None;
        }
        Some(entry.session.clone())
    }

    /// Ends a session (logout).
    pub fn remove(&self, id: &str) {
        self.lock().sessions.remove(&hash(id));
    }

    /// How many sessions are held (expired ones until the next login).
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `addr` may try to log in now.
    pub fn login_allowed(&self, addr: IpAddr, now: Instant) -> bool {
        match self.lock().failures.get(&addr) {
            Some((start, n)) => {
                now.saturating_duration_since(*start) >= LOGIN_WINDOW || *n < LOGIN_FAILURES
            }
            None => true,
        }
    }

    /// Counts a failed login from `addr`.
    pub fn login_failed(&self, addr: IpAddr, now: Instant) {
        let mut inner = self.lock();
        let failures = &mut inner.failures;
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&addr) {
            failures.retain(|_, (start, _)| now.saturating_duration_since(*start) < LOGIN_WINDOW);
            if failures.len() >= MAX_TRACKED {
                // Many addresses failing at once: forget them all rather
                // than grow (each may try again, a window at a time).
                failures.clear();
            }
        }
        let entry = failures.entry(addr).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= LOGIN_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// The `Set-Cookie` value that holds session `id`.
    pub fn cookie(&self, id: &str) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let age = SESSION_TTL.as_secs();
        format!("{COOKIE}={id}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict{secure}")
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub fn clear_cookie(&self) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `presented` is the session's CSRF token (constant time).
pub fn csrf_matches(session: &Session, presented: &str) -> bool {
    session.csrf.len() == presented.len()
        && bool::from(session.csrf.as_bytes().ct_eq(presented.as_bytes()))
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// 32 random bytes, hex.
fn random_hex() -> Result<String, SessionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SessionError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_stay_bounded() {
        let sessions = Sessions::new(false);
        let t0 = Instant::now();
        let (id, made) = sessions.create([1; 32], t0).unwrap();
        assert_eq!(sessions.get(&id, t0), Some(made.clone()));
        assert!(csrf_matches(&made, &made.csrf));
        assert!(!csrf_matches(&made, "nope"));
        assert_eq!(sessions.get("other", t0), None);
        assert_eq!(sessions.get(&id, t0 + SESSION_TTL), None, "expired");
        for _ in 0..MAX_SESSIONS + 10 {
            sessions.create([2; 32], t0).unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        let (id, _) = sessions.create([3; 32], t0).unwrap();
        sessions.remove(&id);
        assert_eq!(sessions.get(&id, t0), None, "logged out");
    }

    #[test]
    fn failed_logins_are_limited_per_address_in_bounded_memory() {
        let sessions = Sessions::new(false);
        let t0 = Instant::now();
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..LOGIN_FAILURES {
            assert!(sessions.login_allowed(addr, t0));
            sessions.login_failed(addr, t0);
        }
        assert!(!sessions.login_allowed(addr, t0));
        assert!(sessions.login_allowed("192.0.2.2".parse().unwrap(), t0));
        assert!(sessions.login_allowed(addr, t0 + LOGIN_WINDOW), "a new window");
        for n in 0..u32::try_from(MAX_TRACKED).unwrap() * 2 {
            sessions.login_failed(IpAddr::from(n.to_be_bytes()), t0);
        }
        assert!(sessions.lock().failures.len() <= MAX_TRACKED);
    }

    #[test]
    fn cookies_carry_their_flags() {
        let plain = Sessions::new(false).cookie("abc");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"), "{plain}");
        assert!(!plain.contains("Secure"), "{plain}");
        assert!(Sessions::new(true).cookie("abc").ends_with("; Secure"));
    }
}
