//! `wire ui` in a real headless Chromium (Debian's `chromium` and `chromium-driver`, over
//! WebDriver): two agents paired by code through their pages, a message appearing live,
//! a pending request accepted, a peer's markup and escape sequences rendered inert, every
//! view checked by axe-core (vendored) and by a Tab walk; and the gate (token, cookie, Host,
//! Origin) checked with raw requests. `WIRE_UPDATE_SCREENSHOTS=1` also writes each view's
//! screenshot to docs/screenshots/ (never in CI).

use std::path::{Path, PathBuf};
use std::process::Child;

use serde_json::{Value, json};
use wire_testkit::browser::Browser;
use wire_testkit::http::{Resp, raw_request};

use crate::common::{RelayProcess, WAIT, Wire, eventually, free_port, tempdir, wait_until, workspace};

/// A running `wire ui` for one agent.
struct Ui {
    child: Child,
    /// The sign-in URL it printed.
    login: String,
    /// `http://127.0.0.1:PORT/PREFIX`.
    base: String,
    port: u16,
}

impl Ui {
    fn start(w: &Wire) -> Self {
        let (child, lines) = w.follow(&["ui", "--json"]);
        let first = lines.recv_timeout(wire_testkit::patience(WAIT)).expect("wire ui prints its URL");
        let v: Value = serde_json::from_str(&first).unwrap();
        let login = v["url"].as_str().unwrap().to_owned();
        let port = v["port"].as_u64().unwrap() as u16;
        let base = login.split("/login").next().unwrap().to_owned();
        Self { child, login, base, port }
    }

    fn prefix(&self) -> String {
        self.base.rsplit_once('/').map(|(_, p)| format!("/{p}")).unwrap()
    }

