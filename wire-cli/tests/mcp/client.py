"""Drives `wire mcp` with the official Python MCP client (the `mcp` package).

Called by wire-cli/tests/mcp.rs with one JSON argument describing two identities that are
already paired through a real relay. Prints one JSON line of findings; exits non-zero with
a message on the first failed check.
"""

import asyncio
import json
import os
import re
import sys
import urllib.request

import mcp.types as types
from mcp import Client, StdioServerParameters

CFG = json.loads(sys.argv[1])
TIMEOUT = 30


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def server(home):
    env = {
        "WIRE_HOME": home,
        "WIRE_SESSIONS_DIR": CFG["sessions_dir"],
        "WIRE_DAEMON_DIR": CFG["daemon_dir"],
        "PATH": "/usr/bin:/bin",
        "HOME": CFG["fake_home"],
    }
    return StdioServerParameters(command=CFG["wire"], args=["mcp"], env=env)


def text_of(result):
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def legacy_round(findings):
    """initialize, tools/list, send, resources/subscribe + notifications/resources/updated."""
    updated = asyncio.Queue()

    async def on_message(message):
        if isinstance(message, types.ResourceUpdatedNotification):
            await updated.put(str(message.params.uri))

    async with Client(server(CFG["a_home"]), mode="legacy") as a, Client(
        server(CFG["b_home"]), mode="legacy", message_handler=on_message
    ) as b:
        findings["server_name"] = a.server_info.name if a.server_info else None
        findings["instructions_mention_operator"] = "operator" in (a.instructions or "")
        caps = a.server_capabilities
        findings["resources_subscribe"] = bool(caps.resources and caps.resources.subscribe)

        listed = await a.list_tools()
        golden = json.load(open(CFG["golden"]))
        got = [
            {"name": t.name, "description": t.description, "inputSchema": t.input_schema}
            for t in listed.tools
        ]
        want = [
            {"name": t["name"], "description": t["description"], "inputSchema": t["inputSchema"]}
            for t in golden
        ]
        if got != want:
            fail(f"tools/list differs from the golden catalogue:\n{json.dumps(got, indent=1)[:3000]}")
        findings["tools"] = len(got)

        uri = f"wire://inbox/{CFG['a_did']}"
        resources = await b.list_resources()
        if uri not in [str(r.uri) for r in resources.resources]:
            fail(f"{uri} not in resources/list")
        await b.subscribe_resource(uri)

        sent = await a.call_tool("wire_send", {"peer": CFG["b_nick"], "body": "hello over mcp"})
        if sent.is_error:
            fail(f"wire_send failed: {text_of(sent)}")
        findings["send_verdict"] = json.loads(text_of(sent))["verdict"]

        got_uri = await asyncio.wait_for(updated.get(), TIMEOUT)
        while got_uri != uri:
            got_uri = await asyncio.wait_for(updated.get(), TIMEOUT)
        findings["legacy_update"] = got_uri
        read = await b.read_resource(uri)
        bodies = [e["body"] for e in json.loads(read.contents[0].text)]
        findings["inbox_after_legacy"] = bodies

        bad = await a.call_tool("wire_send", {"peer": 5})
        findings["bad_argument_is_tool_error"] = bool(bad.is_error)
        findings["bad_argument_message"] = text_of(bad)
        unknown = await a.call_tool("wire_send", {"peer": "nobody-here", "body": "x"})
        findings["unknown_peer_message"] = text_of(unknown)
        who = await a.call_tool("wire_whoami", {})
        findings["alive_after_bad_input"] = not who.is_error


async def modern_round(findings):
    """server/discover, then subscriptions/listen and notifications/resources/updated."""
    async with Client(server(CFG["a_home"]), mode="legacy") as a, Client(server(CFG["b_home"])) as b:
        findings["modern_protocol"] = b.protocol_version
        async with b.listen(resource_subscriptions=["wire://inbox"]) as sub:
            sent = await a.call_tool("wire_send", {"peer": CFG["b_nick"], "body": "second, via listen"})
            if sent.is_error:
                fail(f"wire_send failed: {text_of(sent)}")

            async def first_event():
                async for event in sub:
                    return event

            event = await asyncio.wait_for(first_event(), TIMEOUT)
            findings["listen_event"] = str(event)
        read = await b.read_resource("wire://inbox")
        findings["inbox_after_listen"] = [e["body"] for e in json.loads(read.contents[0].text)]


def env_of(home):
    return {
        "WIRE_HOME": home,
        "WIRE_SESSIONS_DIR": CFG["sessions_dir"],
        "WIRE_DAEMON_DIR": CFG["daemon_dir"],
        "PATH": "/usr/bin:/bin",
        "HOME": CFG["fake_home"],
    }


