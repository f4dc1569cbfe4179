"""Arrival-to-return latency of `wire_wait`, against the resource notification of the
same message (docs/BENCHMARKS.md, "wire_wait latency").

Two paired homes (A sends, B waits), each behind its own `wire mcp` driven by the Python
`mcp` client. Per round: B is waiting in `wire_wait` and subscribed to its inbox resource;
A calls `wire_send`; we time from the call to (a) `wire_send` returning (the relay has the
envelope: the arrival), (b) B's `notifications/resources/updated`, (c) B's `wire_wait`
returning the message; and, for scale, (d) the round trip of a `wire_peek` call that finds
nothing (what any tool call costs through this client). Prints one JSON object of
percentiles in milliseconds.

    python wait_latency.py WIRE_BIN A_HOME B_HOME B_NICK A_DID ROUNDS
"""

import asyncio
import json
import statistics
import sys
import time

import mcp.types as types
from mcp import Client, StdioServerParameters

WIRE, A_HOME, B_HOME, B_NICK, A_DID, ROUNDS = sys.argv[1:7]
ROUNDS = int(ROUNDS)


def server(home):
    return StdioServerParameters(command=WIRE, args=["mcp"], env={"WIRE_HOME": home, "PATH": "/usr/bin:/bin"})


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))] * 1000, 2)


async def main():
    updated = asyncio.Queue()

    async def on_message(message):
        if isinstance(message, types.ResourceUpdatedNotification):
            await updated.put(time.perf_counter())

    uri = f"wire://inbox/{A_DID}"
    sent_ms, notified_ms, waited_ms, peek_ms = [], [], [], []
    async with Client(server(A_HOME), mode="legacy") as a, Client(
        server(B_HOME), mode="legacy", message_handler=on_message
    ) as b:
        await b.subscribe_resource(uri)
        # Read what is there, so each round's wait returns exactly its own message.
        await b.call_tool("wire_tail", {"limit": 1000})
        for i in range(ROUNDS):
            while not updated.empty():
                updated.get_nowait()
            waiting = asyncio.create_task(b.call_tool("wire_wait", {"timeout_secs": 30}))
            await asyncio.sleep(0.05)  # let the wait start; not part of any timing
            t0 = time.perf_counter()
            sent = await a.call_tool("wire_send", {"peer": B_NICK, "body": f"round {i}"})
            t_sent = time.perf_counter()
            result = await waiting
            t_wait = time.perf_counter()
            t_note = await asyncio.wait_for(updated.get(), 30)
            if sent.is_error or result.is_error:
                sys.exit(f"round {i} failed")
            events = json.loads(result.content[0].text)["events"]
            if [e["body"] for e in events] != [f"round {i}"]:
                sys.exit(f"round {i}: wait returned {events}")
            t1 = time.perf_counter()
            await b.call_tool("wire_peek", {})
            peek_ms.append(time.perf_counter() - t1)
            sent_ms.append(t_sent - t0)
            notified_ms.append(t_note - t0)
            waited_ms.append(t_wait - t0)
    out = {"rounds": ROUNDS}
    for name, xs in (
        ("send_returned", sent_ms),
        ("notification", notified_ms),
        ("wire_wait_returned", waited_ms),
        ("peek_round_trip", peek_ms),
    ):
        out[name] = {"p50": pct(xs, 0.5), "p90": pct(xs, 0.9), "p99": pct(xs, 0.99), "mean": round(statistics.mean(xs) * 1000, 2)}
    out["wait_over_notification_p50"] = round(out["wire_wait_returned"]["p50"] / out["notification"]["p50"], 2)
    print(json.dumps(out))


asyncio.run(main())
