"""Two `chat` example processes sharing a room through a real broker (issue 14, point 4).

For Redis and for NATS: starts the broker on a free loopback port and two chat nodes linked to it
(`--broker URL`), then checks from outside, with the `websockets` client, what README promises:
bob's welcome on the second node counts both nodes (`present: 2`) and a line typed on either node
reaches the other. Then the broker is killed (SIGKILL) and restarted on the same port, and the
same exchange must succeed again once the nodes have reconnected by themselves (bounded wait).

Usage: python chat_nodes.py PATH_TO_CHAT_BINARY
"""

import asyncio
import json
import socket
import subprocess
import sys
import time

import websockets

CHAT = sys.argv[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, deadline=15.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {deadline} s")


def start_broker(kind, port):
    if kind == "redis":
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    else:
        command = ["nats-server", "-a", "127.0.0.1", "-p", str(port)]
    broker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return broker


async def recv_json(ws, predicate, what):
    async def first():
        while True:
            message = json.loads(await ws.recv())
            if predicate(message):
                return message

    try:
        return await asyncio.wait_for(first(), 5)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} within 5 s") from None


async def exchange(a, b):
    async with websockets.connect(f"ws://127.0.0.1:{a}/rooms/lobby?nick=ann") as ann:
        await recv_json(ann, lambda m: m.get("type") == "welcome", "welcome for ann")
        async with websockets.connect(f"ws://127.0.0.1:{b}/rooms/lobby?nick=bob") as bob:
            welcome = await recv_json(bob, lambda m: m.get("type") == "welcome", "welcome for bob")
            assert welcome["present"] == 2, f"bob's welcome counts both nodes: {welcome}"
            await ann.send(json.dumps({"text": "hello from node A"}))
            await recv_json(bob, lambda m: m.get("text") == "hello from node A", "A's line on B")
            await bob.send(json.dumps({"text": "hi from node B"}))
            await recv_json(ann, lambda m: m.get("text") == "hi from node B", "B's line on A")


async def exchange_eventually(a, b, deadline):
    end = time.monotonic() + deadline
    while True:
        try:
            await exchange(a, b)
            return
        except (AssertionError, OSError, websockets.WebSocketException) as error:
            if time.monotonic() > end:
                raise SystemExit(f"no shared room within {deadline} s: {error}")
            await asyncio.sleep(0.2)


def main():
    for kind in ("redis", "nats"):
        broker_port = free_port()
        url = f"{kind}://127.0.0.1:{broker_port}"
        broker = start_broker(kind, broker_port)
        nodes = []
        try:
            ports = [free_port(), free_port()]
            for port in ports:
                nodes.append(subprocess.Popen([CHAT, f"127.0.0.1:{port}", "--broker", url]))
            for port in ports:
                wait_listening(port)
            # A node's presence reaches the other with its first report: allow a few heartbeats.
            asyncio.run(exchange_eventually(*ports, deadline=10))
            print(f"{kind}: two chat nodes share a room")
            broker.kill()
            broker.wait()
            broker = start_broker(kind, broker_port)
            asyncio.run(exchange_eventually(*ports, deadline=30))
            print(f"{kind}: and again after the broker was killed and restarted")
        finally:
            for node in nodes:
                node.terminate()
            for node in nodes:
                node.wait(timeout=10)
            broker.kill()
            broker.wait()


main()
