//! The file-system helpers every part of the runtime shares: the one atomic write (temp
//! file, fsync, rename, fsync of the directory), the one place the platform's directories
//! come from, and the percent-decoding of file URIs and forms.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with `bytes` so that a reader or a crash sees the old content or the new,
/// never a mix: a temp file beside it, written and fsynced, renamed over it, and the
/// directory fsynced. The new file gets `mode`, or else the old file's permissions (a
/// private config stays private), or else 0600.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let mode = match mode {
        Some(m) => m,
        None => fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o600),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // `mode` is filtered by the umask at creation; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    File::open(&dir).and_then(|d| d.sync_all())
}

/// The platform's directories for wire (XDG on Linux, `~/Library` on macOS, `%APPDATA%` on
/// Windows); `None` when the user has no home directory.
pub fn platform_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "wire")
}

/// Where wire keeps state that is not user data (the daemon, user services): the state
/// directory where the platform has one, else the local data directory.
pub fn state_dir() -> Option<PathBuf> {
    let dirs = platform_dirs()?;
    Some(dirs.state_dir().unwrap_or_else(|| dirs.data_local_dir()).to_owned())
}

/// This machine's tag for cards: 16 hex digits of SHA-256 over a label and the OS machine
/// id (`/etc/machine-id`), else over a random id kept in the state directory. It tells a
/// peer "my loopback is your loopback", nothing else; it is stable per machine.
pub fn machine_tag() -> Option<String> {
    static TAG: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    TAG.get_or_init(compute_machine_tag).clone()
}

fn compute_machine_tag() -> Option<String> {
    use sha2::{Digest, Sha256};
    let id = fs::read_to_string("/etc/machine-id")
        .or_else(|_| fs::read_to_string("/var/lib/dbus/machine-id"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let path = state_dir()?.join("machine-id");
            if let Ok(s) = fs::read_to_string(&path) {
                return Some(s.trim().to_owned());
            }
            let mut bytes = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
            let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_atomic(&path, fresh.as_bytes(), Some(0o600)).ok()?;
            Some(fresh)
        })?;
    let digest = Sha256::new().chain_update(crate::proto::labels::MACHINE_TAG).chain_update(id.as_bytes()).finalize();
    Some(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// Percent-decoding (RFC 3986) to bytes: `%XY` becomes the byte XY; anything else, an
/// invalid escape included, is kept as it is. For file URIs (`wire mcp`'s roots) and forms
/// (`wire ui`).
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn writes_replace_whole_files_and_keep_a_private_mode() {
        let dir = std::env::temp_dir().join(format!("wire-files-{}", std::process::id()));
        let path = dir.join("config.json");
        write_atomic(&path, b"one", None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"two", None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640, "kept the old mode");
        write_atomic(&path, b"three", Some(0o644)).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp file left behind");
        fs::remove_dir_all(&dir).unwrap();
    }
}