    /// A raw request to the UI with these headers.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        raw.push_str(body);
        raw_request(("127.0.0.1", self.port), raw.as_bytes())
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct World {
    dir: PathBuf,
    relay: Option<RelayProcess>,
    a: Wire,
    b: Wire,
}

impl Drop for World {
    fn drop(&mut self) {
        drop(self.relay.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn world(name: &str) -> World {
    world_with(name, false)
}

/// Writes a fixed identity into a fresh home, so `wire up` keeps it (same DID and face on
/// every run: the screenshots' seeded identities).
fn seed_identity(w: &Wire, seed: u8) {
    let id = wire_core::proto::identity::Identity::from_secret_bytes(&[seed; 32], [seed.wrapping_add(100); 32]);
    wire_core::home::Home::at(&w.home).write_identity(&id).unwrap();
}

fn world_with(name: &str, seeded: bool) -> World {
    let dir = tempdir(name);
    let bind = format!("127.0.0.1:{}", free_port());
    let relay = RelayProcess::start_at(&dir.join("relay"), &dir.join("relay.log"), &bind, &[]);
    let (a, b) = (Wire::new(&dir, "a"), Wire::new(&dir, "b"));
    if seeded {
        seed_identity(&a, 1);
        seed_identity(&b, 2);
    }
    a.json(&["up", &bind]);
    b.json(&["up", &bind]);
    World { dir, relay: Some(relay), a, b }
}

/// A browser signed in to `ui`, on the page `path`.
fn signed_in(dir: &Path, name: &str, ui: &Ui, path: &str) -> Browser {
    let profile = dir.join(format!("browser-{name}"));
    std::fs::create_dir_all(&profile).unwrap();
    let browser = Browser::start(&profile);
    browser.goto(&ui.login);
    wait_until(WAIT, "the sign-in to land on the Me page", || browser.url() == format!("{}/", ui.base));
    if !path.is_empty() {
        open(&browser, ui, path);
    }
    browser
}

/// Opens a view and waits until its script has the event stream open.
fn open(browser: &Browser, ui: &Ui, path: &str) {
    browser.goto(&format!("{}/{path}", ui.base));
    let mut last = Value::Null;
    let opened = wire_testkit::patience(WAIT);
    let start = std::time::Instant::now();
    while start.elapsed() < opened {
        last = browser.eval("return [location.href, Object.assign({}, document.body.dataset)];", &[]);
        if last[1]["stream"] == "open" {
            return;
        }
        std::thread::yield_now();
    }
    panic!("the page's event stream did not open: {last}");
}

fn text_of(browser: &Browser, css: &str) -> String {
    browser.wait_text(css)
}

/// Waits until the live part of the page shows `needle`, without the page having been
/// reloaded (a marker set on the window survives only a live update).
fn appears_live(browser: &Browser, needle: &str) {
    eventually(WAIT, &format!("`{needle}` to appear live"), || {
        let live = browser.text_now("#live")?;
        live.contains(needle).then_some(())
    });
    assert_eq!(
        browser.eval("return window.wireMarker || null;", &[]),
        json!("kept"),
        "the page was reloaded, not updated"
    );
}

#[test]
#[ignore = "needs chromium and chromium-driver (.ci/test installs them)"]
fn two_agents_pair_by_code_in_their_browsers_and_talk_live() {
    let w = world("ui-pair");
    let (ua, ub) = (Ui::start(&w.a), Ui::start(&w.b));
    let ba = signed_in(&w.dir, "a", &ua, "pairing");
    let bb = signed_in(&w.dir, "b", &ub, "pairing");

    // A starts; its page shows the code; B types it in.
    ba.click_css("form[action$=\"/pairing/code/start\"] button");
    let code = text_of(&ba, "[id^=\"code-\"]");
    assert!(code.contains('-'), "a spoken code: {code}");
    bb.type_css("#code", &code);
    bb.click_css("form[action$=\"/pairing/code/join\"] button");

    // The digits appear on both pages (live); each operator reads the other screen's.
    let (da, db) = (text_of(&ba, ".digits"), text_of(&bb, ".digits"));
    assert_eq!(da.len(), 6, "six digits: {da}");
    assert_eq!(da, db, "both sides derive the same digits");
    ba.type_css("input[name=\"digits\"]", &db);
    ba.click_css("form[action$=\"/confirm\"] button");
    bb.type_css("input[name=\"digits\"]", &da);
    bb.click_css("form[action$=\"/confirm\"] button");
    for (browser, who) in [(&ba, "a"), (&bb, "b")] {
        eventually(WAIT, &format!("{who}'s page to say paired"), || {
            let state = browser.text_now(".pair-state")?;
            (state == "paired").then_some(())
        });
    }
    let (a_did, b_did) = (w.a.did(), w.b.did());
    assert_eq!(w.a.json(&["peers"])[0]["did"], json!(b_did));
    assert_eq!(w.b.json(&["peers"])[0]["did"], json!(a_did));
    assert_eq!(w.a.json(&["peers"])[0]["tier"], json!("VERIFIED"), "paired by code with compared digits");

    // A message sent from A's page appears on B's open page without a reload.
    open(&ba, &ua, &format!("peers/{}", a_enc(&b_did)));
    open(&bb, &ub, &format!("peers/{}", a_enc(&a_did)));
    bb.eval("window.wireMarker = 'kept';", &[]);
    ba.type_css("#body", "hello from the browser");
    ba.click_css("form.send button");
    appears_live(&bb, "hello from the browser");
    assert!(text_of(&ba, "#live").contains("hello from the browser"), "the sender's page shows it too");

    // A peer's markup and escape sequences arrive as text: nothing runs, nothing is parsed.
    ba.eval("window.wireMarker = 'kept';", &[]);
    let hostile = "<script>window.wirePwned=1</script><img src=x onerror=\"window.wirePwned=2\">\u{1b}[31mred\u{1b}[0m<b>bold</b>";
    w.b.run(&["send", &a_did, hostile]).ok();
    appears_live(&ba, "window.wirePwned=1");
    let checked = ba.eval(
        "const live = document.getElementById('live');\
         return { pwned: window.wirePwned || null, elements: live.querySelectorAll('script, img, b').length,\
                  text: Array.from(live.querySelectorAll('.said')).map(e => e.textContent) };",
        &[],
    );
    assert_eq!(checked["pwned"], Value::Null, "peer markup ran: {checked}");
    assert_eq!(checked["elements"], json!(0), "peer markup became elements: {checked}");
    let said = checked["text"].to_string();
    assert!(said.contains("<script>") && said.contains("<b>bold</b>"), "shown as text: {said}");
    assert!(said.contains("\\\\u{1b}[31m") && !said.contains("\\u001b"), "escape shown inert: {said}");
}

/// A DID in a URL path segment.
fn a_enc(did: &str) -> String {
    did.replace(':', "%3A")
}

#[test]
#[ignore = "needs chromium and chromium-driver (.ci/test installs them)"]
fn a_pending_request_is_accepted_from_the_ui_and_an_invite_has_a_qr_code() {
    let w = world("ui-pending");
    let ua = Ui::start(&w.a);
    let ba = signed_in(&w.dir, "a", &ua, "pairing");
    ba.eval("window.wireMarker = 'kept';", &[]);
    let addr = w.relay.as_ref().unwrap().addr.clone();
    w.b.json(&["dial", &format!("{}@{addr}", w.a.nickname())]);
    let b_nick = w.b.nickname();
    appears_live(&ba, &b_nick);
    let request = text_of(&ba, "article.request");
    assert!(request.contains(&w.b.did()), "the stranger's DID in full: {request}");
    let fingerprint = w.b.json(&["whoami"])["fingerprint"].as_str().unwrap().to_owned();
    assert!(request.contains(&fingerprint), "and its fingerprint: {request}");
    ba.click_css("form[action$=\"/accept\"] button");
    eventually(WAIT, "A to have B as a peer", || (w.a.json(&["peers"]).as_array().unwrap().len() == 1).then_some(()));
    eventually(WAIT, "B to learn it was accepted", || {
        w.b.run(&["pull"]);
        (w.b.json(&["peers"]).as_array().unwrap().len() == 1).then_some(())
    });

    // An invite made on the page: its URL, and a QR code of it.
    ba.click_css("form[action$=\"/pairing/invite\"] button");
    let url = eventually(WAIT, "the invite on the page", || {
        let v = ba.eval("const e = document.getElementById('invite-url'); return e ? e.value : null;", &[]);
        v.as_str().map(str::to_owned)
    });
    assert!(url.starts_with("wire://pair?"), "{url}");
    assert_eq!(w.a.json(&["pending"])["invites_open"], json!(1), "the invite is A's, made on the page");
    assert!(ba.find("svg.qr path").is_some(), "a QR code of it");
}

#[test]
fn requests_without_the_session_or_from_another_origin_are_refused() {
    let w = world("ui-gate");
    w.a.json(&["invite"]);
    let ua = Ui::start(&w.a);
    let host = format!("127.0.0.1:{}", ua.port);
    let p = ua.prefix();
    let token = ua.login.rsplit_once("token=").unwrap().1.to_owned();

    // No session: nothing but a refusal, for pages, the event stream and acts.
    for (method, path) in
        [("GET", format!("{p}/")), ("GET", format!("{p}/events")), ("POST", format!("{p}/pairing/invite"))]
    {
        let r = ua.request(method, &path, &[("Host", &host), ("Origin", &format!("http://{host}"))], "uses=1");
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        assert!(r.text().contains("not_signed_in"));
    }
    // Another Host (DNS rebinding), even with the right token.
    let r = ua.request("GET", &format!("{p}/login?token={token}"), &[("Host", &format!("evil.test:{}", ua.port))], "");
    assert_eq!(r.status, 421);
    // The token signs in once; a wrong one never; another prefix is not ours.
    let r = ua.request("GET", &format!("{p}/login?token=00{}", &token[2..]), &[("Host", &host)], "");
    assert_eq!(r.status, 403);
    let r = ua.request("GET", &format!("{p}/login?token={token}"), &[("Host", &host)], "");
    assert_eq!(r.status, 303);
    let cookie = r.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains(&format!("Path={p}/")),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(ua.request("GET", &format!("{p}/login?token={token}"), &[("Host", &host)], "").status, 403, "spent");
    assert_eq!(ua.request("GET", "/", &[("Host", &host), ("Cookie", &session)], "").status, 404);

    // Signed in: pages render with a strict CSP; an act from another origin (or none) is
    // refused and changes nothing.
    let page = ua.request("GET", &format!("{p}/pairing"), &[("Host", &host), ("Cookie", &session)], "");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let before = w.a.json(&["pending"])["invites_open"].clone();
    for origin in [Some("http://evil.test"), Some("null"), None] {
        let mut headers = vec![("Host", host.as_str()), ("Cookie", session.as_str())];
        if let Some(o) = origin {
            headers.push(("Origin", o));
        }
        let r = ua.request("POST", &format!("{p}/pairing/invite"), &headers, "uses=1");
        assert_eq!(r.status, 403, "origin {origin:?}");
        assert!(r.text().contains("bad_origin"));
    }
    assert_eq!(w.a.json(&["pending"])["invites_open"], before, "a refused act changed nothing");
    // From our own origin the same act works.
    let origin = format!("http://{host}");
    let r = ua.request(
        "POST",
        &format!("{p}/pairing/invite"),
        &[("Host", &host), ("Cookie", &session), ("Origin", &origin)],
        "uses=1",
    );
    assert_eq!(r.status, 303);
    assert_ne!(w.a.json(&["pending"])["invites_open"], before);

    // Without any script (this client runs none), a conversation is all in the page.
    paired(&w);
    w.b.run(&["send", &w.a.did(), "read me without JavaScript"]).ok();
    let path = format!("{p}/peers/{}", a_enc(&w.b.did()));
    eventually(WAIT, "the message in the server-rendered page", || {
        let page = ua.request("GET", &path, &[("Host", &host), ("Cookie", &session)], "");
        (page.status == 200 && page.text().contains("read me without JavaScript")).then_some(())
    });
}

/// Two paired agents (fixed identities) with a conversation held five minutes ago (the
/// injected clock), a pending request and a room, so every view has something to show.
fn seeded(name: &str) -> (World, Wire) {
    let w = world_with(name, true);
    let clock = w.dir.join("clock-offset");
    std::fs::write(&clock, "-300000").unwrap();
    let earlier = [("WIRE_CLOCK_OFFSET_FILE", clock.to_str().unwrap())];
    paired(&w);
    let (a_did, b_did) = (w.a.did(), w.b.did());
    w.a.run_with(&["send", &b_did, "Can you review the parser change?"], &earlier).ok();
    w.b.run_with(&["send", &a_did, "Yes: two comments on the error paths."], &earlier).ok();
    w.a.run(&["pull"]).ok();
    w.a.json(&["room", "create", "design"]);
    let c = Wire::new(&w.dir, "c");
    seed_identity(&c, 3);
    c.json(&["up", &w.relay.as_ref().unwrap().addr]);
    c.json(&["dial", &format!("{}@{}", w.a.nickname(), w.relay.as_ref().unwrap().addr)]);
    w.a.run(&["pull"]).ok();
    // Three sessions on this machine for the Mesh view (and the session switcher).
    let addr = w.relay.as_ref().unwrap().addr.clone();
    for name in ["planner", "coder", "reviewer"] {
        w.a.json(&["session", "new", name, "--no-bind", "--local-only", "--relay", &addr]);
    }
    w.a.json(&["session", "pair-all-local"]);
    (w, c)
}

#[test]
#[ignore = "needs chromium and chromium-driver (.ci/test installs them)"]
fn every_view_renders_passes_axe_and_tab_reaches_every_control() {
    let (w, _c) = seeded("ui-views");
    let ua = Ui::start(&w.a);
    let browser = signed_in(&w.dir, "a", &ua, "");
    let axe = std::fs::read_to_string(workspace().join("wire-cli/tests/vendor/axe-core/axe.min.js")).unwrap();
    let b_did = w.b.did();
    let update = std::env::var_os("WIRE_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1");
    let views = [
        ("me", String::new(), "Me"),
        ("peers", "peers".to_owned(), "Peers"),
        ("conversation", format!("peers/{}", a_enc(&b_did)), "Conversation"),
        ("pairing", "pairing".to_owned(), "Pairing"),
        ("rooms", "rooms".to_owned(), "Rooms"),
        ("jobs", "jobs".to_owned(), "Jobs"),
        ("mesh", "mesh".to_owned(), "Mesh"),
        ("relay", "relay".to_owned(), "Relay"),
    ];
    for (name, path, heading) in &views {
        open(&browser, &ua, path);
        assert!(text_of(&browser, "h1").starts_with(heading), "{name}: heading");
        if *name == "relay" {
            // Two samples of the relay's /metrics make a rate.
            wait_until(WAIT, "the relay charts to have data", || {
                browser.text_now("#live").is_some_and(|t| !t.contains("no data yet"))
            });
        }
        if *name == "mesh" {
            let mesh = text_of(&browser, "#live");
            assert!(["planner", "coder", "reviewer"].iter().all(|s| mesh.contains(s)), "{mesh}");
        }
        assert!(text_of(&browser, "nav").contains("Pairing"), "{name}: navigation");

        // The screenshot first (the Tab walk leaves a focus ring behind).
        if update {
            let file = workspace().join(format!("docs/screenshots/{name}.png"));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, browser.screenshot()).unwrap();
        } else {
            let png = browser.screenshot();
            assert!(png.starts_with(b"\x89PNG"), "{name}: a screenshot renders");
        }
        // axe-core, injected as the WebDriver script itself (the page's CSP forbids eval).
        let script = format!(
            "{axe}\nreturn axe.run(document, {{ runOnly: {{ type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }} }})\
             .then(r => r.violations.map(v => ({{ id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')) }})));"
        );
        let violations = browser.eval(&script, &[]);
        assert_eq!(violations, json!([]), "{name}: WCAG A/AA violations");

        // Tab from the top reaches every control, each once, in document order. Controls are
        // named by what they are (the live part may be re-rendered between two presses).
        const KEY: &str = "const key = e => [e.tagName, e.id, e.name, e.getAttribute('href'), \
             e.form ? e.form.getAttribute('action') : '', e.textContent.trim()].join('|');";
        let expected = browser.eval(
            &format!(
                "{KEY} const all = Array.from(document.querySelectorAll('a[href], button, input, select, textarea'))\
                   .filter(e => !e.disabled && (e.getClientRects().length > 0 || e.classList.contains('skip')));\
                 document.activeElement && document.activeElement.blur();\
                 return all.map(key);"
            ),
            &[],
        );
        let expected: Vec<String> = serde_json::from_value(expected).unwrap();
        assert!(expected.len() > 7, "{name}: the navigation at least");
        let mut reached: Vec<String> = Vec::new();
        for _ in 0..expected.len() + 2 {
            browser.tab();
            let at = browser.eval(
                &format!("{KEY} const e = document.activeElement; return e && e !== document.body ? key(e) : null;"),
                &[],
            );
            if let Some(at) = at.as_str().filter(|at| reached.last().map(String::as_str) != Some(at)) {
                reached.push(at.to_owned());
            }
            if reached.len() >= expected.len() {
                break;
            }
        }
        assert_eq!(reached, expected, "{name}: Tab order");
    }

    // The switcher: the page acts as another session of this machine, and back.
    let mesh = w.a.json(&["mesh", "status"]);
    let planner = mesh.as_array().unwrap().iter().find(|m| m["session"] == "planner").unwrap()["face"]["nickname"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.click_css("#session option[value=\"planner\"]");
    browser.click_css("form.switch button");
    wait_until(WAIT, "the page to act as the planner session", || {
        browser.text_now(".acting").is_some_and(|t| t.contains(&planner))
    });
    assert!(browser.wait_text("#live").contains(&planner), "the Me view is the planner's");
    browser.click_css("#session option[value=\"\"]");
    browser.click_css("form.switch button");
    let a_nick = w.a.nickname();
    wait_until(WAIT, "the page to act as the home it started in", || {
        browser.text_now(".acting").is_some_and(|t| t.contains(&a_nick))
    });
}

/// Pairs A and B by invite on the command line.
fn paired(w: &World) {
    crate::common::pair_by_invite(&w.a, &w.b);
}

/// The page's `data-*` value `key` (set by its script from the event stream).
fn data(browser: &Browser, key: &str) -> Option<String> {
    browser.eval("return document.body.dataset[arguments[0]] || null;", &[json!(key)]).as_str().map(str::to_owned)
}

#[test]
#[ignore = "needs chromium and chromium-driver (.ci/test installs them)"]
fn the_page_says_when_the_relay_or_the_ui_is_gone_and_picks_up_again() {
    let mut w = world("ui-restart");
    paired(&w);
    let ua = Ui::start(&w.a);
    let ba = signed_in(&w.dir, "a", &ua, &format!("peers/{}", a_enc(&w.b.did())));
    wait_until(WAIT, "the page to see the relay link up", || data(&ba, "link").as_deref() == Some("connected"));
    assert_eq!(ba.eval("return document.getElementById('link').hidden;", &[]), json!(true));

    // The relay dies: the page says so.
    let relay = w.relay.take().unwrap();
    let addr = relay.addr.clone();
    relay.kill9();
    wait_until(WAIT, "the page to say the relay is gone", || data(&ba, "link").as_deref() == Some("disconnected"));
    let banner = ba.wait_text("#link");
    assert!(banner.contains("Disconnected from the relay"), "{banner}");

    // It comes back: the banner goes, and messages arrive live again.
    w.relay = Some(RelayProcess::start_at(&w.dir.join("relay"), &w.dir.join("relay-2.log"), &addr, &[]));
    wait_until(WAIT, "the page to see the relay again", || data(&ba, "link").as_deref() == Some("connected"));
    ba.eval("window.wireMarker = 'kept';", &[]);
    w.b.run(&["send", &w.a.did(), "after the relay restart"]).ok();
    appears_live(&ba, "after the relay restart");
    assert_eq!(ba.eval("return document.getElementById('link').hidden;", &[]), json!(true));

    // `wire ui` itself stops: the page says that too.
    drop(ua);
    wait_until(WAIT, "the page to notice wire ui stopped", || data(&ba, "stream").as_deref() == Some("closed"));
    assert!(ba.wait_text("#link").contains("wire ui"), "the banner names what stopped");
}

#[test]
fn wire_mcp_sends_the_operator_to_the_pairing_page_with_a_one_time_link() {
    let w = world("ui-mcp");
    let ua = Ui::start(&w.a);
    let (host, p) = (format!("127.0.0.1:{}", ua.port), ua.prefix());
    let mut mcp = crate::common::McpSession::start(&w.a.home, &w.a.daemon_dir(), &w.a.sessions_dir(), None);
    mcp.handshake_with(json!({ "elicitation": { "form": {}, "url": {} } }));
    mcp.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "wire_pair_host", "arguments": {}}}));
    let asked = mcp.until(|v| v["method"] == "elicitation/create");
    assert_eq!(asked["params"]["mode"], "url", "{asked}");
    let link = asked["params"]["url"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&format!("http://{host}{p}/login?token=")) && link.ends_with("&next=pairing"), "{link}");
    mcp.send(json!({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "accept"}}));
    let reply = mcp.until(|v| v["id"] == 2);
    assert_ne!(reply["result"]["isError"], true, "{reply}");
    let code = w.a.json(&["pair-list", "--reveal"])[0]["code"].as_str().unwrap().to_owned();
    let said = reply.to_string();
    assert!(!said.contains(&code) && !said.contains("token="), "the model sees neither the code nor the link: {said}");
    assert!(said.contains("wire ui"), "the model is told where its operator was sent: {said}");

    // The operator's link signs in once and lands on the Pairing page, which shows the code.
    let path = link.strip_prefix(&format!("http://{host}")).unwrap().to_owned();
    let signed = ua.request("GET", &path, &[("Host", &host)], "");
    assert_eq!(signed.status, 303);
    assert_eq!(signed.header("location"), Some(format!("{p}/pairing").as_str()));
    let session = signed.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let page = ua.request("GET", &format!("{p}/pairing"), &[("Host", &host), ("Cookie", &session)], "");
    assert!(page.text().contains(&code), "the page shows the code to the operator");
    assert_eq!(ua.request("GET", &path, &[("Host", &host)], "").status, 403, "the link is spent");

    // A client that cannot open URLs is never sent one: the model is told the terminal way.
    let mut plain = crate::common::McpSession::start(&w.a.home, &w.a.daemon_dir(), &w.a.sessions_dir(), None);
    plain.handshake_with(json!({ "elicitation": { "form": {} } }));
    plain.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "wire_pair_host", "arguments": {}}}));
    let reply = plain.until(|v| v["id"] == 2 || v["method"] == "elicitation/create");
    assert_eq!(reply["id"], 2, "no elicitation: {reply}");
    assert!(reply.to_string().contains("wire pair-list"), "{reply}");
}