async def wire(home, *args):
    """Runs the wire CLI as the operator of `home`; returns (exit code, stdout JSON or None)."""
    proc = await asyncio.create_subprocess_exec(
        CFG["wire"], *args, "--json", env=env_of(home),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    try:
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    except json.JSONDecodeError:
        fail(f"wire {args} printed non-JSON: {out!r} {err!r}")
    # One JSON document, or JSON lines (`wire tail`).
    return proc.returncode, lines[0] if len(lines) == 1 and not args[0] == "tail" else lines


def metric(name):
    """A value from the relay's /metrics (a counter, gauge or histogram count)."""
    base = CFG["relay"] if CFG["relay"].startswith("http") else "http://" + CFG["relay"]
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    fail(f"no metric {name}")


async def until(what, check):
    """Waits until check() is truthy, re-checking observable state (a file, a metric)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while loop.time() < deadline:
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.05)
    fail(f"timed out waiting for {what}")


def structured(result, tool):
    if result.is_error:
        fail(f"{tool} failed: {text_of(result)}")
    return json.loads(text_of(result))


LIST_COUNT = 'wire_relay_request_duration_seconds_count{route="list"}'


async def wait_round(findings):
    """wire_wait woken by the stream, its timeout, unread-once tails, read receipts."""
    # The servers of the rounds before have closed their streams...
    async def no_streams():
        return metric("wire_relay_streams_open") == 0
    await until("earlier streams to close", no_streams)
    async with Client(server(CFG["b_home"]), mode="legacy") as b:
        # ...so B's server is up once one is open (after its catch-up pull).
        async def stream_open():
            return metric("wire_relay_streams_open") == 1
        await until("B's stream to open", stream_open)
        # What earlier rounds left unread is read first.
        earlier = structured(await b.call_tool("wire_tail", {}), "wire_tail")
        findings["read_first"] = [e["body"] for e in earlier["events"]]
        # That read queued `read` receipts, which B's server posts in the background. Once
        # its outbox is empty nothing of B's is due, so no catch-up list can fall into the
        # window below (on a busy machine the post can take longer than the engine waits
        # before taking up an item itself).
        outbox = os.path.join(CFG["b_home"], "outbox")

        async def b_outbox_empty():
            return not os.path.isdir(outbox) or not [f for f in os.listdir(outbox) if f.endswith(".json")]
        await until("B's read receipts to be posted", b_outbox_empty)
        lists_before = metric(LIST_COUNT)
        appends_before = metric("wire_relay_appends_total")
        waiting = asyncio.create_task(b.call_tool("wire_wait", {"timeout_secs": 60}))
        code, sent = await wire(CFG["a_home"], "send", CFG["b_nick"], "wake up")
        if code != 0:
            fail(f"wire send failed: {sent}")
        woke = structured(await asyncio.wait_for(waiting, TIMEOUT), "wire_wait")
        findings["wait_bodies"] = [e["body"] for e in woke["events"]]
        findings["wait_timed_out"] = woke["timed_out"]
        findings["wait_event_keys"] = sorted(woke["events"][0].keys())
        # Nothing listed B's mailbox between the append and the wake: the stream carried it.
        findings["lists_during_wait"] = metric(LIST_COUNT) - lists_before
        findings["appends_during_wait"] = metric("wire_relay_appends_total") - appends_before

        quiet = structured(await b.call_tool("wire_wait", {"timeout_secs": 1}), "wire_wait")
        findings["quiet_wait"] = quiet

        # N events, read in pages of 2 by the unread tail: each exactly once, in order.
        bodies = [f"unread {i}" for i in range(5)]
        for body in bodies:
            code, _ = await wire(CFG["a_home"], "send", CFG["b_nick"], body)
            if code != 0:
                fail("wire send failed")
        seen = []
        while True:
            page = structured(await b.call_tool("wire_tail", {"limit": 2}), "wire_tail")["events"]
            if not page:
                break
            seen.extend(e["body"] for e in page)
        findings["unread_tail"] = seen
        peek = structured(await b.call_tool("wire_peek", {}), "wire_peek")
        findings["peek_after"] = peek["events"]

        # A read receipt: A waits for it (CLI `wire send --wait read`).
        sender = await asyncio.create_subprocess_exec(
            CFG["wire"], "send", CFG["b_nick"], "read me", "--wait", "read", "--timeout", "60s", "--json",
            env=env_of(CFG["a_home"]), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )

        async def a_state():
            _, sent = await wire(CFG["a_home"], "sent", "--limit", "1")
            last = sent["sent"][-1] if sent and sent["sent"] else None
            return last["state"] if last and last["body"] == "read me" else None

        async def receipted():
            state = await a_state()
            return state if state not in (None, "queued", "sent") else None
        findings["state_before_any_read"] = await until("the delivered receipt", receipted)
        # B's operator reads it in a terminal: that sends no receipt (no append at all).
        appends = metric("wire_relay_appends_total")
        code, shown = await wire(CFG["b_home"], "tail", "--mark-read")
        findings["operator_tail"] = [line["body"] for line in shown]
        findings["appends_after_operator_read"] = metric("wire_relay_appends_total") - appends
        findings["state_after_operator_read"] = await a_state()
        # B's agent reads it: the read receipt goes out and A's wait returns.
        agent = structured(await b.call_tool("wire_tail", {}), "wire_tail")
        findings["agent_read"] = [e["body"] for e in agent["events"]]
        out, err = await asyncio.wait_for(sender.communicate(), TIMEOUT)
        findings["send_wait_exit"] = sender.returncode
        findings["send_wait_report"] = json.loads(out) if out.strip() else err.decode()
        _, sent = await wire(CFG["a_home"], "sent", "--limit", "1")
        findings["sent_view"] = sent["sent"][-1]


async def confirm_round(findings):
    """Confirming a code pairing asks the operator (elicitation) or refuses without digits."""
    asked = []

    async def operator(context, params):
        asked.append({"message": params.message, "schema": params.requested_schema})
        return types.ElicitResult(action="accept", content={"digits": findings["_b_digits"]})

    async with Client(server(CFG["b_home"]), mode="legacy") as b, Client(
        server(CFG["c_home"]), mode="legacy", elicitation_callback=operator
    ) as c:
        hosted = structured(await b.call_tool("wire_pair_host", {}), "wire_pair_host")
        nameplate = hosted["nameplate"]
        _, listed = await wire(CFG["b_home"], "pair-list", "--reveal")
        code = [p for p in listed if p["nameplate"] == nameplate][0]["code"]
        await wire(CFG["c_home"], "pair-join", code, "--detach")

        async def both_ready():
            ready = []
            for client in (b, c):
                got = structured(await client.call_tool("wire_pair_list", {"wait_secs": 1}), "wire_pair_list")
                mine = [p for p in got["pairings"] if p["nameplate"] == nameplate]
                ready.append(bool(mine) and mine[0]["state"] == "sas_ready")
                findings.setdefault("model_views", []).append(json.dumps(got))
            return all(ready)
        await until("both sides to reach sas_ready", both_ready)
        digits = {}
        for name in ("b", "c"):
            _, listed = await wire(CFG[f"{name}_home"], "pair-list", "--reveal")
            digits[name] = [p for p in listed if p["nameplate"] == nameplate][0]["sas"]
        findings["_b_digits"] = digits["b"]
        findings["digits_match"] = digits["b"] == digits["c"]
        findings["model_saw_digits"] = any(
            re.sub(r"\D", "", digits["b"]) in re.sub(r"\D", "", v) for v in findings.pop("model_views")
        )
        # B's client declares no elicitation: the tool refuses and shows no digits.
        refused = await b.call_tool("wire_pair_confirm", {"code": nameplate})
        findings["no_elicitation_is_error"] = bool(refused.is_error)
        findings["no_elicitation_error"] = json.loads(text_of(refused))["error"]
        findings["refusal_shows_digits"] = re.sub(r"\D", "", digits["b"]) in re.sub(r"\D", "", text_of(refused))
        # The model may not pass digits at all.
        sneaky = await b.call_tool("wire_pair_confirm", {"code": nameplate, "digits": digits["c"]})
        findings["digits_argument_refused"] = bool(sneaky.is_error)
        # C's client declares it: its operator is asked and types B's digits.
        confirmed = structured(await c.call_tool("wire_pair_confirm", {"code": nameplate}), "wire_pair_confirm")
        findings["elicited"] = len(asked)
        findings["elicitation_message"] = asked[0]["message"] if asked else None
        findings["elicitation_shows_digits"] = bool(asked) and re.sub(r"\D", "", digits["b"]) in re.sub(
            r"\D", "", asked[0]["message"]
        )
        findings["confirmed_state"] = confirmed["state"]
        findings.pop("_b_digits")


async def roots_round(findings):
    """A host that starts the server outside the project: the project's session is served,
    chosen by the client's roots."""
    import os
    import tempfile

    os.makedirs(CFG["fake_home"], exist_ok=True)
    project = tempfile.mkdtemp(prefix="wire roots ", dir=CFG["fake_home"])
    elsewhere = tempfile.mkdtemp(prefix="wire-elsewhere-", dir=CFG["fake_home"])
    env = {k: v for k, v in env_of("").items() if k != "WIRE_HOME"}
    proc = await asyncio.create_subprocess_exec(
        CFG["wire"], "session", "new", "roots-proj", "--relay", CFG["relay"], "--json",
        env=env, cwd=project, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        fail(f"wire session new failed: {err.decode()}")
    made = json.loads(out)
    findings["roots_session_did"] = made["identity"]["did"]

    async def roots(context):
        return types.ListRootsResult(roots=[types.Root(uri="file://" + project.replace(" ", "%20"))])

    params = StdioServerParameters(command=CFG["wire"], args=["mcp"], env=env, cwd=elsewhere)
    async with Client(params, mode="legacy", list_roots_callback=roots) as c:
        who = await c.call_tool("wire_whoami", {})
        findings["roots_whoami"] = json.loads(text_of(who)) if not who.is_error else text_of(who)
    async with Client(params, mode="legacy") as c:
        who = await c.call_tool("wire_whoami", {})
        findings["no_roots_whoami_error"] = json.loads(text_of(who)).get("error", {}).get("code")


async def main():
    findings = {}
    await roots_round(findings)
    await legacy_round(findings)
    await modern_round(findings)
    await wait_round(findings)
    await confirm_round(findings)
    print(json.dumps(findings))


asyncio.run(main())
