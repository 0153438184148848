#!/usr/bin/env python3
"""The tests' one WebSocket client: standard library only (runs with any python3 >= 3.11: an
nginx-only web host, a release's virtualenv), one handshake and one frame codec for every mode.

Targets are local only: a unix socket (--unix), or --url ws(s)://localhost|127.0.0.1|[::1][:port][/path].
The name the server sees (Host header, TLS server name) is --host-header (default localhost); the
connection itself always goes to the unix socket or the loopback address. wss:// verifies the
certificate against --cafile, or the system's CAs; --insecure skips the verification.
Every mode is bounded (--timeout seconds in all, at most 600; at most 500 connections, 1000
messages each, frames of 1 MiB) and prints one JSON object.

  echo       open --connections sockets, hold them all open at once (each has had the demo's
             hello), then send --messages text messages on each and check every echo (plus
             --pings server pushes per socket); close them with a close handshake.
  hold       open --connections sockets, write their workers' pids to --ready-file, and wait until
             the server closes them (a reload): record each close (the code of the server's close
             frame, or "none" when the connection ended without one = reset); then reconnect once
             and record which worker answered and whether it echoes.
  handshake  one opening handshake with --origin / --host-header: {"accepted": true, "status": 101,
             "hello": ...} or {"accepted": false, "status": <HTTP status>}.
  probe      one request (the upgrade, or a plain GET with --no-upgrade; extra --header lines), then
             one message: {"status", "headers" (lower-case names), "accept_ok", "first", "echo",
             "echo_opcode"}. "echo" is the first message back (text); with --json the server speaks
             the demo's protocol: "first" is its hello and "echo" the first {"type": "echo"} object.

The demo's protocol (/ws/echo/ of the bundled demo): a JSON hello on accept, {"type": "echo",
"data": <text>, "pid": ...} for every text message, {"type": "ping"} pushes with ?pings=N.
"""
import argparse
import asyncio
import base64
import collections
import hashlib
import json
import os
import ssl
import struct
import sys
import time
import urllib.parse
import uuid

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OPCODES = {OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG}
MAX_PAYLOAD = 1 << 20  # per frame and per message
MAX_HEAD = 1 << 16  # HTTP response head
MAX_CONNECTIONS = 500
MAX_MESSAGES = 1000
MAX_TIMEOUT = 600.0
CLOSE_WAIT = 10.0  # seconds to wait for the answer to our close frame

Frame = collections.namedtuple("Frame", "fin opcode payload masked")


class ProtocolError(Exception):
    """The peer broke RFC 6455 (or a limit of this client)."""


class HandshakeRefused(Exception):
    def __init__(self, status):
        super().__init__(f"handshake answered with HTTP {status}")
        self.status = status


class ConnectionClosed(Exception):
    """The connection ended: `code` of the peer's close frame, None when it sent none."""

    def __init__(self, code):
        super().__init__(f"closed ({code})")
        self.code = code


# --- frames (RFC 6455 section 5) ---------------------------------------------------------------

