#!/usr/bin/env python3
"""WebSocket client for the tests of the demo's /ws/echo/ (runs inside a test container).

Needs the `websockets` package: run it with a release virtualenv's interpreter (uvicorn[standard]
installs it), e.g. /srv/demo/current/venv/bin/python wsclient.py echo --unix /run/gunicorn/demo.sock

Targets are loopback only: a unix socket, or ws(s)://localhost|127.0.0.1|[::1][:port]/path.
Every mode is bounded (--timeout seconds in all) and prints one JSON object.

  echo       open --connections sockets, hold them all open at once (each has had its hello),
             then send --messages text messages on each and check every echo (plus --pings
             server pushes per socket); close them normally.
  hold       open --connections sockets, touch --ready-file, and wait until the server closes
             them (a reload): record each close (the code of the close frame, or none received =
             reset); then reconnect once and record which worker answered and whether it echoes.
  handshake  one opening handshake with --origin / --host-header: accepted or the HTTP status.
"""
import argparse
import asyncio
import collections
import json
import ssl
import sys
import time
import urllib.parse
import uuid

from websockets.asyncio.client import connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def target(args):
    """A function opening one connection with the common options.

    The name in the URI (Host header, TLS server name) is --host-header when given, while the
    connection itself always goes to the unix socket or to the loopback address of --url.
    """
    common = {"origin": args.origin, "open_timeout": args.open_timeout, "close_timeout": 10,
              "ping_interval": None, "proxy": None, "max_size": 2**20}
    if args.unix:
        uri = f"ws://{args.host_header or 'localhost'}{args.path}"
        return lambda: unix_connect(args.unix, uri, **common)
    url = urllib.parse.urlsplit(args.url)
    if url.hostname not in LOOPBACK or url.scheme not in ("ws", "wss"):
        raise SystemExit(f"refusing non-loopback or non-WebSocket target {args.url!r}")
    port = url.port or (443 if url.scheme == "wss" else 80)
    extra = {"host": url.hostname, "port": port}
    if url.scheme == "wss":
        context = ssl.create_default_context(cafile=args.cafile) if args.cafile else ssl.create_default_context()
        if args.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        extra["ssl"] = context
    name = args.host_header or url.hostname
    netloc = f"[{name}]" if ":" in name else name
    uri = f"{url.scheme}://{netloc}:{port}{args.path}"
    return lambda: connect(uri, **common, **extra)


async def hello_of(ws):
    return json.loads(await ws.recv())


async def echo_mode(args, open_connection):
    result = {"connections": args.connections, "opened": 0, "open_at_once": 0, "echoed": 0, "echo_failures": 0,
              "pings": 0, "closed_normally": 0, "pids": collections.Counter(), "errors": collections.Counter(),
              "hello": None, "ping_pids_match": True}
    everyone_open = asyncio.Event()
    open_now = 0

    async def one(index):
        nonlocal open_now
        try:
            async with open_connection() as ws:
                hello = await hello_of(ws)
                result["opened"] += 1
                result["pids"][str(hello["pid"])] += 1
                result["hello"] = result["hello"] or hello
                open_now += 1
                result["open_at_once"] = max(result["open_at_once"], open_now)
                if open_now == args.connections:
                    everyone_open.set()
                await asyncio.wait_for(everyone_open.wait(), args.timeout)
                sent = [f"m-{index}-{n}-{uuid.uuid4().hex[:8]}" for n in range(args.messages)]
                for text in sent:
                    await ws.send(text)
                echoes, pings = [], 0
                while len(echoes) < len(sent) or pings < args.pings:
                    message = json.loads(await ws.recv())
                    if message["type"] == "echo":
                        echoes.append(message["data"])
                    elif message["type"] == "ping":
                        pings += 1
                        if message["pid"] != hello["pid"]:
                            result["ping_pids_match"] = False
                result["pings"] += pings
                result["echoed"] += sum(1 for a, b in zip(sent, echoes) if a == b)
                result["echo_failures"] += sum(1 for a, b in zip(sent, echoes) if a != b)
                open_now -= 1
            result["closed_normally"] += 1
        except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
            result["errors"][type(exc).__name__] += 1
            everyone_open.set()  # nobody waits for a socket that will not come

    await asyncio.gather(*(one(i) for i in range(args.connections)))
    if url_query := args.path.partition("?")[2]:
        result["query"] = url_query
    return result


async def hold_mode(args, open_connection):
    result = {"connections": args.connections, "opened": 0, "pids_before": [], "closes": collections.Counter(),
              "close_frames": 0, "no_close_frame": 0, "closed_by_server": 0, "errors": collections.Counter(),
              "reconnect": None, "close_wait_s": None}
    sockets = []
    for _ in range(args.connections):
        ws = await open_connection()
        hello = await hello_of(ws)
        sockets.append(ws)
        result["opened"] += 1
        result["pids_before"].append(hello["pid"])
    if args.ready_file:
        with open(args.ready_file, "w") as fh:
            fh.write(json.dumps(result["pids_before"]))
    started = time.monotonic()

    async def wait_closed(ws):
        try:
            async for _ in ws:
                pass  # nothing is sent until the server closes
        except ConnectionClosed:
            pass
        frame = ws.protocol.close_rcvd
        if frame is not None:
            result["close_frames"] += 1
            result["closes"][str(frame.code)] += 1
        else:
            result["no_close_frame"] += 1
            result["closes"]["none"] += 1
        if ws.protocol.close_rcvd_then_sent:
            result["closed_by_server"] += 1

    await asyncio.gather(*(wait_closed(ws) for ws in sockets))
    result["close_wait_s"] = round(time.monotonic() - started, 2)
    try:
        async with open_connection() as ws:
            hello = await hello_of(ws)
            token = uuid.uuid4().hex
            await ws.send(token)
            reply = json.loads(await ws.recv())
            result["reconnect"] = {"pid": hello["pid"], "echo_ok": reply.get("data") == token}
    except Exception as exc:  # noqa: BLE001
        result["errors"]["reconnect " + type(exc).__name__] += 1
    return result


async def handshake_mode(args, open_connection):
    try:
        async with open_connection() as ws:
            hello = await hello_of(ws)
            return {"accepted": True, "status": 101, "hello": hello}
    except InvalidStatus as exc:
        return {"accepted": False, "status": exc.response.status_code}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["echo", "hold", "handshake"])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", help="unix socket path")
    where.add_argument("--url", help="ws(s)://localhost[:port] (loopback only)")
    parser.add_argument("--path", default="/ws/echo/")
    parser.add_argument("--origin")
    parser.add_argument("--host-header", help="name in the URI: Host header and TLS server name")
    parser.add_argument("--cafile", help="CA bundle to verify the server's certificate with")
    parser.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--pings", type=int, default=0, help="server pushes expected per socket (?pings= in --path)")
    parser.add_argument("--ready-file")
    parser.add_argument("--open-timeout", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=120.0, help="hard limit in seconds (max 600)")
    args = parser.parse_args()
    if args.connections > 500:
        raise SystemExit("at most 500 connections")
    open_connection = target(args)
    run = {"echo": echo_mode, "hold": hold_mode, "handshake": handshake_mode}[args.mode]
    try:
        result = asyncio.run(asyncio.wait_for(run(args, open_connection), min(args.timeout, 600.0)))
    except (TimeoutError, asyncio.TimeoutError):
        result = {"error": "timeout", "timeout_s": args.timeout}
    print(json.dumps(result))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
