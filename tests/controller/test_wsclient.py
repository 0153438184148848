"""The tests' WebSocket client (tests/tools/wsclient.py): its frame codec and handshake against the
examples of RFC 6455, then every mode end to end over unix sockets in a temporary directory: the
probe against the tests' own upstream (tests/tools/ws_echo.py, an independent implementation),
echo/hold/handshake against a small server speaking the demo's /ws/echo/ protocol."""
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tests/tools"
spec = importlib.util.spec_from_file_location("wsclient", TOOLS / "wsclient.py")
ws = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ws)


# --- frames: the examples of RFC 6455 section 5.7 ----------------------------------------------

HELLO_UNMASKED = bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
HELLO_MASKED = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])


def test_rfc_examples_encode():
    assert ws.encode_frame(ws.OP_TEXT, b"Hello") == HELLO_UNMASKED
    assert ws.encode_frame(ws.OP_TEXT, b"Hello", bytes([0x37, 0xFA, 0x21, 0x3D])) == HELLO_MASKED
    assert ws.encode_frame(ws.OP_TEXT, b"Hel", fin=False) == bytes([0x01, 0x03, 0x48, 0x65, 0x6C])
    assert ws.encode_frame(ws.OP_CONT, b"lo") == bytes([0x80, 0x02, 0x6C, 0x6F])
    assert ws.encode_frame(ws.OP_PING, b"Hello") == bytes([0x89, 0x05]) + b"Hello"
    assert ws.encode_frame(ws.OP_BINARY, bytes(256))[:4] == bytes([0x82, 0x7E, 0x01, 0x00])
    assert ws.encode_frame(ws.OP_BINARY, bytes(65536))[:10] == bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])


def test_rfc_examples_decode():
    assert ws.decode_frame(HELLO_UNMASKED) == (ws.Frame(True, ws.OP_TEXT, b"Hello", False), 7)
    assert ws.decode_frame(HELLO_MASKED) == (ws.Frame(True, ws.OP_TEXT, b"Hello", True), 11)
    frame, used = ws.decode_frame(bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]) + bytes(65536) + b"next")
    assert frame.opcode == ws.OP_BINARY and len(frame.payload) == 65536 and used == 65546


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200000])
def test_round_trip_every_length_form(size):
    payload = os.urandom(size)
    data = ws.encode_frame(ws.OP_BINARY, payload, os.urandom(4))
    assert ws.decode_frame(data) == (ws.Frame(True, ws.OP_BINARY, payload, True), len(data))
    # Byte by byte, a frame is incomplete (None) until its last byte arrived.
    if size <= 126:
        assert all(ws.decode_frame(data[:n]) is None for n in range(len(data)))


def test_masking_is_an_involution_and_masks_on_the_wire():
    key, payload = b"\x01\x02\x03\x04", b"over nginx" * 3
    assert ws.apply_mask(ws.apply_mask(payload, key), key) == payload
    assert ws.encode_frame(ws.OP_TEXT, payload, key)[6:] == ws.apply_mask(payload, key) != payload


@pytest.mark.parametrize("data, message", [
    (bytes([0xC1, 0x00]), "reserved bits"),
    (bytes([0x83, 0x00]), "unknown opcode"),
    (bytes([0x89, 0x7E, 0x00, 0x7E]), "control frame"),
    (bytes([0x09, 0x00]), "control frame"),
    (bytes([0x82, 0x7E, 0x00, 0x05]), "shortest form"),
    (bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]), "shortest form"),
    (bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]), "shortest form"),
    (bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 0x20, 0, 0]), "limit"),
], ids=["rsv", "opcode", "long-ping", "fragmented-ping", "long-126", "long-127", "2**63", "too-big"])
def test_decode_refuses_what_rfc_6455_refuses(data, message):
    with pytest.raises(ws.ProtocolError, match=message):
        ws.decode_frame(data)


def test_encode_refuses_long_control_frames_and_bad_keys():
    with pytest.raises(ValueError):
        ws.encode_frame(ws.OP_CLOSE, bytes(126))
    with pytest.raises(ValueError):
        ws.encode_frame(ws.OP_TEXT, b"x", b"abc")


def test_close_payload():
    assert ws.parse_close(ws.close_payload(1012, "restart")) == (1012, "restart")
    assert ws.parse_close(b"") == (None, "")
    with pytest.raises(ws.ProtocolError):
        ws.parse_close(b"\x03")


