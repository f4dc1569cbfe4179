//! `wire service`: the real binary renders and writes unit files into a temporary HOME; the
//! service manager is replaced by `WIRE_SERVICE_RECORD`, so no test runs systemctl,
//! launchctl or schtasks. What is written is validated as the platform would.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Machine, Run};
use serde_json::Value;

/// A temporary HOME whose service manager only records what it is asked to do.
struct Host {
    root: PathBuf,
    machine: Machine,
}

impl Host {
    fn new(name: &str) -> Self {
        let root = crate::common::tempdir(name);
        Self { machine: Machine::new(&root), root }
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn run(&self, args: &[&str]) -> Run {
        self.machine.run(&self.root, args, &[])
    }

    fn json(&self, args: &[&str]) -> Value {
        self.machine.json(&self.root, args)
    }

    /// The commands recorded since the last call.
    fn commands(&self) -> Vec<String> {
        let path = self.root.join("service-commands");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        text.lines().map(|l| serde_json::from_str::<Vec<String>>(l).unwrap().join(" ")).collect()
    }
}

fn bin() -> String {
    std::fs::canonicalize(env!("CARGO_BIN_EXE_wire")).unwrap().display().to_string()
}

#[test]
#[ignore = "needs systemd-analyze (.ci/test installs it)"]
fn systemd_install_is_idempotent_and_uninstall_removes_exactly_what_it_wrote() {
    let host = Host::new("svc-systemd");
    let units = host.home().join(".config/systemd/user");

    // --dry-run: shows files and commands, writes and runs nothing.
    let dry = host.json(&["service", "install", "--local-relay", "--platform", "systemd", "--dry-run"]);
    assert_eq!(dry["files"].as_array().unwrap().len(), 2);
    assert!(dry["files"][0]["content"].as_str().unwrap().contains(&format!("ExecStart={} daemon run", bin())));
    assert!(dry["commands"].to_string().contains("daemon-reload"));
    assert!(!units.exists(), "a dry run wrote files");
    assert!(host.commands().is_empty(), "a dry run ran commands");

    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(units.join("someone-else.service"), "[Service]\nExecStart=/bin/true\n").unwrap();
    let first = host.json(&["service", "install", "--local-relay", "--platform", "systemd"]);
    assert!(first["files"].as_array().unwrap().iter().all(|f| f["changed"] == true));
    let written = [units.join("wire-daemon.service"), units.join("wire-relay.service")];
    let check = crate::common::systemd_verify(&written, &host.root);
    assert!(check.status.success(), "systemd-analyze: {}", String::from_utf8_lossy(&check.stderr));
    let relay_unit = std::fs::read_to_string(&written[1]).unwrap();
    let state = host.home().join(".local/state/wire");
    let exec = format!("relay-server --local-only --bind 127.0.0.1:8771 --uds {}/relay.sock", state.display());
    assert!(relay_unit.contains(&exec), "{relay_unit}");
    assert_eq!(
        host.commands(),
        [
            "systemctl --user daemon-reload",
            "systemctl --user enable wire-daemon.service wire-relay.service",
            "systemctl --user restart wire-daemon.service wire-relay.service",
        ]
    );

    // Again (as after an upgrade): nothing rewritten, the services restarted.
    let before: Vec<_> = written.iter().map(|p| std::fs::metadata(p).unwrap().modified().unwrap()).collect();
    let second = host.json(&["service", "install", "--platform", "systemd"]);
    assert!(second["files"].as_array().unwrap().iter().all(|f| f["changed"] == false), "{second}");
    assert_eq!(second["relay"], true, "the relay installed before stays installed");
    let after: Vec<_> = written.iter().map(|p| std::fs::metadata(p).unwrap().modified().unwrap()).collect();
    assert_eq!(before, after);
    assert!(host.commands().iter().any(|c| c.starts_with("systemctl --user restart")));

    let status = host.json(&["service", "status"]);
    assert_eq!(status["installed"], true);
    assert!(status["units"].as_array().unwrap().iter().all(|u| u["present"] == true && u["runs_this_wire"] == true));
    assert_eq!(
        host.commands(),
        ["systemctl --user is-active wire-daemon.service", "systemctl --user is-active wire-relay.service"]
    );

    let gone = host.json(&["service", "uninstall"]);
    assert_eq!(gone["removed"].as_array().unwrap().len(), 2);
    assert!(written.iter().all(|p| !p.exists()));
    assert!(units.join("someone-else.service").exists(), "uninstall removed a file it did not write");
    assert_eq!(
        host.commands(),
        ["systemctl --user disable --now wire-daemon.service wire-relay.service", "systemctl --user daemon-reload"]
    );
    assert_eq!(host.json(&["service", "status"])["installed"], false);
    assert_eq!(host.json(&["service", "uninstall"])["removed"], serde_json::json!([]));

    let bad =
        host.run(&["service", "install", "--local-relay", "--relay-bind", "0.0.0.0:8771", "--platform", "systemd"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("loopback"), "{bad:?}");
    std::fs::remove_dir_all(&host.root).ok();
}

fn python(script: &str, file: &Path) -> String {
    let out = Command::new("python3").arg("-c").arg(script).arg(file).output().expect("python3");
    assert!(out.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn launchd_agents_parse_as_property_lists() {
    let host = Host::new("svc-launchd");
    host.json(&["service", "install", "--local-relay", "--platform", "launchd"]);
    let agents = host.home().join("Library/LaunchAgents");
    for (name, arg) in [("dev.wire.daemon.plist", "daemon"), ("dev.wire.relay.plist", "relay-server")] {
        let text = python(
            "import plistlib,sys; p=plistlib.load(open(sys.argv[1],'rb')); print(p['Label']); print(p['ProgramArguments'][0]); print(p['ProgramArguments'][1])",
            &agents.join(name),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1..], [bin().as_str(), arg], "{name}");
    }
    let commands = host.commands();
    assert!(commands.contains(&format!("launchctl load -w {}", agents.join("dev.wire.daemon.plist").display())));
    host.json(&["service", "uninstall"]);
    assert!(std::fs::read_dir(&agents).unwrap().next().is_none());
    std::fs::remove_dir_all(&host.root).ok();
}

#[test]
fn task_scheduler_xml_is_well_formed_and_names_this_wire() {
    let host = Host::new("svc-windows");
    let v = host.json(&["service", "install", "--platform", "windows"]);
    let file = PathBuf::from(v["files"][0]["path"].as_str().unwrap());
    assert!(file.starts_with(host.home()), "{}", file.display());
    let text = python(
        "import sys, xml.etree.ElementTree as E; ns={'t':'http://schemas.microsoft.com/windows/2004/02/mit/task'}; r=E.parse(sys.argv[1]).getroot(); print(r.find('t:Actions/t:Exec/t:Command',ns).text)",
        &file,
    );
    assert_eq!(text.trim(), bin());
    assert_eq!(
        host.commands(),
        [
            format!("schtasks /Create /TN \\wire\\daemon /XML {} /F", file.display()),
            "schtasks /Run /TN \\wire\\daemon".to_owned()
        ]
    );
    std::fs::remove_dir_all(&host.root).ok();
}

#[test]
fn the_local_relay_defaults_to_loopback_8771() {
    let help = Command::new(env!("CARGO_BIN_EXE_wire")).args(["relay-server", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("[default: 127.0.0.1:8771]"), "{text}");
    let bad = Command::new(env!("CARGO_BIN_EXE_wire"))
        .args(["relay-server", "--local-only", "--ephemeral", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!bad.status.success(), "--local-only must refuse a non-loopback bind");
}