/// Serves `html` to every request on a free loopback port (another local server, another
/// origin of the same site) until the test ends; its address.
fn foreign_page(html: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            use std::io::{Read, Write};
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                html.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(html.as_bytes());
        }
    });
    addr
}

#[test]
#[ignore = "needs chromium and chromium-driver (.ci/test installs them)"]
fn in_the_browser_another_origin_cannot_act_and_no_token_gets_nothing() {
    let w = world("ui-csrf");
    let ua = Ui::start(&w.a);
    let browser = signed_in(&w.dir, "a", &ua, "pairing");
    let before = w.a.json(&["pending"])["invites_open"].clone();

    // A page of another local server (same site, other port: the browser sends our cookie
    // along) posts a form to the UI: refused by its Origin, nothing made.
    let attack = format!(
        "<!doctype html><form method=post action=\"{}/pairing/invite\"><input name=uses value=1></form>\
         <script>document.forms[0].submit()</script>",
        ua.base
    );
    let foreign = foreign_page(attack);
    browser.goto(&format!("http://{foreign}/"));
    let refused = eventually(WAIT, "the cross-origin post to be answered", || {
        let text = browser.text_now("body")?;
        text.contains("bad_origin").then_some(text)
    });
    assert!(refused.contains("Refused"), "{refused}");
    assert_eq!(w.a.json(&["pending"])["invites_open"], before, "nothing was made");

    // Without the session cookie: nothing but the refusal; a wrong or spent token neither.
    browser.goto(&format!("{}/", ua.base));
    assert!(browser.wait_text("h1").starts_with("Me"), "still signed in here");
    browser.clear_cookies();
    browser.goto(&format!("{}/peers", ua.base));
    assert!(browser.wait_text("body").contains("not_signed_in"));
    browser.goto(&ua.login);
    assert!(browser.wait_text("body").contains("bad_token"), "the printed link was spent");
}
