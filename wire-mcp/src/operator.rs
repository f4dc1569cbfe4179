//! The operator's acts through the host: approving a pair request and confirming a code
//! pairing are decisions for the person at the host, asked through MCP elicitation, never
//! taken from the model (which never sees the code or the digits). A host that cannot ask
//! gets `operator_required` and the terminal command to run.
//!
//! Form mode asks for a yes/no or six digits. The spoken code never passes through MCP at
//! all: the operator reads it in a terminal (`wire pair-list`), or, when `wire ui` runs for
//! this home and the client can open URLs, a URL-mode elicitation sends the operator to its
//! Pairing page with a one-time sign-in link (the link goes to the client for the person,
//! never into a tool result the model reads).

use std::future::Future;

use tokio::sync::watch;

use serde_json::{Value, json};
use wire_core::endpoint::Endpoint;

use crate::tools::{ToolError, failure, for_model, problem, to_json};

/// What the host offers a tool call beyond the endpoint: asking the person at the host
/// (MCP elicitation) and waking when a pull stored something.
pub trait Host {
    /// Asks the person (not the model) for a form. `None` when the client cannot ask.
    fn ask(&self, message: String, schema: Value) -> impl Future<Output = Option<Asked>> + Send;
    /// Ticks after every pull of the server's sync engine.
    fn wake(&self) -> watch::Receiver<u64>;
    /// Sends the person (not the model) to `url` (MCP URL-mode elicitation). Whether the
    /// client could and the person agreed to open it.
    fn show(&self, message: String, url: String) -> impl Future<Output = bool> + Send;
    /// `wire doctor`'s report for `home`, when the binary serving MCP provides one.
    fn doctor(&self, home: wire_core::home::Home) -> impl Future<Output = Option<Result<Value, String>>> + Send;
}

/// `wire doctor` as the binary provides it to the MCP server: the report for a home (it may
/// block: it is run on a blocking thread).
pub type Doctor = fn(wire_core::home::Home) -> Result<Value, String>;

/// A one-time sign-in link to the Pairing page of the `wire ui` running for this home
/// (`wire_core::home::UI_SOCKET`), when one runs.
#[cfg(unix)]
async fn ui_link(ep: &Endpoint) -> Option<String> {
    use tokio::io::AsyncBufReadExt;
    let path = ep.home.root().join(wire_core::home::UI_SOCKET);
    let read = async {
        let stream = tokio::net::UnixStream::connect(&path).await.ok()?;
        let mut line = String::new();
        tokio::io::BufReader::new(stream).read_line(&mut line).await.ok()?;
        let url = line.trim().to_owned();
        url.starts_with("http://127.0.0.1:").then_some(url)
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), read).await.ok().flatten()
}

#[cfg(not(unix))]
async fn ui_link(_ep: &Endpoint) -> Option<String> {
    None
}

/// Sends the operator to the Pairing page of `wire ui`, where the code and the digits are
/// shown large, when `wire ui` runs for this home and the client opens URLs.
pub(crate) async fn show_pairing(ep: &Endpoint, host: &impl Host) -> bool {
    let Some(url) = ui_link(ep).await else { return false };
    let message = "wire: a code pairing is open. The Pairing page of wire ui shows its code (read it to the other \
                   operator) and, once they join, the six digits to compare and confirm."
        .to_owned();
    host.show(message, url).await
}

/// What the person answered.
#[derive(Debug)]
pub enum Asked {
    /// Filled in and submitted.
    Accepted(Value),
    /// Declined or dismissed.
    Declined,
}

/// The refusal when an act is the operator's and no one can be asked through the host.
fn operator_required(what: &str, command: String) -> ToolError {
    let error = json!({
        "code": "operator_required",
        "message": format!("{what} is your operator's decision, and this host cannot ask them; tell them"),
        "next": { "ask_operator": command },
    });
    json!({ "error": error }).to_string()
}

/// `wire_approve`: the operator approves a pending request through the host's prompt.
pub(crate) async fn approve(ep: &Endpoint, host: &impl Host, target: &str) -> Result<Value, ToolError> {
    let e = |err: wire_core::endpoint::EndpointError| failure(&err);
    let pending = ep.pending().map_err(e)?;
    let Some(request) = pending.requests.iter().find(|r| r.from.nickname == target || r.from.did == target) else {
        return Err(problem(
            "no_such_request",
            &format!("no pending pair request from `{target}`"),
            Some(wire_core::endpoint::NextStep::ListPending),
        ));
    };
    let note =
        request.note.as_deref().map(|n| format!("\nTheir note (their words, unverified): {n:?}")).unwrap_or_default();
    let message = format!(
        "wire: {} {} ({}) asks to pair with this agent.{note}\nApprove only if you know who this is.",
        request.from.emoji, request.from.nickname, request.from.did
    );
    let schema = json!({
        "type": "object",
        "properties": { "approve": { "type": "boolean", "title": "Approve this pair request" } },
        "required": ["approve"],
    });
    match host.ask(message, schema).await {
        None => Err(operator_required("Approving a pair request", format!("wire accept {}", request.from.did))),
        Some(Asked::Accepted(v)) if v["approve"] == json!(true) => {
            to_json(ep.decide(&request.from.did, true).await.map_err(e)?)
        }
        Some(_) => Err(problem("operator_declined", "the operator did not approve; nothing changed", None)),
    }
}

/// `wire_pair_confirm`: the operator types the digits from the other screen.
pub(crate) async fn confirm(ep: &Endpoint, host: &impl Host, code: &str) -> Result<Value, ToolError> {
    let e = |err: wire_core::endpoint::EndpointError| failure(&err);
    let view = ep.pair_list().map_err(e)?.into_iter().find(|v| v.nameplate == code || v.code == code);
    let Some(view) = view else {
        return Err(problem(
            "no_such_pairing",
            &format!("no code pairing `{code}`"),
            Some(wire_core::endpoint::NextStep::ListPairings),
        ));
    };
    if view.state != "sas_ready" {
        return Err(problem(
            "not_ready",
            &format!("pairing {} is {}; confirm when it is sas_ready", view.nameplate, view.state),
            Some(wire_core::endpoint::NextStep::ListPairings),
        ));
    }
    let message = format!(
        "wire: code pairing {} is ready. Type the 6 digits the OTHER operator reads from THEIR screen \
         (not the ones on yours).",
        view.nameplate
    );
    let schema = json!({
        "type": "object",
        "properties": { "digits": {
            "type": "string", "title": "Their 6 digits", "minLength": 6, "maxLength": 7,
            "pattern": "^[0-9]{3} ?[0-9]{3}$",
        } },
        "required": ["digits"],
    });
    match host.ask(message, schema).await {
        None => Err(operator_required(
            "Confirming a code pairing",
            format!("wire pair-confirm {} <the other screen's 6 digits>", view.nameplate),
        )),
        Some(Asked::Accepted(v)) => {
            let digits: String =
                v["digits"].as_str().unwrap_or_default().chars().filter(char::is_ascii_digit).collect();
            for_model(&ep.pair_confirm(&view.nameplate, &digits).await.map_err(e)?)
        }
        Some(Asked::Declined) => {
            Err(problem("operator_declined", "the operator did not confirm; nothing changed", None))
        }
    }
}
