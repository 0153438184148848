#!/usr/bin/env python3
"""Test-only WebSocket client (stdlib only; runs inside a test container against loopback).

Opens one TLS connection to 127.0.0.1 (SNI and Host from --name), sends a WebSocket upgrade
request for --path (HTTP/1.1, no ALPN), and prints one JSON line: the status, the response
headers, and, after a 101, the payload of the frame that came back for a masked text frame.
One connection, one message, --timeout seconds at most per read.
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import ssl
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="localhost")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--path", default="/ws/")
    parser.add_argument("--message", default="hello")
    parser.add_argument("--header", action="append", default=[], help="extra 'Name: value' header")
    parser.add_argument("--no-upgrade", action="store_true", help="send a plain GET instead")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    if len(args.message.encode()) > 125:
        raise SystemExit("--message: at most 125 bytes (one short frame)")

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout)
    sock = ctx.wrap_socket(raw, server_hostname=args.name)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {args.path} HTTP/1.1", f"Host: {args.name}"]
    if not args.no_upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += args.header
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
        if len(head) > 65536:
            break
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
    result = {"status": status, "headers": headers, "echo": None, "accept_ok": None}
    if status == 101:
        expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        result["accept_ok"] = headers.get("sec-websocket-accept") == expected
        payload = args.message.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        first, second = read_exact(sock, 2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", read_exact(sock, 2))[0]
        result["echo"] = read_exact(sock, length).decode(errors="replace")
        result["echo_opcode"] = first & 0x0F
        sock.sendall(bytes([0x88, 0x82]) + b"\0\0\0\0" + struct.pack("!H", 1000))
    sock.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
