//! Who may use the UI. The URL `wire ui` prints carries a random one-time token; the first
//! request with it gets a session cookie (HttpOnly, `SameSite=Strict`, scoped to the random
//! path prefix, so another server on this machine, which the browser would also send
//! loopback cookies to, never gets a usable credential) and the token is spent. Every
//! request must name the loopback address and our port in `Host` (DNS rebinding); a request
//! that changes something must also come from our own origin.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};

/// A session ends this long after its last request (an open event stream counts as use).
pub const IDLE: Duration = Duration::from_secs(60 * 60);

/// The cookie's name.
pub const COOKIE: &str = "wire_ui";

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Host` is not our loopback address and port.
    Host,
    /// No valid session cookie.
    Session,
    /// A state-changing request from another origin (or none).
    Origin,
    /// The login token is wrong or already spent.
    Token,
}

impl Refusal {
    /// Its stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Host => "bad_host",
            Self::Session => "not_signed_in",
            Self::Origin => "bad_origin",
            Self::Token => "bad_token",
        }
    }

    /// What to tell the person.
    pub fn message(self) -> &'static str {
        match self {
            Self::Host => "this server answers only at the loopback address it printed",
            Self::Session => {
                "not signed in, or the session ended; open the link `wire ui` printed (run it again for a new one)"
            }
            Self::Origin => "refused: the request did not come from this page",
            Self::Token => "this link was already used or is wrong; run `wire ui` again for a new one",
        }
    }
}

/// The gate's state: the port, the unspent token and the live sessions.
#[derive(Debug)]
pub struct Gate {
    port: u16,
    /// `/` and 32 hex digits.
    pub prefix: String,
    /// Unspent sign-in tokens: the printed one, and those minted for `wire mcp` (a few at
    /// most; the oldest goes first).
    tokens: Mutex<Vec<String>>,
    sessions: Mutex<HashMap<String, Instant>>,
}

/// Unspent tokens kept at most.
const TOKENS: usize = 8;

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

impl Gate {
    /// A gate for a server on `port`, with a fresh prefix and token.
    pub fn new(port: u16) -> Self {
        Self {
            port,
            prefix: format!("/{}", random_hex(16)),
            tokens: Mutex::new(Vec::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// A new URL that signs in once and lands on the view `next` (a path under the prefix).
    pub fn login_url(&self, next: &str) -> String {
        let token = random_hex(32);
        let mut tokens = lock(&self.tokens);
        if tokens.len() == TOKENS {
            tokens.remove(0);
        }
        tokens.push(token.clone());
        let next = if next.is_empty() { String::new() } else { format!("&next={next}") };
        format!("http://127.0.0.1:{}{}/login?token={token}{next}", self.port, self.prefix)
    }

    /// Whether `host` (the `Host` header) names us.
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| h == format!("127.0.0.1:{}", self.port) || h == format!("localhost:{}", self.port))
    }

    /// Whether `origin` (the `Origin` header) is our own.
    pub fn origin_ok(&self, origin: Option<&str>) -> bool {
        origin.is_some_and(|o| {
            o == format!("http://127.0.0.1:{}", self.port) || o == format!("http://localhost:{}", self.port)
        })
    }

    /// Spends a token: a new session id when `token` is an unspent one.
    pub fn login(&self, token: &str) -> Result<String, Refusal> {
        let mut unspent = lock(&self.tokens);
        let Some(i) = unspent.iter().position(|t| !token.is_empty() && constant_eq(t.as_bytes(), token.as_bytes()))
        else {
            return Err(Refusal::Token);
        };
        unspent.remove(i);
        let id = random_hex(32);
        lock(&self.sessions).insert(id.clone(), Instant::now());
        Ok(id)
    }

    /// Checks the session cookie in `cookie` (the `Cookie` header) and marks it used.
    pub fn session(&self, cookie: Option<&str>) -> Result<(), Refusal> {
        let id = cookie
            .into_iter()
            .flat_map(|c| c.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .filter(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v);
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, seen| seen.elapsed() < IDLE);
        for v in id {
            if let Some(seen) = sessions.get_mut(v) {
                *seen = Instant::now();
                return Ok(());
            }
        }
        Err(Refusal::Session)
    }

    /// The `Set-Cookie` value for session `id`.
    pub fn cookie(&self, id: &str) -> String {
        format!("{COOKIE}={id}; Path={}/; HttpOnly; SameSite=Strict; Max-Age={}", self.prefix, IDLE.as_secs())
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_signs_in_once_and_the_session_cookie_is_checked() {
        let gate = Gate::new(4242);
        let url = gate.login_url("");
        let token = url.rsplit_once("token=").map(|(_, t)| t.to_owned()).unwrap_or_default();
        let other = gate.login_url("pairing");
        assert!(other.ends_with("&next=pairing") && !other.contains(&token), "each link its own token");
        assert_eq!(gate.login("nope"), Err(Refusal::Token));
        let id = gate.login(&token).expect("the printed token signs in");
        assert_eq!(gate.login(&token), Err(Refusal::Token), "spent");
        assert!(gate.session(Some(&format!("other=1; {COOKIE}={id}"))).is_ok());
        assert_eq!(gate.session(Some(&format!("{COOKIE}=forged"))), Err(Refusal::Session));
        assert_eq!(gate.session(None), Err(Refusal::Session));
        assert!(gate.cookie(&id).contains("HttpOnly") && gate.cookie(&id).contains(&format!("Path={}/", gate.prefix)));
    }

    #[test]
    fn only_our_loopback_host_and_origin_pass() {
        let gate = Gate::new(4242);
        assert!(gate.host_ok(Some("127.0.0.1:4242")) && gate.host_ok(Some("localhost:4242")));
        for bad in [None, Some("evil.test:4242"), Some("127.0.0.1:4243"), Some("127.0.0.1")] {
            assert!(!gate.host_ok(bad), "{bad:?}");
        }
        assert!(gate.origin_ok(Some("http://127.0.0.1:4242")));
        for bad in [None, Some("null"), Some("http://evil.test:4242"), Some("https://127.0.0.1:4242")] {
            assert!(!gate.origin_ok(bad), "{bad:?}");
        }
    }
}