# --- handshake ---------------------------------------------------------------------------------

def test_accept_value_of_the_rfc_example():
    assert ws.accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_request_head():
    head = ws.build_request("/ws/echo/?pings=2", "localhost:8001", "k==", "https://localhost", ["X-A: 1"])
    assert head == (b"GET /ws/echo/?pings=2 HTTP/1.1\r\nHost: localhost:8001\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: k==\r\nSec-WebSocket-Version: 13\r\n"
                    b"Origin: https://localhost\r\nX-A: 1\r\n\r\n")
    assert ws.build_request("/", "localhost") == b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.mark.parametrize("kwargs", [
    {"origin": "https://a\r\nX-Injected: 1"}, {"headers": ["X-A: 1\r\nX-B: 2"]}, {"headers": ["no colon"]},
    {"path": "/a b"}, {"path": "ws/"}, {"host": "a\nb"},
], ids=["origin-crlf", "header-crlf", "header-form", "path-space", "path-relative", "host-lf"])
def test_request_refuses_injection(kwargs):
    args = {"path": "/ws/", "host": "localhost", "key": "k==", **kwargs}
    with pytest.raises(ValueError):
        ws.build_request(**args)


def test_response_head_and_upgrade_check():
    key = ws.new_key()
    head = (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
            f"Sec-WebSocket-Accept: {ws.accept_value(key)}").encode()
    status, headers = ws.parse_response_head(head)
    assert status == 101 and headers["upgrade"] == "WebSocket"
    assert ws.upgrade_ok(status, headers, key)
    assert not ws.upgrade_ok(status, headers, ws.new_key())
    assert not ws.upgrade_ok(status, {**headers, "upgrade": "h2c"}, key)
    assert not ws.upgrade_ok(403, headers, key)
    with pytest.raises(ws.ProtocolError):
        ws.parse_response_head(b"SSH-2.0-OpenSSH_9.2")


@pytest.mark.parametrize("url", ["ws://example.com/", "wss://10.0.0.1/", "http://127.0.0.1/", "ws://127.0.0.2/",
                                 "ws://localhost.evil.example/"])
def test_target_guard_refuses_anything_but_loopback(url):
    with pytest.raises(SystemExit, match="refusing"):
        ws.Target(url=url)


def test_target_host_header_and_path():
    assert ws.Target(url="wss://127.0.0.1/ws/echo/", insecure=True).host == "localhost"
    plain = ws.Target(url="ws://127.0.0.1:8001", host_header="solo.test", path="/ws/x/")
    assert (plain.address, plain.port, plain.host, plain.path) == ("127.0.0.1", 8001, "solo.test:8001", "/ws/x/")
    assert ws.Target(url="ws://[::1]:80/a?b=1", host_header="::1").host == "[::1]"
    assert ws.Target(url="ws://[::1]:80/a?b=1").path == "/a?b=1"
    assert ws.Target(unix="/run/x.sock").path == "/ws/echo/"


def test_bounds():
    for argv in (["--connections", "501"], ["--connections", "0"], ["--messages", "1001"]):
        with pytest.raises(SystemExit):
            ws.parse_args(["echo", "--unix", "/x", *argv])
    assert ws.parse_args(["echo", "--unix", "/x", "--timeout", "5000"]).timeout == ws.MAX_TIMEOUT


# --- end to end, unix sockets in a temporary directory -----------------------------------------

def run_client(*argv, timeout=60):
    result = subprocess.run([sys.executable, str(TOOLS / "wsclient.py"), *argv], capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.stdout.startswith("{"), (result.returncode, result.stderr[-2000:])
    return json.loads(result.stdout)


def wait_for_socket(path, proc):
    deadline = time.monotonic() + 20
    while not os.path.exists(path):
        assert proc.poll() is None and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)


@pytest.fixture(name="ws_echo")
def fixture_ws_echo(tmp_path):
    sock = str(tmp_path / "echo.sock")
    proc = subprocess.Popen([sys.executable, str(TOOLS / "ws_echo.py"), "--unix", sock, "--lifetime", "60"])
    try:
        wait_for_socket(sock, proc)
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)


