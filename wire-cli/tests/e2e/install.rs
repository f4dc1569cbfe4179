//! install.sh: shellcheck-clean; installs from source with cargo and from a release
//! archive with a verified checksum, into a temporary prefix; refuses clearly otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn sh(script: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("sh").arg(script).args(args).envs(env.iter().copied()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
#[ignore = "needs shellcheck (.ci/test installs it)"]
fn install_sh_passes_shellcheck() {
    let out = Command::new("shellcheck")
        .arg(repo().join("install.sh"))
        .output()
        .expect("shellcheck is installed by .ci/run (apt-get install shellcheck)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn installs_from_source_into_a_prefix_twice() {
    let dir = crate::common::tempdir("install-src");
    let prefix = dir.join("prefix");
    let target = std::env::var("WIRE_INSTALL_TEST_TARGET").map(PathBuf::from).unwrap_or_else(|_| dir.join("target"));
    for _ in 0..2 {
        let out = sh(
            &repo().join("install.sh"),
            &["--prefix", prefix.to_str().unwrap(), "--debug"],
            &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("next: 'wire demo'"), "{}", stderr(&out));
        // cargo's own progress shows (a first build takes minutes).
        assert!(stderr(&out).contains("Installing") || stderr(&out).contains("Replacing"), "{}", stderr(&out));
        assert!(stderr(&out).contains("'wire setup --apply'"), "{}", stderr(&out));
    }
    let version = Command::new(prefix.join("bin/wire")).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("wire {}", env!("CARGO_PKG_VERSION")));
    std::fs::remove_dir_all(&dir).ok();
}

/// A release mirror in a directory: `v1/wire-<target>.tar.gz` and `v1/SHA256SUMS`.
fn mirror(dir: &Path, corrupt_sum: bool) -> String {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "aarch64",
        _ => "x86_64",
    };
    let os = if cfg!(target_os = "macos") { "apple-darwin" } else { "unknown-linux-gnu" };
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_wire"), stage.join("wire")).unwrap();
    let release = dir.join("mirror/v1");
    std::fs::create_dir_all(&release).unwrap();
    let archive = format!("wire-{arch}-{os}.tar.gz");
    assert!(
        Command::new("tar")
            .arg("-czf")
            .arg(release.join(&archive))
            .arg("-C")
            .arg(&stage)
            .arg("wire")
            .status()
            .unwrap()
            .success()
    );
    use sha2::Digest;
    let mut sum = hex::encode(sha2::Sha256::digest(std::fs::read(release.join(&archive)).unwrap()));
    if corrupt_sum {
        // Flip the first hex digit: a well-formed sum that does not match.
        let first = if sum.starts_with('0') { "1" } else { "0" };
        sum.replace_range(..1, first);
    }
    std::fs::write(release.join("SHA256SUMS"), format!("{sum}  {archive}\n")).unwrap();
    format!("file://{}", dir.join("mirror").display())
}

/// install.sh copied outside the checkout, so it takes the download path.
fn detached_script(dir: &Path) -> PathBuf {
    let script = dir.join("install.sh");
    std::fs::copy(repo().join("install.sh"), &script).unwrap();
    script
}

#[test]
fn installs_a_release_archive_after_checking_its_sum() {
    let dir = crate::common::tempdir("install-release");
    let base = mirror(&dir, false);
    let prefix = dir.join("prefix");
    let out = sh(
        &detached_script(&dir),
        &["--prefix", prefix.to_str().unwrap(), "--base-url", &base, "--version", "v1"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(prefix.join("bin/wire").exists());
    assert!(stderr(&out).contains("installed wire"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_checksum_mismatch_installs_nothing() {
    let dir = crate::common::tempdir("install-badsum");
    let base = mirror(&dir, true);
    let prefix = dir.join("prefix");
    let out = sh(
        &detached_script(&dir),
        &["--prefix", prefix.to_str().unwrap(), "--base-url", &base, "--version", "v1"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("checksum mismatch"), "{}", stderr(&out));
    assert!(!prefix.join("bin/wire").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_cargo_and_unsupported_systems_are_explained() {
    let dir = crate::common::tempdir("install-errors");
    // A checkout without cargo on PATH.
    let checkout = dir.join("checkout");
    std::fs::create_dir_all(checkout.join("wire-cli")).unwrap();
    std::fs::write(checkout.join("Cargo.toml"), "").unwrap();
    std::fs::copy(repo().join("install.sh"), checkout.join("install.sh")).unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["sh", "mkdir", "dirname", "sed", "awk", "uname", "printf"] {
        if let Ok(path) = which(tool) {
            std::os::unix::fs::symlink(path, bin.join(tool)).unwrap();
        }
    }
    let prefix = dir.join("prefix");
    let out = Command::new(bin.join("sh"))
        .arg(checkout.join("install.sh"))
        .args(["--prefix", prefix.to_str().unwrap()])
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cargo not found"), "{}", stderr(&out));
    // An operating system with no release.
    let fake = dir.join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("uname"), "#!/bin/sh\necho Plan9\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fake.join("uname"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let out = sh(&detached_script(&dir), &["--prefix", prefix.to_str().unwrap()], &[("PATH", &path)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unsupported system 'Plan9'"), "{}", stderr(&out));
    let out = sh(&detached_script(&dir), &["--bogus"], &[]);
    assert!(stderr(&out).contains("unknown option '--bogus'"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).ok();
}

fn which(tool: &str) -> Result<PathBuf, ()> {
    std::env::var("PATH").unwrap().split(':').map(|d| Path::new(d).join(tool)).find(|p| p.exists()).ok_or(())
}
