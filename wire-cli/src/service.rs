//! `wire service install|uninstall|status`: the daemon (and with `--local-relay` a
//! loopback relay) as user services, rendered from the templates in `packaging/`.
//!
//! - systemd: units in `$XDG_CONFIG_HOME/systemd/user` (default `~/.config/...`),
//!   driven with `systemctl --user`.
//! - launchd: LaunchAgents in `~/Library/LaunchAgents`, driven with `launchctl`.
//! - Task Scheduler: task XML in the state directory, registered with `schtasks`.
//!
//! Install writes only files whose text changed and records what it wrote in
//! `service.json` in the daemon directory; uninstall removes exactly those files. The
//! service manager is called through [`Runner`]; setting `WIRE_SERVICE_RECORD=FILE` makes
//! it append each command to FILE as a JSON line instead of running it (tests use this; no
//! test ever calls systemctl, launchctl or schtasks); a recorded "is it running" query
//! answers no while a file `FILE.stopped` exists.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::output;

/// Which service manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// systemd user units (Linux).
    Systemd,
    /// launchd LaunchAgents (macOS).
    Launchd,
    /// Task Scheduler (Windows).
    Windows,
}

impl Platform {
    /// This machine's.
    pub fn native() -> Self {
        if cfg!(target_os = "macos") {
            Platform::Launchd
        } else if cfg!(windows) {
            Platform::Windows
        } else {
            Platform::Systemd
        }
    }
}

/// `wire service ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// Install and start the daemon (and with --local-relay a loopback relay) as user
    /// services. Idempotent; run again after an upgrade to refresh and restart them.
    Install {
        /// Also run a local-only relay on 127.0.0.1:8771 (what `wire session new` uses).
        #[arg(long)]
        local_relay: bool,
        /// Address of the local relay.
        #[arg(long, default_value = "127.0.0.1:8771")]
        relay_bind: String,
        /// Print the files and the commands; write and run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Service manager [default: this machine's].
        #[arg(long, value_enum)]
        platform: Option<Platform>,
    },
    /// Stop the services and remove exactly the files install wrote.
    Uninstall {
        /// Print what would be removed and run; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// What is installed, whether it matches this wire, and whether it runs.
    Status,
}

/// Runs service-manager commands.
pub trait Runner {
    /// Runs `argv`; returns success and the output.
    fn run(&self, argv: &[String]) -> anyhow::Result<(bool, String)>;
}

/// Runs commands for real.
struct System;

impl Runner for System {
    fn run(&self, argv: &[String]) -> anyhow::Result<(bool, String)> {
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .with_context(|| format!("running {}", argv.join(" ")))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        Ok((out.status.success(), text.trim().to_owned()))
    }
}

/// Appends commands to a file instead of running them.
struct Record(PathBuf);

impl Runner for Record {
    fn run(&self, argv: &[String]) -> anyhow::Result<(bool, String)> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.0)?;
        writeln!(f, "{}", serde_json::to_string(argv)?)?;
        let query = argv.iter().any(|a| matches!(a.as_str(), "is-active" | "list" | "/Query"));
        let stopped = PathBuf::from(format!("{}.stopped", self.0.display())).exists();
        Ok((!(query && stopped), "recorded".into()))
    }
}

fn runner() -> Box<dyn Runner> {
    match std::env::var_os("WIRE_SERVICE_RECORD").filter(|v| !v.is_empty()) {
        Some(file) => Box::new(Record(file.into())),
        None => Box::new(System),
    }
}

/// One service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Daemon,
    Relay,
}

impl Unit {
    fn file_name(self, platform: Platform) -> &'static str {
        match (platform, self) {
            (Platform::Systemd, Unit::Daemon) => "wire-daemon.service",
            (Platform::Systemd, Unit::Relay) => "wire-relay.service",
            (Platform::Launchd, Unit::Daemon) => "dev.wire.daemon.plist",
            (Platform::Launchd, Unit::Relay) => "dev.wire.relay.plist",
            (Platform::Windows, Unit::Daemon) => "wire-daemon.xml",
            (Platform::Windows, Unit::Relay) => "wire-relay.xml",
        }
    }

    fn template(self, platform: Platform) -> &'static str {
        match (platform, self) {
            (Platform::Systemd, Unit::Daemon) => include_str!("../../packaging/systemd/wire-daemon.service"),
            (Platform::Systemd, Unit::Relay) => include_str!("../../packaging/systemd/wire-relay.service"),
            (Platform::Launchd, Unit::Daemon) => include_str!("../../packaging/launchd/dev.wire.daemon.plist"),
            (Platform::Launchd, Unit::Relay) => include_str!("../../packaging/launchd/dev.wire.relay.plist"),
            (Platform::Windows, Unit::Daemon) => include_str!("../../packaging/windows/wire-daemon.xml"),
            (Platform::Windows, Unit::Relay) => include_str!("../../packaging/windows/wire-relay.xml"),
        }
    }

    /// The Task Scheduler task name.
    fn task(self) -> &'static str {
        match self {
            Unit::Daemon => "\\wire\\daemon",
            Unit::Relay => "\\wire\\relay",
        }
    }
}