def test_probe_against_ws_echo(ws_echo):
    result = run_client("probe", "--unix", ws_echo, "--path", "/ws/chat/", "--message", "ping-1",
                        "--header", "X-Forwarded-For: 203.0.113.9", "--host-header", "site.test")
    assert result["status"] == 101 and result["accept_ok"] is True, result
    assert result["echo"] == "ping-1" and result["echo_opcode"] == 1 and result["closed"] == 1000, result
    seen = result["headers"]
    assert seen["x-echo-request-line"] == "GET /ws/chat/ HTTP/1.1" and seen["x-echo-host"] == "site.test"
    assert seen["x-echo-x-forwarded-for"] == "203.0.113.9" and seen["x-echo-upgrade"] == "websocket"


def test_probe_long_message_against_ws_echo(ws_echo):
    message = "x" * 70000  # the 8-byte length form both ways
    result = run_client("probe", "--unix", ws_echo, "--message", message)
    assert result["echo"] == message, {k: v for k, v in result.items() if k != "echo"}


def test_probe_without_upgrade_against_ws_echo(ws_echo):
    result = run_client("probe", "--unix", ws_echo, "--no-upgrade")
    assert result["status"] == 426 and result["accept_ok"] is None and result["echo"] is None, result
    assert result["headers"]["x-echo-upgrade"] == "" and result["headers"]["connection"] == "close"


class DemoServer:
    """The demo's /ws/echo/ protocol on a unix socket (server side of the same codec): a JSON hello,
    {"type": "echo"} per text message, ?pings=N pushes; a foreign Origin gets 403; every open socket
    is closed with 1012 by `restart()`, as a reloading worker does."""

    def __init__(self, path):
        self.path, self.pid, self.pongs, self.live = path, 4242, 0, set()

    def restart(self):
        """Close every socket open now with 1012; later ones stay."""
        for event in self.live:
            event.set()

    async def handle(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        target = lines[0].split()[1]
        if headers.get("origin", "https://localhost") != "https://localhost":
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            writer.close()
            return
        accept = ws.accept_value(headers["sec-websocket-key"])
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())

        def send(data, opcode=ws.OP_TEXT):
            writer.write(ws.encode_frame(opcode, json.dumps(data).encode() if opcode == ws.OP_TEXT else data))

        send({"type": "hello", "pid": self.pid})  # in the same segment as the 101, as Uvicorn may
        pings = int(target.partition("pings=")[2] or 0)
        for n in range(pings):
            send({"type": "ping", "n": n, "pid": self.pid})
        restarting = asyncio.Event()
        self.live.add(restarting)
        restart = asyncio.ensure_future(restarting.wait())
        reading = None
        try:
            buffer = bytearray()
            while True:
                reading = asyncio.ensure_future(reader.read(65536))
                done, _ = await asyncio.wait({reading, restart}, return_when=asyncio.FIRST_COMPLETED)
                if restart in done:
                    send(ws.close_payload(1012), ws.OP_CLOSE)
                    await writer.drain()
                    return
                chunk = reading.result()
                if not chunk:
                    return
                buffer += chunk
                while (decoded := ws.decode_frame(buffer)) is not None:
                    frame, used = decoded
                    del buffer[:used]
                    if frame.opcode == ws.OP_CLOSE:
                        send(frame.payload[:2], ws.OP_CLOSE)
                        await writer.drain()
                        return
                    if frame.opcode == ws.OP_PONG:
                        self.pongs += 1
                    elif frame.opcode == ws.OP_TEXT:
                        send(b"are you there", ws.OP_PING)  # the client must answer before it reads on
                        send({"type": "echo", "data": frame.payload.decode(), "pid": self.pid})
                await writer.drain()
        finally:
            self.live.discard(restarting)
            restart.cancel()
            if reading is not None:
                reading.cancel()
            writer.close()


def run_against_demo_server(tmp_path, client):
    """Serve DemoServer in this process while `client(sock, server)` (a coroutine) runs."""
    sock = str(tmp_path / "demo.sock")

    async def main():
        server = DemoServer(sock)
        listener = await asyncio.start_unix_server(server.handle, sock)
        try:
            return await asyncio.wait_for(client(sock, server), 60)
        finally:
            listener.close()

    return asyncio.run(main())


