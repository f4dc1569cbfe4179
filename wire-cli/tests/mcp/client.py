"""Drives `wire mcp` with the official Python MCP client (the `mcp` package).

Called by wire-cli/tests/mcp.rs with one JSON argument describing two identities that are
already paired through a real relay. Prints one JSON line of findings; exits non-zero with
a message on the first failed check.
"""

import asyncio
import json
import sys

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


async def main():
    findings = {}
    await legacy_round(findings)
    await modern_round(findings)
    print(json.dumps(findings))


asyncio.run(main())