/// Where things go.
#[derive(Debug, Clone)]
struct Layout {
    platform: Platform,
    /// Directory the unit files go to.
    units: PathBuf,
    /// The state directory (`@WIRE_STATE@`).
    state: PathBuf,
    /// The install record.
    record: PathBuf,
}

impl Layout {
    fn of(platform: Platform) -> anyhow::Result<Self> {
        let base = directories::BaseDirs::new().context("no home directory for this user (is HOME set?)")?;
        let state = wire_core::session::service_state_dir().context("no home directory for this user")?;
        let units = match platform {
            Platform::Systemd => base.config_dir().join("systemd/user"),
            Platform::Launchd => base.home_dir().join("Library/LaunchAgents"),
            Platform::Windows => state.join("tasks"),
        };
        Ok(Self { platform, units, state, record: crate::daemon::dir()?.join("service.json") })
    }
}

/// Fills a template's placeholders.
fn render(template: &str, bin: &Path, state: &Path, relay_bind: &str) -> String {
    template
        .replace("@WIRE_BIN@", &bin.display().to_string())
        .replace("@WIRE_STATE@", &state.display().to_string())
        .replace("@RELAY_BIND@", relay_bind)
}

/// Carries a private relay's CA (`WIRE_CA_FILE`, as set now) into a unit, so the service
/// trusts what the shell trusts. Task Scheduler tasks have no environment of their own:
/// there it must be a user environment variable.
fn with_ca_file(text: String, platform: Platform, ca: Option<&Path>) -> String {
    let Some(ca) = ca else { return text };
    let ca = ca.display().to_string();
    match platform {
        Platform::Systemd => {
            let line = format!("Environment=\"WIRE_CA_FILE={}\"\n", ca.replace('\\', "\\\\").replace('"', "\\\""));
            text.replacen("[Service]\n", &format!("[Service]\n{line}"), 1)
        }
        Platform::Launchd => {
            let xml = ca.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            let dict = format!(
                "    <key>EnvironmentVariables</key>\n    <dict>\n        <key>WIRE_CA_FILE</key>\n        <string>{xml}</string>\n    </dict>\n"
            );
            text.replacen("    <key>ProgramArguments</key>\n", &format!("{dict}    <key>ProgramArguments</key>\n"), 1)
        }
        Platform::Windows => text,
    }
}

/// What install wrote (kept for uninstall).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Installed {
    v: u64,
    platform: Option<Platform>,
    files: Vec<PathBuf>,
    relay: bool,
}

fn load_record(path: &Path) -> anyhow::Result<Installed> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is damaged; move it aside and run `wire service install`", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Installed { v: 1, ..Installed::default() }),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// The commands that (re)start `units` after their files were written.
fn start_commands(layout: &Layout, units: &[Unit], files: &[PathBuf]) -> Vec<Vec<String>> {
    match layout.platform {
        Platform::Systemd => {
            let names: Vec<&str> = units.iter().map(|u| u.file_name(Platform::Systemd)).collect();
            let mut cmds = vec![argv(&["systemctl", "--user", "daemon-reload"])];
            cmds.push([argv(&["systemctl", "--user", "enable"]), argv(&names)].concat());
            // restart, not start: a re-install after an upgrade runs the new binary.
            cmds.push([argv(&["systemctl", "--user", "restart"]), argv(&names)].concat());
            cmds
        }
        Platform::Launchd => files
            .iter()
            .flat_map(|f| {
                let f = f.display().to_string();
                [argv(&["launchctl", "unload", &f]), argv(&["launchctl", "load", "-w", &f])]
            })
            .collect(),
        Platform::Windows => units
            .iter()
            .zip(files)
            .flat_map(|(u, f)| {
                let f = f.display().to_string();
                [
                    argv(&["schtasks", "/Create", "/TN", u.task(), "/XML", &f, "/F"]),
                    argv(&["schtasks", "/Run", "/TN", u.task()]),
                ]
            })
            .collect(),
    }
}

