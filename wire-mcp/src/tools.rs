//! The tool catalogue: one tool per intent, named `wire_` + the CLI verb, taking the CLI's
//! argument names. Each runs one `wire_core::endpoint` operation and answers with its JSON
//! (the same shape `wire ... --json` prints). The catalogue is pinned by a golden test.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use wire_core::endpoint::Endpoint;

/// A tool argument.
struct Arg {
    name: &'static str,
    kind: &'static str,
    description: &'static str,
    required: bool,
}

const fn req(name: &'static str, kind: &'static str, description: &'static str) -> Arg {
    Arg { name, kind, description, required: true }
}

const fn opt(name: &'static str, kind: &'static str, description: &'static str) -> Arg {
    Arg { name, kind, description, required: false }
}

const PEER: Arg =
    req("peer", "string", "The peer's nickname (adjective-noun), nick@relay, or full DID, as wire_peers lists it.");
const KIND: Arg = opt("kind", "string", "message (default), claim, decision, question, ack or heartbeat.");
const CODE: Arg = req("code", "string", "The pairing's nameplate number (wire_pair_list shows it).");

fn schema(args: &[Arg]) -> Arc<JsonObject> {
    let mut properties = serde_json::Map::new();
    for a in args {
        let mut p = json!({ "type": a.kind, "description": a.description });
        if a.kind == "integer" {
            p["minimum"] = json!(0);
        }
        properties.insert(a.name.to_owned(), p);
    }
    let required: Vec<&str> = args.iter().filter(|a| a.required).map(|a| a.name).collect();
    let mut s = json!({ "type": "object", "properties": properties, "additionalProperties": false });
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    match s {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("built as an object"),
    }
}

fn tool(name: &'static str, description: &'static str, args: &[Arg], read_only: bool) -> Tool {
    let mut t = Tool::new(name, description, schema(args));
    let mut hints = ToolAnnotations::new().read_only(read_only);
    if !read_only {
        hints = hints.open_world(true);
    }
    t.annotations = Some(hints);
    t
}

/// Every tool, in a stable order.
pub fn catalogue() -> Vec<Tool> {
    vec![
        tool(
            "wire_whoami",
            "Who this agent is on wire: nickname, emoji, DID, fingerprint, relay and handle. Give the handle (nick@relay) to others so they can dial you.",
            &[],
            true,
        ),
        tool(
            "wire_peers",
            "The agents this one is paired with (nickname, DID, tier VERIFIED, TOFU (paired by dial, key unchecked) or LOCAL, last contact). Only these can be messaged.",
            &[],
            true,
        ),
        tool(
            "wire_send",
            "Send a signed, end-to-end encrypted message to a paired peer. Returns the verdict: delivered (with the relay address that carried it), or queued when the relay is unreachable (sent later, automatically).",
            &[PEER, req("body", "string", "The message text."), KIND],
            false,
        ),
        tool(
            "wire_tail",
            "Fetch what is waiting on the relay, then return the latest inbox events (all peers, or one). Each event: from, kind, body, created_at.",
            &[
                opt("peer", "string", "Only this peer (nickname, nick@relay or DID)."),
                opt("limit", "integer", "How many of the latest events (default 20)."),
            ],
            false,
        ),
        tool(
            "wire_invite",
            "Mint a wire://pair?... invite URL for the operator to hand to another operator, whose agent redeems it with wire_accept.",
            &[
                opt("uses", "integer", "How many agents may use it (default 1)."),
                opt("ttl", "string", "How long it stays valid, e.g. 30m, 24h (default 24h)."),
            ],
            false,
        ),
        tool(
            "wire_accept",
            "Pair by redeeming an invite URL the operator gave you (target = the wire://pair?... URL). Also accepts a pending pair request by nickname or DID, but ONLY when the operator has said to accept that request; never on your own.",
            &[req(
                "target",
                "string",
                "A wire://pair?... URL, or the nickname/DID of a pending request the operator approved.",
            )],
            false,
        ),
        tool(
            "wire_reject",
            "Decline a pending pair request (by nickname or DID) when the operator has said so. Nothing is pinned.",
            &[req("target", "string", "Nickname or DID of the pending request.")],
            false,
        ),
        tool(
            "wire_dial",
            "Ask an agent to pair, by its handle nick@relay (as its operator gave it; never guess one). It waits for the other operator's consent.",
            &[
                req("handle", "string", "nick@relay, exactly as given."),
                opt("note", "string", "A short note shown to the other operator."),
            ],
            false,
        ),
        tool(
            "wire_pending",
            "Pair requests waiting for the operator's decision, and this agent's own requests in flight. Show incoming requests to the operator.",
            &[],
            true,
        ),
        tool(
            "wire_pair_host",
            "Start a code pairing as host. The code's words are shown only to your operator (`wire pair-list` in a terminal), never to you: they read it to the other operator, who joins with `wire pair-join <code>`. Then wire_pair_list shows the 6 digits to compare.",
            &[opt(
                "relay",
                "string",
                "Relay for the rendezvous (default: this agent's). Both sides must use the same one.",
            )],
            false,
        ),
        tool(
            "wire_pair_list",
            "Code pairings and their state (waiting, sas_ready, confirmed, paired, aborted), advancing them first. When sas_ready, show the 6 digits to the operator.",
            &[opt("wait_secs", "integer", "Wait up to this many seconds (max 10) for the other side to move.")],
            false,
        ),
        tool(
            "wire_pair_confirm",
            "Confirm a code pairing with the 6 digits the OTHER operator read from THEIR screen. The digits must come from your operator; never guess them and never copy them from this agent's own wire_pair_list.",
            &[CODE, req("digits", "string", "The 6 digits the other operator read aloud, as told by your operator.")],
            false,
        ),
        tool("wire_pair_cancel", "Cancel a code pairing (both sides abort; nothing is pinned).", &[CODE], false),
        tool(
            "wire_status",
            "Health: identity, relay reachability, inbox/outbox/pending counts, and refused inbound events with reasons.",
            &[],
            true,
        ),
        tool(
            "wire_mesh_broadcast",
            "Send one message to every sister session on this machine (peers of tier LOCAL). Each recipient gets its own verdict.",
            &[req("body", "string", "The message text."), KIND],
            false,
        ),
    ]
}