def apply_mask(data, key):
    """XOR data with the 4-byte masking key (masking and unmasking are the same operation)."""
    if len(key) != 4:
        raise ValueError("a masking key has 4 bytes")
    n = len(data)
    if n == 0:
        return b""
    stream = (bytes(key) * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def encode_frame(opcode, payload, mask_key=None, fin=True):
    """One frame; masked with mask_key (4 bytes) as a client must, unmasked when it is None."""
    payload = bytes(payload)
    if opcode not in OPCODES:
        raise ValueError(f"unknown opcode {opcode}")
    if opcode >= OP_CLOSE and (len(payload) > 125 or not fin):
        raise ValueError("a control frame carries at most 125 bytes and is never fragmented")
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask_key is not None else 0
    if len(payload) < 126:
        head.append(mask_bit | len(payload))
    elif len(payload) < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", len(payload))
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", len(payload))
    if mask_key is not None:
        head += bytes(mask_key)
        payload = apply_mask(payload, mask_key)
    return bytes(head) + payload


def decode_frame(buffer, max_payload=MAX_PAYLOAD):
    """The frame at the start of buffer as (Frame, bytes it took), or None while incomplete.

    Refuses (ProtocolError) reserved bits (no extension is ever negotiated), unknown opcodes,
    long or fragmented control frames, lengths in a longer form than needed, and payloads
    above max_payload (before reading them)."""
    if len(buffer) < 2:
        return None
    first, second = buffer[0], buffer[1]
    if first & 0x70:
        raise ProtocolError("reserved bits set")
    fin, opcode = bool(first & 0x80), first & 0x0F
    masked, length = bool(second & 0x80), second & 0x7F
    if opcode not in OPCODES:
        raise ProtocolError(f"unknown opcode {opcode:#x}")
    pos = 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length = struct.unpack_from("!H", buffer, 2)[0]
        pos = 4
        if length < 126:
            raise ProtocolError("length not in its shortest form")
    elif length == 127:
        if len(buffer) < 10:
            return None
        length = struct.unpack_from("!Q", buffer, 2)[0]
        pos = 10
        if length < 1 << 16 or length >> 63:
            raise ProtocolError("length not in its shortest form, or above 2**63")
    if opcode >= OP_CLOSE and (length > 125 or not fin):
        raise ProtocolError("control frame longer than 125 bytes or fragmented")
    if length > max_payload:
        raise ProtocolError(f"frame of {length} bytes (limit {max_payload})")
    key = None
    if masked:
        if len(buffer) < pos + 4:
            return None
        key = bytes(buffer[pos:pos + 4])
        pos += 4
    if len(buffer) < pos + length:
        return None
    payload = bytes(buffer[pos:pos + length])
    if key is not None:
        payload = apply_mask(payload, key)
    return Frame(fin, opcode, payload, masked), pos + length


def close_payload(code, reason=""):
    return struct.pack("!H", code) + reason.encode()


def parse_close(payload):
    """(code, reason) of a close frame's payload; (None, "") when it has none."""
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise ProtocolError("close frame with a 1-byte payload")
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


# --- opening handshake (RFC 6455 section 4) ----------------------------------------------------

def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_value(key):
    """The Sec-WebSocket-Accept a server must answer to Sec-WebSocket-Key `key`."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def build_request(path, host, key=None, origin=None, headers=()):
    """The request head: a WebSocket upgrade when key is given, else a plain GET.

    headers: extra "Name: value" lines. Nothing may carry CR, LF or NUL (no header injection)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    if key is not None:
        lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    for line in headers:
        name, sep, _ = line.partition(":")
        if not sep or not name.strip() or name != name.strip():
            raise ValueError(f"not a 'Name: value' header: {line!r}")
        lines.append(line)
    if not path.startswith("/") or " " in path:
        raise ValueError(f"not a request path: {path!r}")
    for line in lines:
        if any(c in line for c in "\r\n\0"):
            raise ValueError(f"CR, LF or NUL in the request: {line!r}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_response_head(head):
    """(status, {lower-case name: value}) of a response head (bytes, without the blank line)."""
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def upgrade_ok(status, headers, key):
    """Whether a response completes the upgrade requested with key (RFC 6455 4.2.2, 4.1)."""
    return (status == 101 and headers.get("upgrade", "").lower() == "websocket"
            and "upgrade" in [t.strip().lower() for t in headers.get("connection", "").split(",")]
            and headers.get("sec-websocket-accept") == accept_value(key))


# --- targets -----------------------------------------------------------------------------------

class Target:
    """Where to connect and what to call the server: one per run, shared by its connections."""

    def __init__(self, unix=None, url=None, host_header=None, path=None, cafile=None, insecure=False):
        self.unix, self.tls = unix, None
        name = host_header or "localhost"
        if unix:
            self.address, self.port, default_port, url_path = None, None, None, ""
        else:
            parsed = urllib.parse.urlsplit(url or "")
            if parsed.scheme not in ("ws", "wss") or parsed.hostname not in LOOPBACK:
                raise SystemExit(f"refusing non-loopback or non-WebSocket target {url!r}")
            default_port = 443 if parsed.scheme == "wss" else 80
            self.address, self.port = parsed.hostname, parsed.port or default_port
            url_path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
            if parsed.scheme == "wss":
                self.tls = ssl.create_default_context(cafile=cafile)
                if insecure:
                    self.tls.check_hostname = False
                    self.tls.verify_mode = ssl.CERT_NONE
                self.tls.set_alpn_protocols(["http/1.1"])
        self.server_name = name
        bracketed = f"[{name}]" if ":" in name else name
        self.host = bracketed if self.port in (None, default_port) else f"{bracketed}:{self.port}"
        self.path = path or url_path or "/ws/echo/"

    async def connect(self, timeout):
        if self.unix:
            opening = asyncio.open_unix_connection(self.unix)
        else:
            opening = asyncio.open_connection(self.address, self.port, ssl=self.tls,
                                              server_hostname=self.server_name if self.tls else None)
        reader, writer = await asyncio.wait_for(opening, timeout)
        return Connection(reader, writer)


class Connection:
    """One client connection: the handshake, then messages (pings answered, fragments joined)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.buffer = bytearray()
        self.close_sent = False
        self.close_received = None  # the peer's close code once its close frame arrived

    async def _fill(self):
        try:
            chunk = await self.reader.read(65536)
        except OSError:  # reset, TLS error: the connection ended without a close frame
            chunk = b""
        if not chunk:
            raise ConnectionClosed(self.close_received)
        self.buffer += chunk

    async def request(self, path, host, origin=None, headers=(), upgrade=True):
        """Send the request head; returns (status, headers, accept_ok) of the response head.

        accept_ok: None unless the status is 101, then whether the upgrade is complete."""
        key = new_key() if upgrade else None
        self.writer.write(build_request(path, host, key, origin, headers))
        await self.writer.drain()
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > MAX_HEAD:
                raise ProtocolError("response head above 64 KiB")
            await self._fill()
        head = bytes(self.buffer[:end])
        del self.buffer[:end + 4]  # what follows (a first frame) stays for recv
        status, response_headers = parse_response_head(head)
        accept_ok = upgrade_ok(status, response_headers, key) if status == 101 and key else None
        return status, response_headers, accept_ok

    async def handshake(self, target, origin=None, headers=()):
        status, _, accept_ok = await self.request(target.path, target.host, origin, headers)
        if status != 101:
            raise HandshakeRefused(status)
        if not accept_ok:
            raise ProtocolError("101 without a valid Upgrade/Connection/Sec-WebSocket-Accept")

    async def send(self, opcode, payload):
        self.writer.write(encode_frame(opcode, payload, os.urandom(4)))
        await self.writer.drain()

    async def send_text(self, text):
        await self.send(OP_TEXT, text.encode())

    async def recv_frame(self):
        while True:
            decoded = decode_frame(self.buffer)
            if decoded is not None:
                frame, used = decoded
                del self.buffer[:used]
                if frame.masked:
                    raise ProtocolError("masked frame from the server")
                return frame
            await self._fill()

    async def recv(self):
        """The next data message as (opcode, payload). Answers pings; on the peer's close frame
        answers it (unless ours went first) and raises ConnectionClosed(code)."""
        opcode, parts, size = None, [], 0
        while True:
            frame = await self.recv_frame()
            if frame.opcode == OP_CLOSE:
                code, _ = parse_close(frame.payload)
                self.close_received = 1005 if code is None else code  # 1005: a close frame without a code
                if not self.close_sent:
                    self.close_sent = True
                    try:
                        await self.send(OP_CLOSE, frame.payload[:2])
                    except OSError:
                        pass
                raise ConnectionClosed(self.close_received)
            if frame.opcode == OP_PING:
                await self.send(OP_PONG, frame.payload)
                continue
            if frame.opcode == OP_PONG:
                continue
            if (frame.opcode == OP_CONT) != (opcode is not None):
                raise ProtocolError("continuation frame out of place")
            opcode = opcode if frame.opcode == OP_CONT else frame.opcode
            parts.append(frame.payload)
            size += len(frame.payload)
            if size > MAX_PAYLOAD:
                raise ProtocolError(f"message above {MAX_PAYLOAD} bytes")
            if frame.fin:
                return opcode, b"".join(parts)

    async def recv_json(self):
        opcode, payload = await self.recv()
        if opcode != OP_TEXT:
            raise ProtocolError("binary message where JSON was expected")
        return json.loads(payload)

    async def close(self, code=1000):
        """The closing handshake from our side: returns the code of the server's answer (None: none came)."""
        if not self.close_sent:
            self.close_sent = True
            try:
                await self.send(OP_CLOSE, close_payload(code))
            except OSError:
                pass
        try:
            await asyncio.wait_for(self._drain_until_closed(), CLOSE_WAIT)
        except (asyncio.TimeoutError, ConnectionClosed):
            pass
        await self.abort()
        return self.close_received

    async def _drain_until_closed(self):
        while self.close_received is None:
            frame = await self.recv_frame()
            if frame.opcode == OP_CLOSE:
                code, _ = parse_close(frame.payload)
                self.close_received = 1005 if code is None else code

    async def abort(self):
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (OSError, asyncio.TimeoutError):
            pass


async def open_ws(target, args):
    """A connection whose handshake completed (with --origin and --header)."""
    ws = await target.connect(args.open_timeout)
    try:
        await asyncio.wait_for(ws.handshake(target, args.origin, args.header), args.open_timeout)
    except BaseException:
        await ws.abort()
        raise
    return ws


# --- modes -------------------------------------------------------------------------------------

async def echo_mode(args, target):
    result = {"connections": args.connections, "opened": 0, "open_at_once": 0, "echoed": 0, "echo_failures": 0,
              "pings": 0, "closed_normally": 0, "pids": collections.Counter(), "errors": collections.Counter(),
              "hello": None, "ping_pids_match": True}
    everyone_open = asyncio.Event()
    open_now = 0

    async def one(index):
        nonlocal open_now
        ws = None
        try:
            ws = await open_ws(target, args)
            hello = await ws.recv_json()
            result["opened"] += 1
            result["pids"][str(hello["pid"])] += 1
            result["hello"] = result["hello"] or hello
            open_now += 1
            result["open_at_once"] = max(result["open_at_once"], open_now)
            if open_now == args.connections:
                everyone_open.set()
            await everyone_open.wait()
            sent = [f"m-{index}-{n}-{uuid.uuid4().hex[:8]}" for n in range(args.messages)]
            for text in sent:
                await ws.send_text(text)
            echoes, pings = [], 0
            while len(echoes) < len(sent) or pings < args.pings:
                message = await ws.recv_json()
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
            if await ws.close() is None:
                result["errors"]["close not answered"] += 1
            else:
                result["closed_normally"] += 1
        except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
            result["errors"][type(exc).__name__] += 1
            everyone_open.set()  # nobody waits for a socket that will not come
            if ws is not None:
                await ws.abort()

    await asyncio.gather(*(one(i) for i in range(args.connections)))
    if query := target.path.partition("?")[2]:
        result["query"] = query
    return result


async def hold_mode(args, target):
    result = {"connections": args.connections, "opened": 0, "pids_before": [], "closes": collections.Counter(),
              "close_frames": 0, "no_close_frame": 0, "closed_by_server": 0, "errors": collections.Counter(),
              "reconnect": None, "close_wait_s": None}
    sockets = []
    for _ in range(args.connections):
        ws = await open_ws(target, args)
        hello = await ws.recv_json()
        sockets.append(ws)
        result["opened"] += 1
        result["pids_before"].append(hello["pid"])
    if args.ready_file:
        with open(args.ready_file, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(result["pids_before"]))
    started = time.monotonic()

    async def wait_closed(ws):
        try:
            while True:
                await ws.recv()  # nothing is sent until the server closes
        except ConnectionClosed as closed:
            code = closed.code
        except (ProtocolError, ValueError) as exc:
            result["errors"][type(exc).__name__] += 1
            code = None
        if code is not None:
            result["close_frames"] += 1
            result["closes"][str(code)] += 1
            result["closed_by_server"] += 1  # the server's close frame came first; recv answered it
        else:
            result["no_close_frame"] += 1
            result["closes"]["none"] += 1
        await ws.abort()

    await asyncio.gather(*(wait_closed(ws) for ws in sockets))
    result["close_wait_s"] = round(time.monotonic() - started, 2)
    try:
        ws = await open_ws(target, args)
        try:
            hello = await ws.recv_json()
            token = uuid.uuid4().hex
            await ws.send_text(token)
            reply = await ws.recv_json()
            result["reconnect"] = {"pid": hello["pid"], "echo_ok": reply.get("data") == token}
        finally:
            await ws.close()
    except Exception as exc:  # noqa: BLE001
        result["errors"]["reconnect " + type(exc).__name__] += 1
    return result


async def handshake_mode(args, target):
    try:
        ws = await open_ws(target, args)
    except HandshakeRefused as refused:
        return {"accepted": False, "status": refused.status}
    try:
        hello = await ws.recv_json()
    finally:
        await ws.close()
    return {"accepted": True, "status": 101, "hello": hello}


def _text(payload):
    return payload.decode("utf-8", "replace")


async def probe_mode(args, target):
    ws = await target.connect(args.open_timeout)
    result = {"status": None, "headers": {}, "accept_ok": None, "first": None, "echo": None, "echo_opcode": None}
    try:
        status, headers, accept_ok = await asyncio.wait_for(
            ws.request(target.path, target.host, args.origin, args.header, upgrade=not args.no_upgrade),
            args.open_timeout)
        result.update(status=status, headers=headers, accept_ok=accept_ok)
        if not accept_ok:
            return result
        try:
            if args.json:
                result["first"] = await ws.recv_json()
            await ws.send_text(args.message)
            while True:
                opcode, payload = await ws.recv()
                if not args.json:
                    result["echo"], result["echo_opcode"] = _text(payload), opcode
                    break
                message = json.loads(payload) if opcode == OP_TEXT else None
                if isinstance(message, dict) and message.get("type") == "echo":
                    result["echo"], result["echo_opcode"] = message, opcode
                    break
        except ConnectionClosed as closed:
            result["closed"] = closed.code
            return result
        result["closed"] = await ws.close()
        return result
    finally:
        await ws.abort()


MODES = {"echo": echo_mode, "hold": hold_mode, "handshake": handshake_mode, "probe": probe_mode}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=sorted(MODES))
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", help="unix socket path")
    where.add_argument("--url", help="ws(s)://localhost|127.0.0.1|[::1][:port][/path] (loopback only)")
    parser.add_argument("--path", help="request path (default: the --url's, else /ws/echo/)")
    parser.add_argument("--origin")
    parser.add_argument("--host-header", help="the server's name: Host header and TLS server name (default localhost)")
    parser.add_argument("--header", action="append", default=[], help="extra 'Name: value' request header")
    parser.add_argument("--cafile", help="CA bundle to verify the server's certificate with")
    parser.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--pings", type=int, default=0, help="server pushes expected per socket (?pings= in --path)")
    parser.add_argument("--message", default="hello", help="probe: the text message to send")
    parser.add_argument("--json", action="store_true", help="probe: the server speaks the demo's JSON protocol")
    parser.add_argument("--no-upgrade", action="store_true", help="probe: a plain GET instead of the upgrade")
    parser.add_argument("--ready-file")
    parser.add_argument("--open-timeout", type=float, default=20.0, help="seconds to connect and complete a handshake")
    parser.add_argument("--timeout", type=float, default=120.0, help=f"hard limit in seconds (max {MAX_TIMEOUT:g})")
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        parser.error(f"--connections: 1 to {MAX_CONNECTIONS}")
    if not 0 <= args.messages <= MAX_MESSAGES or not 0 <= args.pings <= MAX_MESSAGES:
        parser.error(f"--messages, --pings: 0 to {MAX_MESSAGES}")
    if len(args.message.encode()) > MAX_PAYLOAD:
        parser.error(f"--message: at most {MAX_PAYLOAD} bytes")
    args.timeout = min(max(args.timeout, 0.1), MAX_TIMEOUT)
    return args


def main(argv=None):
    args = parse_args(argv)
    target = Target(args.unix, args.url, args.host_header, args.path, args.cafile, args.insecure)
    try:
        result = asyncio.run(asyncio.wait_for(MODES[args.mode](args, target), args.timeout))
    except (TimeoutError, asyncio.TimeoutError):
        result = {"error": "timeout", "timeout_s": args.timeout}
    print(json.dumps(result))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