fn stop_commands(platform: Platform, files: &[PathBuf]) -> Vec<Vec<String>> {
    let unit_of = |f: &PathBuf| {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.contains("relay") { Unit::Relay } else { Unit::Daemon }
    };
    match platform {
        Platform::Systemd => {
            let names: Vec<String> =
                files.iter().filter_map(|f| f.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
            vec![[argv(&["systemctl", "--user", "disable", "--now"]), names].concat()]
        }
        Platform::Launchd => {
            files.iter().map(|f| argv(&["launchctl", "unload", "-w", &f.display().to_string()])).collect()
        }
        Platform::Windows => {
            files.iter().map(|f| argv(&["schtasks", "/Delete", "/TN", unit_of(f).task(), "/F"])).collect()
        }
    }
}

/// Runs a `wire service` command.
pub fn run(command: ServiceCommand, json: bool) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Install { local_relay, relay_bind, dry_run, platform } => {
            install(platform.unwrap_or_else(Platform::native), local_relay, &relay_bind, dry_run, json, &*runner())
        }
        ServiceCommand::Uninstall { dry_run } => uninstall(dry_run, json, &*runner()),
        ServiceCommand::Status => status(json, &*runner()),
    }
}

fn install(
    platform: Platform,
    local_relay: bool,
    relay_bind: &str,
    dry_run: bool,
    json: bool,
    runner: &dyn Runner,
) -> anyhow::Result<()> {
    let bind: std::net::SocketAddr = relay_bind
        .parse()
        .with_context(|| format!("--relay-bind {relay_bind} is not an address like 127.0.0.1:8771"))?;
    if !bind.ip().is_loopback() {
        bail!("--relay-bind must be a loopback address: the local relay serves this machine only");
    }
    let layout = Layout::of(platform)?;
    // A path that survives a package manager's upgrade (not the versioned file behind it).
    let bin = crate::setup::stable_binary()?;
    let ca = std::env::var_os("WIRE_CA_FILE").filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut record = load_record(&layout.record)?;
    if record.platform.is_some_and(|p| p != platform) && !record.files.is_empty() {
        bail!("services are installed for {:?}; run `wire service uninstall` first", record.platform);
    }
    let relay = local_relay || record.relay; // a relay installed before stays installed
    let units: Vec<Unit> = if relay { vec![Unit::Daemon, Unit::Relay] } else { vec![Unit::Daemon] };
    let mut files = Vec::new();
    for unit in &units {
        let path = layout.units.join(unit.file_name(platform));
        let text =
            with_ca_file(render(unit.template(platform), &bin, &layout.state, relay_bind), platform, ca.as_deref());
        let changed = std::fs::read_to_string(&path).map_or(true, |old| old != text);
        files.push((path, text, changed));
    }
    let paths: Vec<PathBuf> = files.iter().map(|(p, _, _)| p.clone()).collect();
    let commands = start_commands(&layout, &units, &paths);
    if dry_run {
        if json {
            let files: Vec<_> =
                files.iter().map(|(p, t, c)| json!({ "path": p, "content": t, "changed": c })).collect();
            output::json(&json!({ "dry_run": true, "platform": platform, "files": files, "commands": commands }));
        } else {
            for (path, text, changed) in &files {
                let note = if *changed { "would write" } else { "unchanged" };
                println!("# {note}: {}\n{text}", path.display());
            }
            println!("# would run:");
            for c in &commands {
                println!("{}", c.join(" "));
            }
        }
        return Ok(());
    }
    for dir in [&layout.units, &layout.state] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (path, text, changed) in &files {
        if *changed {
            wire_core::files::write_atomic(path, text.as_bytes(), Some(0o644))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    record = Installed { v: 1, platform: Some(platform), files: paths.clone(), relay };
    if let Some(dir) = layout.record.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&layout.record, serde_json::to_vec_pretty(&record)?)
        .with_context(|| format!("writing {}", layout.record.display()))?;
    let mut ran = Vec::new();
    for c in &commands {
        let (ok, out) = runner.run(c).map_err(|e| {
            anyhow::anyhow!(
                "{e:#}\nthe files are in place, but `{}` could not run: is this a {platform:?} system? \
                 (`--platform` picks another; `wire daemon start` runs the daemon without a service manager)",
                c[0]
            )
        })?;
        if !ok {
            bail!(
                "`{}` failed: {out}\nthe files are in place; fix the cause and run `wire service install` again",
                c.join(" ")
            );
        }
        ran.push(c.clone());
    }
    if json {
        let files: Vec<_> = files.iter().map(|(p, _, c)| json!({ "path": p, "changed": c })).collect();
        output::json(&json!({ "platform": platform, "files": files, "commands": ran, "relay": relay }));
    } else {
        for (path, _, changed) in &files {
            println!("{} {}", if *changed { "wrote    " } else { "unchanged" }, path.display());
        }
        println!(
            "started: the daemon{}",
            if relay { format!(" and the local relay on {relay_bind}") } else { String::new() }
        );
        if relay {
            eprintln!("next: `wire session new` in each project, then `wire session pair-all-local`");
        }
    }
    Ok(())
}

fn uninstall(dry_run: bool, json: bool, runner: &dyn Runner) -> anyhow::Result<()> {
    let path = crate::daemon::dir()?.join("service.json");
    let record = load_record(&path)?;
    let Some(platform) = record.platform.filter(|_| !record.files.is_empty()) else {
        if json {
            output::json(&json!({ "removed": [], "commands": [], "note": "nothing installed" }));
        } else {
            println!("nothing installed by `wire service install`");
        }
        return Ok(());
    };
    let commands = stop_commands(platform, &record.files);
    if dry_run {
        if json {
            output::json(&json!({ "dry_run": true, "would_remove": record.files, "commands": commands }));
        } else {
            for f in &record.files {
                println!("would remove {}", f.display());
            }
            for c in &commands {
                println!("would run {}", c.join(" "));
            }
        }
        return Ok(());
    }
    let mut problems = Vec::new();
    for c in &commands {
        // Stopping a service that is already stopped is fine; keep going either way.
        if let Ok((false, out)) = runner.run(c) {
            problems.push(format!("`{}`: {out}", c.join(" ")));
        }
    }
    let mut removed = Vec::new();
    for f in &record.files {
        match std::fs::remove_file(f) {
            Ok(()) => removed.push(f.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", f.display())),
        }
    }
    if platform == Platform::Systemd {
        let _ = runner.run(&argv(&["systemctl", "--user", "daemon-reload"]));
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    if json {
        output::json(&json!({ "removed": removed, "commands": commands, "warnings": problems }));
    } else {
        for f in &removed {
            println!("removed {}", f.display());
        }
        for p in &problems {
            eprintln!("warning: {p}");
        }
    }
    Ok(())
}

/// One installed unit, as `wire service status` and `wire doctor` see it.
#[derive(Debug, Serialize)]
pub struct UnitState {
    /// Its file.
    pub file: PathBuf,
    /// Whether the file is still there.
    pub present: bool,
    /// Whether it names this wire binary.
    pub runs_this_wire: bool,
    /// Whether the service manager says it runs.
    pub running: bool,
}

/// The installed units (`None` when `wire service install` never ran), and the platform.
pub fn unit_states() -> anyhow::Result<Option<(Platform, Vec<UnitState>)>> {
    unit_states_with(runner().as_ref())
}

fn unit_states_with(runner: &dyn Runner) -> anyhow::Result<Option<(Platform, Vec<UnitState>)>> {
    let record = load_record(&crate::daemon::dir()?.join("service.json"))?;
    let Some(platform) = record.platform.filter(|_| !record.files.is_empty()) else { return Ok(None) };
    let bin = crate::setup::stable_binary()?;
    let mut units = Vec::new();
    for file in &record.files {
        let unit = if file.to_string_lossy().contains("relay") { Unit::Relay } else { Unit::Daemon };
        let on_disk = std::fs::read_to_string(file).ok();
        let runs_this_wire = on_disk.as_deref().is_some_and(|t| t.contains(&bin.display().to_string()));
        let query = match platform {
            Platform::Systemd => argv(&["systemctl", "--user", "is-active", unit.file_name(platform)]),
            Platform::Launchd => {
                argv(&["launchctl", "list", if unit == Unit::Relay { "dev.wire.relay" } else { "dev.wire.daemon" }])
            }
            Platform::Windows => argv(&["schtasks", "/Query", "/TN", unit.task()]),
        };
        let running = runner.run(&query).map(|(ok, _)| ok).unwrap_or(false);
        units.push(UnitState { file: file.clone(), present: on_disk.is_some(), runs_this_wire, running });
    }
    Ok(Some((platform, units)))
}

fn status(json: bool, runner: &dyn Runner) -> anyhow::Result<()> {
    let Some((platform, units)) = unit_states_with(runner)? else {
        if json {
            output::json(&json!({ "installed": false, "units": [] }));
        } else {
            println!("not installed; `wire service install [--local-relay]` sets it up");
        }
        return Ok(());
    };
    let units: Vec<serde_json::Value> = units.iter().map(|u| serde_json::to_value(u).unwrap_or_default()).collect();
    if json {
        output::json(&json!({ "installed": true, "platform": platform, "units": units }));
    } else {
        for u in &units {
            let file = u["file"].as_str().unwrap_or_default();
            let mut notes = Vec::new();
            if u["present"] != true {
                notes.push("file missing: run `wire service install`");
            } else if u["runs_this_wire"] != true {
                notes.push("names another wire binary: run `wire service install` to refresh");
            }
            let state = if u["running"] == true { "running" } else { "not running" };
            println!("{file}: {state}{}", notes.iter().map(|n| format!("; {n}")).collect::<String>());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_without_placeholders() {
        for platform in [Platform::Systemd, Platform::Launchd, Platform::Windows] {
            for unit in [Unit::Daemon, Unit::Relay] {
                let text =
                    render(unit.template(platform), Path::new("/opt/wire/bin/wire"), Path::new("/s"), "127.0.0.1:9");
                assert!(!text.contains('@'), "{platform:?} {unit:?}");
                assert!(text.contains("/opt/wire/bin/wire"));
                if unit == Unit::Relay {
                    assert!(text.contains("127.0.0.1:9") && text.contains("--local-only"), "{platform:?}: {text}");
                }
            }
        }
    }

    #[test]
    fn a_private_ca_is_carried_into_systemd_and_launchd_units() {
        let ca = Path::new("/etc/wire/ca & co.pem");
        for platform in [Platform::Systemd, Platform::Launchd] {
            let text = render(Unit::Daemon.template(platform), Path::new("/w"), Path::new("/s"), "127.0.0.1:9");
            let carried = with_ca_file(text.clone(), platform, Some(ca));
            assert!(carried.len() > text.len(), "{platform:?}: {carried}");
            assert_eq!(with_ca_file(text.clone(), platform, None), text);
        }
        let unit = with_ca_file("[Service]\nType=simple\n".into(), Platform::Systemd, Some(ca));
        assert_eq!(unit, "[Service]\nEnvironment=\"WIRE_CA_FILE=/etc/wire/ca & co.pem\"\nType=simple\n");
        let plist = render(Unit::Daemon.template(Platform::Launchd), Path::new("/w"), Path::new("/s"), "x");
        assert!(
            with_ca_file(plist, Platform::Launchd, Some(ca)).contains("<string>/etc/wire/ca &amp; co.pem</string>")
        );
    }

    #[test]
    fn start_and_stop_commands_name_the_units() {
        let layout =
            Layout { platform: Platform::Systemd, units: "/u".into(), state: "/s".into(), record: "/r".into() };
        let files = vec![PathBuf::from("/u/wire-daemon.service"), PathBuf::from("/u/wire-relay.service")];
        let start = start_commands(&layout, &[Unit::Daemon, Unit::Relay], &files);
        assert_eq!(
            start.last().unwrap(),
            &argv(&["systemctl", "--user", "restart", "wire-daemon.service", "wire-relay.service"])
        );
        let stop = stop_commands(Platform::Systemd, &files);
        assert_eq!(
            stop,
            vec![argv(&["systemctl", "--user", "disable", "--now", "wire-daemon.service", "wire-relay.service"])]
        );
        let win = stop_commands(Platform::Windows, &files[1..]);
        assert_eq!(win, vec![argv(&["schtasks", "/Delete", "/TN", "\\wire\\relay", "/F"])]);
    }
}
