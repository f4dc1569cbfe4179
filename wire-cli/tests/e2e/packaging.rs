//! packaging/: what can be validated on this machine. Units pass `systemd-analyze verify`,
//! plists parse, the Task Scheduler XML is well-formed and names the executable, the
//! `.deb` builds and holds the binary, the units and the man page.

use std::path::{Path, PathBuf};
use std::process::Command;

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// Renders a template with the test binary and a temporary state directory.
fn render(template: &str, out: &Path) -> String {
    let o = Command::new("sh")
        .arg(packaging().join("render.sh"))
        .arg(packaging().join(template))
        .arg(env!("CARGO_BIN_EXE_wire"))
        .arg(out.join("state"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.contains('@'), "{template}: a placeholder was left unrendered");
    text
}

#[test]
#[ignore = "needs shellcheck, systemd-analyze and dpkg-deb (.ci/test installs them)"]
fn systemd_units_verify() {
    let dir = crate::common::tempdir("units");
    let mut units = Vec::new();
    for unit in ["wire-daemon.service", "wire-relay.service"] {
        let path = dir.join(unit);
        let text = render(&format!("systemd/{unit}"), &dir);
        assert!(text.contains(&format!("ExecStart={}", env!("CARGO_BIN_EXE_wire"))), "{text}");
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let ok = crate::common::systemd_verify(&units, &dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // The check can fail: a unit whose command is not an absolute, existing path.
    let bad = dir.join("bad.service");
    std::fs::write(&bad, std::fs::read_to_string(&units[0]).unwrap().replace(env!("CARGO_BIN_EXE_wire"), "not-a-path"))
        .unwrap();
    assert!(!crate::common::systemd_verify(&[bad], &dir).status.success());
    std::fs::remove_dir_all(&dir).ok();
}

fn python(script: &str, file: &Path) -> std::process::Output {
    Command::new("python3").arg("-c").arg(script).arg(file).output().expect("python3")
}

#[test]
fn launchd_plists_parse_and_run_wire() {
    let dir = crate::common::tempdir("plist");
    for (name, arg) in [("dev.wire.daemon.plist", "daemon"), ("dev.wire.relay.plist", "relay-server")] {
        let path = dir.join(name);
        std::fs::write(&path, render(&format!("launchd/{name}"), &dir)).unwrap();
        let out = python(
            "import plistlib,sys; p=plistlib.load(open(sys.argv[1],'rb')); a=p['ProgramArguments']; print(p['Label'], a[0], a[1], p['KeepAlive'])",
            &path,
        );
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(env!("CARGO_BIN_EXE_wire")) && text.contains(arg) && text.contains("True"), "{text}");
    }
    std::fs::write(dir.join("broken.plist"), "<plist><dict><key>x</dict>").unwrap();
    assert!(
        !python("import plistlib,sys; plistlib.load(open(sys.argv[1],'rb'))", &dir.join("broken.plist"))
            .status
            .success()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn windows_tasks_are_well_formed_and_name_the_executable() {
    let dir = crate::common::tempdir("tasks");
    for (name, arg) in [("wire-daemon.xml", "daemon run"), ("wire-relay.xml", "relay-server --local-only")] {
        let path = dir.join(name);
        std::fs::write(&path, render(&format!("windows/{name}"), &dir)).unwrap();
        let script = "import sys, xml.etree.ElementTree as E; ns={'t':'http://schemas.microsoft.com/windows/2004/02/mit/task'}; r=E.parse(sys.argv[1]).getroot(); print(r.find('t:Actions/t:Exec/t:Command',ns).text); print(r.find('t:Actions/t:Exec/t:Arguments',ns).text)";
        let out = python(script, &path);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(env!("CARGO_BIN_EXE_wire")));
        assert!(lines.next().is_some_and(|a| a.starts_with(arg)), "{text}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
#[ignore = "needs shellcheck, systemd-analyze and dpkg-deb (.ci/test installs them)"]
fn the_deb_builds_and_lists_its_files() {
    let dir = crate::common::tempdir("deb");
    let out = Command::new("sh")
        .arg(packaging().join("debian/build-deb.sh"))
        .arg(env!("CARGO_BIN_EXE_wire"))
        .arg(env!("CARGO_PKG_VERSION"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deb = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let list = Command::new("dpkg-deb").arg("-c").arg(&deb).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for file in [
        "./usr/bin/wire",
        "./usr/lib/systemd/user/wire-daemon.service",
        "./usr/lib/systemd/user/wire-relay.service",
        "./usr/share/man/man1/wire.1.gz",
    ] {
        assert!(list.contains(file), "the .deb lacks {file}:\n{list}");
    }
    let fields = Command::new("dpkg-deb").args(["-f"]).arg(&deb).args(["Package", "Version"]).output().unwrap();
    let fields = String::from_utf8_lossy(&fields.stdout);
    assert!(
        fields.contains("Package: wire") && fields.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{fields}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
#[ignore = "needs shellcheck, systemd-analyze and dpkg-deb (.ci/test installs them)"]
fn packaging_scripts_pass_shellcheck() {
    // The relay's benchmark scripts too: docs/BENCHMARKS.md tells people to run them.
    let bench = packaging().join("../wire-relay/bench");
    let out = Command::new("shellcheck")
        .arg(packaging().join("render.sh"))
        .arg(packaging().join("debian/build-deb.sh"))
        .args(["bg-writer.sh", "ratio.sh", "steal.sh", "windows.sh", "wrk-append.sh"].map(|f| bench.join(f)))
        .output()
        .expect("shellcheck is installed by .ci/run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// The many-node compose file: PostgreSQL, two relay nodes (the relay's own image, run
/// with flags and environment variables this `wire relay-server` takes) and a proxy over
/// both. `docker compose config` validates it further where compose exists; the topology
/// itself runs in `nodes.rs`.
#[test]
#[ignore = "needs python3 with PyYAML (.ci/test installs it)"]
fn the_cluster_compose_file_runs_relay_nodes_on_one_database_behind_a_proxy() {
    let file = packaging().join("container/compose.cluster.yaml");
    let script = "import sys, json, yaml; d = yaml.safe_load(open(sys.argv[1])); s = d['services']; \
        print(json.dumps({'services': sorted(s), 'entry': [s[n]['entrypoint'] for n in ('relay1', 'relay2')], \
        'env': sorted(s['relay1']['environment']), 'proxy': s['proxy']['command'], \
        'db': s['relay1']['environment']['WIRE_RELAY_DATABASE_URL']}))";
    let out = python(script, &file);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"], serde_json::json!(["postgres", "proxy", "relay1", "relay2"]), "{v}");
    let help = Command::new(env!("CARGO_BIN_EXE_wire")).args(["relay-server", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for entry in v["entry"].as_array().unwrap() {
        let args: Vec<&str> = entry.as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(&args[..2], ["/usr/local/bin/wire", "relay-server"], "{entry}");
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(help.contains(flag), "`wire relay-server` has no {flag}");
        }
    }
    for var in v["env"].as_array().unwrap() {
        assert!(help.contains(var.as_str().unwrap()), "`wire relay-server` reads no {var}");
    }
    assert!(v["db"].as_str().unwrap().contains("host=postgres"), "{v}");
    let proxy = v["proxy"].to_string();
    assert!(proxy.contains("relay1:8771") && proxy.contains("relay2:8771"), "{proxy}");
    let compose = Command::new("docker").args(["compose", "version"]).output();
    if compose.is_ok_and(|o| o.status.success()) {
        let checked = Command::new("docker")
            .args(["compose", "-f"])
            .arg(&file)
            .arg("config")
            .env("WIRE_DB_PASSWORD", "test")
            .output()
            .unwrap();
        assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    }
}
