//! Sessions: one identity per project on a machine, and the rule that picks the identity a
//! command acts as.
//!
//! ```text
//! $WIRE_SESSIONS_DIR (default: the platform data directory's `wire/sessions`)/
//!   bindings.json       directory -> session name (`wire session bind`)
//!   lock                advisory lock for bindings.json
//!   <name>/             a WIRE_HOME, plus session.json (name, created_at, uds)
//! ```
//!
//! A command acts as: the session named by `WIRE_SESSION_ID`, else `WIRE_HOME`, else the
//! session bound to the current directory or its nearest ancestor, else the default home.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::home::{Account, Home, HomeError, StateFile};
use crate::proto::time::UnixMillis;

/// A session's own description, kept in its home.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionFile {
    /// Format version.
    pub v: u64,
    /// The session's name.
    pub name: String,
    /// When it was made.
    pub created_at: UnixMillis,
    /// The local relay's Unix socket, when the session was given one.
    #[serde(default)]
    pub uds: Option<PathBuf>,
}

impl StateFile for SessionFile {
    const NAME: &'static str = "session.json";
    const VERSION: u64 = 1;
}

/// Directory bindings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Bindings {
    /// Format version.
    pub v: u64,
    /// Canonical directory -> session name.
    pub dirs: BTreeMap<PathBuf, String>,
}

impl StateFile for Bindings {
    const NAME: &'static str = "bindings.json";
    const VERSION: u64 = 1;
}

/// Which rule chose the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `WIRE_SESSION_ID` named a session.
    SessionId,
    /// `WIRE_HOME` named a directory.
    WireHome,
    /// The current directory (or an ancestor) is bound to a session.
    BoundDirectory,
    /// None of those: the default home.
    Default,
}

impl Rule {
    /// A phrase for humans.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::SessionId => "WIRE_SESSION_ID",
            Rule::WireHome => "WIRE_HOME",
            Rule::BoundDirectory => "the session bound to this directory",
            Rule::Default => "the default home (no session, WIRE_HOME or binding)",
        }
    }
}

/// The identity a command acts as, and why.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Its home.
    pub home: Home,
    /// The rule that chose it.
    pub rule: Rule,
    /// The session's name, when it is a session.
    pub session: Option<String>,
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Home directory trouble.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// Not a usable name.
    #[error("`{0}` is not a session name: use 1-64 letters, digits, `-`, `_` or `.`, not starting with `.`")]
    BadName(String),
    /// No such session.
    #[error("no session `{0}`; `wire session list` shows them, `wire session new {0}` makes it")]
    Unknown(String),
    /// No platform directories.
    #[error("cannot find a data directory for sessions; set WIRE_SESSIONS_DIR")]
    NoDefault,
}

/// Checks a session name.
pub fn valid_name(name: &str) -> Result<(), SessionError> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(SessionError::BadName(name.chars().take(80).collect())) }
}

/// A listed session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    /// Name.
    pub name: String,
    /// Its WIRE_HOME.
    pub home: PathBuf,
    /// Whether `wire init` has run in it.
    pub initialized: bool,
    /// Directories bound to it.
    pub bound: Vec<PathBuf>,
    /// Its mesh role.
    pub role: Option<String>,
    /// The local relay socket it was given.
    pub uds: Option<PathBuf>,
}

/// The sessions of this OS user.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Home,
}