/// Why a tool call failed: the text the agent sees (what the CLI would print).
pub type ToolError = String;

/// A failure as a tool result's text: the same `{"error": {code, message, next}}` as the
/// CLI's `--json`, with the next step as the tool to call, or the command to ask the
/// operator for when no tool takes it.
pub fn problem(code: &str, message: &str, next: Option<wire_core::endpoint::NextStep>) -> ToolError {
    let mut error = json!({ "code": code, "message": message });
    if let Some(step) = next {
        error["next"] = match step.tool() {
            Some(tool) => json!({ "step": step, "tool": tool }),
            None => json!({ "step": step, "ask_operator": step.command() }),
        };
    }
    json!({ "error": error }).to_string()
}

/// An endpoint failure as a tool result's text.
pub fn failure(err: &(dyn std::error::Error + 'static)) -> ToolError {
    let p = wire_core::endpoint::Problem::of(err);
    problem(p.code, &p.message, p.next)
}

fn args<T: DeserializeOwned>(tool: &str, arguments: Option<JsonObject>) -> Result<T, ToolError> {
    serde_json::from_value(Value::Object(arguments.unwrap_or_default())).map_err(|e| {
        problem("bad_arguments", &format!("bad arguments for {tool}: {e}. See the tool's input schema"), None)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendArgs {
    peer: String,
    body: String,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TailArgs {
    #[serde(default)]
    peer: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteArgs {
    #[serde(default)]
    uses: Option<u32>,
    #[serde(default)]
    ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetArgs {
    target: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialArgs {
    handle: String,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostArgs {
    #[serde(default)]
    relay: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    wait_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmArgs {
    code: String,
    digits: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeArgs {
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastArgs {
    body: String,
    #[serde(default)]
    kind: Option<String>,
}

/// A code pairing as a model may see it: everything but the code's words (the spoken
/// secret reaches operators only, through their terminal).
pub fn for_model(view: &wire_core::endpoint::PairView) -> Result<Value, ToolError> {
    let mut v = to_json(view)?;
    v["code"] = Value::Null;
    Ok(v)
}

/// [`for_model`] for a list.
pub fn pairings_for_model(views: &[wire_core::endpoint::PairView]) -> Result<Value, ToolError> {
    views.iter().map(for_model).collect::<Result<Vec<_>, _>>().map(Value::Array)
}

fn to_json(v: impl serde::Serialize) -> Result<Value, ToolError> {
    serde_json::to_value(v).map_err(|e| problem("internal", &e.to_string(), None))
}

/// How long a code pairing may take before it is abandoned.
pub const PAIR_TIMEOUT: Duration = Duration::from_secs(600);

/// What a call started that the server should follow up (drive a pairing in the background).
#[derive(Debug, Default)]
pub struct FollowUp {
    /// Nameplate of a code pairing to drive.
    pub pairing: Option<String>,
}

/// Runs tool `name`.
pub async fn call(ep: &Endpoint, name: &str, arguments: Option<JsonObject>) -> Result<(Value, FollowUp), ToolError> {
    let e = |err: wire_core::endpoint::EndpointError| failure(&err);
    let mut follow = FollowUp::default();
    let value = match name {
        "wire_whoami" => {
            args::<NoArgs>(name, arguments)?;
            to_json(ep.whoami().map_err(e)?)?
        }
        "wire_peers" => {
            args::<NoArgs>(name, arguments)?;
            to_json(ep.peers().map_err(e)?)?
        }
        "wire_send" => {
            let a: SendArgs = args(name, arguments)?;
            let kind = a.kind.as_deref().unwrap_or("message");
            to_json(ep.send(&a.peer, kind, Value::String(a.body), true).await.map_err(e)?)?
        }
        "wire_tail" => {
            let a: TailArgs = args(name, arguments)?;
            // Fetch first; a relay that is down still leaves the local inbox readable.
            let pulled = ep.pull().await.map_err(e);
            let events = ep.tail(a.peer.as_deref(), a.limit.unwrap_or(20).min(1000)).map_err(e)?;
            let mut v = json!({ "events": events });
            if let Err(err) = pulled {
                v["note"] = format!("could not fetch new events: {err}").into();
            }
            v
        }
        "wire_invite" => {
            let a: InviteArgs = args(name, arguments)?;
            let ttl = match a.ttl.as_deref() {
                Some(t) => wire_core::duration::parse(t)?,
                None => Duration::from_secs(24 * 3600),
            };
            to_json(ep.invite(a.uses.unwrap_or(1).max(1), ttl).await.map_err(e)?)?
        }
        "wire_accept" => {
            let a: TargetArgs = args(name, arguments)?;
            let target = a.target.trim();
            if target.starts_with("wire://") {
                to_json(ep.accept_invite(target).await.map_err(e)?)?
            } else {
                to_json(ep.decide(target, true).await.map_err(e)?)?
            }
        }
        "wire_reject" => {
            let a: TargetArgs = args(name, arguments)?;
            to_json(ep.decide(a.target.trim(), false).await.map_err(e)?)?
        }
        "wire_dial" => {
            let a: DialArgs = args(name, arguments)?;
            to_json(ep.dial(a.handle.trim(), a.note).await.map_err(e)?)?
        }
        "wire_pending" => {
            args::<NoArgs>(name, arguments)?;
            to_json(ep.pending().map_err(e)?)?
        }
        "wire_pair_host" => {
            let a: HostArgs = args(name, arguments)?;
            let view = ep.pair_host(a.relay.as_deref(), PAIR_TIMEOUT).await.map_err(e)?;
            follow.pairing = Some(view.nameplate.clone());
            let mut v = for_model(&view)?;
            v["next"] = "Tell your operator a code pairing is open: they see its code with `wire pair-list` in a terminal (it is never shown to you), read it to the other operator, who runs `wire pair-join <code>`. Then call wire_pair_list and show your operator the 6 digits.".into();
            v
        }
        "wire_pair_list" => {
            let a: ListArgs = args(name, arguments)?;
            let wait = Duration::from_secs(a.wait_secs.unwrap_or(0).min(10));
            let _ = ep.pair_drive_all(wait).await; // advancing is best effort; the list is the answer
            pairings_for_model(&ep.pair_list().map_err(e)?)?
        }
        "wire_pair_confirm" => {
            let a: ConfirmArgs = args(name, arguments)?;
            let view = ep.pair_confirm(a.code.trim(), a.digits.trim()).await.map_err(e)?;
            follow.pairing = Some(view.nameplate.clone());
            for_model(&view)?
        }
        "wire_pair_cancel" => {
            let a: CodeArgs = args(name, arguments)?;
            for_model(&ep.pair_cancel(a.code.trim()).await.map_err(e)?)?
        }
        "wire_status" => {
            args::<NoArgs>(name, arguments)?;
            to_json(ep.status().await.map_err(e)?)?
        }
        "wire_mesh_broadcast" => {
            let a: BroadcastArgs = args(name, arguments)?;
            let out =
                ep.broadcast(a.kind.as_deref().unwrap_or("message"), Value::String(a.body), None).await.map_err(e)?;
            if out.is_empty() {
                return Err(problem(
                    "no_sisters",
                    "no sister sessions are paired with this one; the operator can run `wire session pair-all-local`",
                    None,
                ));
            }
            json!({ "deliveries": out })
        }
        other => return Err(problem("no_such_tool", &format!("no tool `{other}`; tools/list shows the tools"), None)),
    };
    Ok((value, follow))
}
