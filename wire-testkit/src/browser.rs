//! A real headless Chromium driven over WebDriver (W3C) through `chromedriver`: the few
//! commands the UI tests use, spoken as JSON over the blocking HTTP client. Each
//! [`Browser`] has its own chromedriver process and profile directory; both go when it is
//! dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The W3C key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The Chromium binary: `WIRE_TEST_CHROMIUM`, else Debian's.
fn chromium() -> String {
    std::env::var("WIRE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with its profile under `dir`.
    pub fn start(dir: &Path) -> Self {
        let port = free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let driver = Command::new(std::env::var("WIRE_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
            .arg(format!("--port={port}"))
            // Chromium's crash database and caches follow HOME and XDG: keep them in the test dir.
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join(".config"))
            .env("XDG_CACHE_HOME", dir.join(".cache"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("chromedriver (apt install chromium-driver; .ci/test does)");
        let mut browser = Self { driver, port, session: String::new() };
        crate::wait_until(Duration::from_secs(30), "chromedriver answers", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && browser.call("GET", "/status", None)["value"]["ready"] == json!(true)
        });
        let profile: PathBuf = dir.join("chromium-profile");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--window-size=1280,1000", format!("--user-data-dir={}", profile.display())],
            },
        }}});
        let started = browser.call("POST", "/session", Some(&caps));
        browser.session = started["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {started}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; its JSON answer.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let body = body.map(Value::to_string).unwrap_or_default();
        let host = format!("127.0.0.1:{}", self.port);
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        serde_json::from_slice(&exchange(self.port, raw.as_bytes())).unwrap_or(Value::Null)
    }

    fn try_session_call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let answer = self.call(method, &format!("/session/{}{path}", self.session), body);
        match answer["value"]["error"].as_str() {
            Some(error) => Err(format!("WebDriver {method} {path}: {error}: {}", answer["value"]["message"])),
            None => Ok(answer["value"].clone()),
        }
    }

    fn session_call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_session_call(method, path, body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The rendered text of the first element matching `css` now, if there is one.
    pub fn text_now(&self, css: &str) -> Option<String> {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;";
        self.eval(script, &[json!(css)]).as_str().map(str::to_owned)
    }

    /// The text of the element matching `css`, waiting for it to appear.
    pub fn wait_text(&self, css: &str) -> String {
        crate::eventually(Duration::from_secs(60), &format!("`{css}` on the page"), || self.text_now(css))
    }

    /// Clicks the element matching `css` once it is there (found again if the page's live
    /// part was re-rendered under it).
    pub fn click_css(&self, css: &str) {
        crate::eventually(Duration::from_secs(60), &format!("a click on `{css}`"), || {
            let e = self.find(css)?;
            self.try_session_call("POST", &format!("/element/{}/click", e.0), Some(&json!({}))).ok()
        });
    }

    /// Types into the element matching `css` once it is there.
    pub fn type_css(&self, css: &str, text: &str) {
        crate::eventually(Duration::from_secs(60), &format!("typing into `{css}`"), || {
            let e = self.find(css)?;
            self.try_session_call("POST", &format!("/element/{}/value", e.0), Some(&json!({ "text": text }))).ok()
        });
    }

    /// Navigates to `url`.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(&json!({ "url": url })));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.session_call("GET", "/url", None).as_str().unwrap_or_default().to_owned()
    }

    /// The first element matching a CSS selector, if any.
    pub fn find(&self, css: &str) -> Option<Element> {
        let answer = self.call(
            "POST",
            &format!("/session/{}/element", self.session),
            Some(&json!({ "using": "css selector", "value": css })),
        );
        answer["value"][ELEMENT].as_str().map(|id| Element(id.to_owned()))
    }

    /// The element matching a CSS selector, waiting for it to appear (the page updates live).
    pub fn wait_for(&self, css: &str) -> Element {
        crate::eventually(Duration::from_secs(60), &format!("`{css}` on the page"), || self.find(css))
    }

    /// The rendered text of an element.
    pub fn text(&self, e: &Element) -> String {
        self.session_call("GET", &format!("/element/{}/text", e.0), None).as_str().unwrap_or_default().to_owned()
    }

    /// Clicks an element.
    pub fn click(&self, e: &Element) {
        self.session_call("POST", &format!("/element/{}/click", e.0), Some(&json!({})));
    }

    /// Types into an element.
    pub fn type_into(&self, e: &Element, text: &str) {
        self.session_call("POST", &format!("/element/{}/value", e.0), Some(&json!({ "text": text })));
    }

    /// Presses Tab on whatever has focus.
    pub fn tab(&self) {
        let active = self.session_call("GET", "/element/active", None);
        match active[ELEMENT].as_str() {
            Some(id) => {
                self.session_call("POST", &format!("/element/{id}/value"), Some(&json!({ "text": "\u{e004}" })));
            }
            None => {
                let keys = json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": [
                    { "type": "keyDown", "value": "\u{e004}" }, { "type": "keyUp", "value": "\u{e004}" }] }] });
                self.session_call("POST", "/actions", Some(&keys));
            }
        }
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; awaits a
    /// returned promise.
    pub fn eval(&self, script: &str, args: &[Value]) -> Value {
        self.session_call("POST", "/execute/sync", Some(&json!({ "script": script, "args": args })))
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let b64 = self.session_call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default()).unwrap()
    }

    /// Forgets every cookie of the current page's site.
    pub fn clear_cookies(&self) {
        self.session_call("DELETE", "/cookie", None);
    }

    /// Sets the window size.
    pub fn resize(&self, width: u32, height: u32) {
        self.session_call("POST", "/window/rect", Some(&json!({ "width": width, "height": height })));
    }
}

/// Sends a request and reads the answer's body by its `Content-Length` (chromedriver keeps
/// the connection open after answering, so reading to the end would wait for a timeout).
fn exchange(port: u16, raw: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(crate::patience(Duration::from_secs(120)))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(len) = len.filter(|len| buf.len() >= end + 4 + len) {
                return buf[end + 4..end + 4 + len].to_vec();
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    crate::http::Resp::parse(&buf).body
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