impl Sessions {
    /// Sessions under `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { store: Home::at(root) }
    }

    /// `$WIRE_SESSIONS_DIR`, else the platform data directory's `wire/sessions`.
    pub fn from_env() -> Result<Self, SessionError> {
        if let Some(dir) = std::env::var_os("WIRE_SESSIONS_DIR").filter(|d| !d.is_empty()) {
            return Ok(Self::at(dir));
        }
        let dirs = crate::files::platform_dirs().ok_or(SessionError::NoDefault)?;
        Ok(Self::at(dirs.data_dir().join("sessions")))
    }

    /// The sessions directory.
    pub fn root(&self) -> &Path {
        self.store.root()
    }

    /// The home of session `name` (which may not exist yet).
    pub fn home(&self, name: &str) -> Result<Home, SessionError> {
        valid_name(name)?;
        Ok(Home::at(self.root().join(name)))
    }

    /// The home of an existing session.
    pub fn existing(&self, name: &str) -> Result<Home, SessionError> {
        let home = self.home(name)?;
        match home.load::<SessionFile>()? {
            Some(_) => Ok(home),
            None => Err(SessionError::Unknown(name.to_owned())),
        }
    }

    /// Creates session `name` (idempotent; `uds` is recorded when given). Returns its home
    /// and whether it was new.
    pub fn create(&self, name: &str, uds: Option<PathBuf>, now: UnixMillis) -> Result<(Home, bool), SessionError> {
        let home = self.home(name)?;
        let _lock = home.lock()?;
        match home.load::<SessionFile>()? {
            Some(mut file) => {
                if uds.is_some() && file.uds != uds {
                    file.uds = uds;
                    home.save(&file)?;
                }
                Ok((home.clone(), false))
            }
            None => {
                home.save(&SessionFile { v: 1, name: name.to_owned(), created_at: now, uds })?;
                Ok((home.clone(), true))
            }
        }
    }

    /// Names of every session, sorted.
    pub fn names(&self) -> Result<Vec<String>, SessionError> {
        let entries = match std::fs::read_dir(self.root()) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(HomeError::Io { path: self.root().to_owned(), source: e }.into()),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                valid_name(n).is_ok() && Home::at(self.root().join(n)).load::<SessionFile>().ok().flatten().is_some()
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every session with its bindings and role.
    pub fn list(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let bindings = self.bindings()?;
        self.names()?
            .into_iter()
            .map(|name| {
                let home = self.home(&name)?;
                let file = home.load::<SessionFile>()?;
                let account = home.load::<Account>()?;
                Ok(SessionInfo {
                    bound: bindings.dirs.iter().filter(|(_, n)| **n == name).map(|(d, _)| d.clone()).collect(),
                    initialized: account.is_some(),
                    role: account.and_then(|a| a.role),
                    uds: file.and_then(|f| f.uds),
                    home: home.root().to_owned(),
                    name,
                })
            })
            .collect()
    }

    fn bindings(&self) -> Result<Bindings, SessionError> {
        Ok(self.store.load::<Bindings>()?.unwrap_or(Bindings { v: 1, ..Bindings::default() }))
    }

    /// Binds `dir` (canonicalized) to session `name`.
    pub fn bind(&self, name: &str, dir: &Path) -> Result<PathBuf, SessionError> {
        self.existing(name)?;
        let dir = std::fs::canonicalize(dir).map_err(|e| HomeError::Io { path: dir.to_owned(), source: e })?;
        let _lock = self.store.lock()?;
        let mut bindings = self.bindings()?;
        bindings.dirs.insert(dir.clone(), name.to_owned());
        self.store.save(&bindings)?;
        Ok(dir)
    }

    /// The session bound to `dir` or its nearest bound ancestor.
    pub fn bound(&self, dir: &Path) -> Result<Option<String>, SessionError> {
        let bindings = self.bindings()?;
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        Ok(dir.ancestors().find_map(|d| bindings.dirs.get(d).cloned()))
    }
}

/// Where the local relay's Unix socket lives when `wire service install --local-relay` runs
/// it: the platform state directory's `wire/relay.sock` (`~/.local/state/wire/relay.sock`
/// on Linux). `wire session new` uses it when it exists.
pub fn local_relay_socket() -> Option<PathBuf> {
    service_state_dir().map(|d| d.join("relay.sock"))
}

/// The directory user services keep their state in (the local relay's data, logs, socket).
pub fn service_state_dir() -> Option<PathBuf> {
    crate::files::state_dir()
}

/// Picks the identity a command acts as (see the module docs for the rule).
pub fn choose(cwd: &Path) -> Result<Chosen, SessionError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(id) = var("WIRE_SESSION_ID") {
        let name = id.to_string_lossy().into_owned();
        let home = Sessions::from_env()?.existing(&name)?;
        return Ok(Chosen { home, rule: Rule::SessionId, session: Some(name) });
    }
    if let Some(dir) = var("WIRE_HOME") {
        return Ok(Chosen { home: Home::at(dir), rule: Rule::WireHome, session: None });
    }
    let sessions = Sessions::from_env()?;
    if let Some(name) = sessions.bound(cwd)? {
        let home = sessions.existing(&name)?;
        return Ok(Chosen { home, rule: Rule::BoundDirectory, session: Some(name) });
    }
    Ok(Chosen { home: Home::from_env()?, rule: Rule::Default, session: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wire-session-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", ".hidden", "a/b", "x y", &"n".repeat(65), ".."] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
        for good in ["api", "web-1", "a.b_c"] {
            valid_name(good).unwrap();
        }
    }

    #[test]
    fn nearest_bound_ancestor_wins() {
        let root = temp("bind");
        let sessions = Sessions::at(root.join("sessions"));
        let project = root.join("project");
        let nested = project.join("sub/deeper");
        std::fs::create_dir_all(&nested).unwrap();
        sessions.create("outer", None, UnixMillis(1)).unwrap();
        sessions.create("inner", None, UnixMillis(1)).unwrap();
        assert_eq!(sessions.bound(&nested).unwrap(), None);
        sessions.bind("outer", &project).unwrap();
        assert_eq!(sessions.bound(&nested).unwrap().as_deref(), Some("outer"));
        sessions.bind("inner", &project.join("sub")).unwrap();
        assert_eq!(sessions.bound(&nested).unwrap().as_deref(), Some("inner"));
        assert_eq!(sessions.bound(&project).unwrap().as_deref(), Some("outer"));
        assert!(matches!(sessions.bind("missing", &project), Err(SessionError::Unknown(_))));
        assert_eq!(sessions.names().unwrap(), vec!["inner".to_owned(), "outer".to_owned()]);
        let (_, again) = sessions.create("inner", None, UnixMillis(2)).unwrap();
        assert!(!again);
        std::fs::remove_dir_all(root).unwrap();
    }
}