async def client_process(*argv):
    proc = await asyncio.create_subprocess_exec(sys.executable, str(TOOLS / "wsclient.py"), *argv,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert out.startswith(b"{"), err.decode()[-2000:]
    return json.loads(out)


def test_echo_mode_holds_all_open_then_echoes(tmp_path):
    async def client(sock, server):
        result = await client_process("echo", "--unix", sock, "--path", "/ws/echo/?pings=2", "--connections", "20",
                                      "--messages", "3", "--pings", "2")
        return result, server.pongs

    result, pongs = run_against_demo_server(tmp_path, client)
    assert pongs == 60
    assert result["errors"] == {}, result
    assert result["opened"] == result["open_at_once"] == result["closed_normally"] == 20, result
    assert result["echoed"] == 60 and result["echo_failures"] == 0 and result["pings"] == 40, result
    assert result["pids"] == {"4242": 20} and result["query"] == "pings=2", result


def test_handshake_mode(tmp_path):
    async def client(sock, _server):
        return (await client_process("handshake", "--unix", sock, "--origin", "https://localhost"),
                await client_process("handshake", "--unix", sock, "--origin", "https://localhost:8443"))

    accepted, refused = run_against_demo_server(tmp_path, client)
    assert accepted == {"accepted": True, "status": 101, "hello": {"type": "hello", "pid": 4242}}
    assert refused == {"accepted": False, "status": 403}


def test_hold_mode_records_the_servers_close_codes(tmp_path):
    ready = tmp_path / "ready"

    async def client(sock, server):
        proc = asyncio.ensure_future(client_process("hold", "--unix", sock, "--connections", "5",
                                                    "--ready-file", str(ready)))
        while not ready.exists():
            await asyncio.sleep(0.05)
        server.restart()
        return await proc

    result = run_against_demo_server(tmp_path, client)
    assert json.loads(ready.read_text()) == [4242] * 5
    assert result["closes"] == {"1012": 5} and result["closed_by_server"] == 5 and result["no_close_frame"] == 0, result
    assert result["reconnect"] == {"pid": 4242, "echo_ok": True} and result["errors"] == {}, result


def test_hold_mode_counts_a_reset_as_no_close_frame(tmp_path):
    sock = str(tmp_path / "reset.sock")
    ready = tmp_path / "ready"

    async def main():
        conns = []

        async def handle(reader, writer):
            head = await reader.readuntil(b"\r\n\r\n")
            key = next(line.split(":", 1)[1].strip() for line in head.decode().split("\r\n")
                       if line.lower().startswith("sec-websocket-key"))
            writer.write(f"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                         f"Sec-WebSocket-Accept: {ws.accept_value(key)}\r\n\r\n".encode()
                         + ws.encode_frame(ws.OP_TEXT, b'{"pid": 7}'))
            conns.append(writer)

        listener = await asyncio.start_unix_server(handle, sock)
        proc = asyncio.ensure_future(client_process("hold", "--unix", sock, "--connections", "2",
                                                    "--ready-file", str(ready), "--open-timeout", "2"))
        while not ready.exists():
            await asyncio.sleep(0.05)
        listener.close()
        for writer in conns:
            writer.transport.abort()
        return await asyncio.wait_for(proc, 60)

    result = asyncio.run(main())
    assert result["closes"] == {"none": 2} and result["no_close_frame"] == 2 and result["closed_by_server"] == 0
    assert result["reconnect"] is None and sum(result["errors"].values()) == 1, result


def test_timeout_bounds_the_run(tmp_path):
    sock = str(tmp_path / "silent.sock")

    async def main():
        async def handle(reader, _writer):
            await reader.read(65536)  # never answers the handshake
            await asyncio.sleep(30)

        listener = await asyncio.start_unix_server(handle, sock)
        try:
            return await client_process("handshake", "--unix", sock, "--timeout", "1")
        finally:
            listener.close()

    started = time.monotonic()
    assert asyncio.run(main()) == {"error": "timeout", "timeout_s": 1.0}
    assert time.monotonic() - started < 20


def test_runs_without_third_party_packages():
    """Only the standard library: the client imports under python3 -I -S (no site-packages)."""
    code = f"import runpy; runpy.run_path({str(TOOLS / 'wsclient.py')!r})"
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False,
                            timeout=30)
    assert "ModuleNotFoundError" not in result.stderr, result.stderr
