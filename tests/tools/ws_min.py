#!/usr/bin/env python3
"""Minimal WebSocket round trip with the standard library only (for hosts without `websockets`,
such as an nginx-only web host). Loopback targets only.

  ws_min.py wss://127.0.0.1/ws/echo/ --host-header localhost --message hi

Opens the handshake (TLS without verification for wss), reads the server's first text frame,
sends one masked text frame, reads frames until the echo arrives, sends a close frame, and
prints one JSON object: {"status": 101, "first": {...}, "echo": {...}}.
"""
import argparse
import base64
import json
import os
import socket
import ssl
import struct
import sys
import urllib.parse

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-frame")
        data += chunk
    return data


def read_frame(sock):
    b1, b2 = read_exact(sock, 2)
    opcode, length = b1 & 0x0F, b2 & 0x7F
    if length == 126:
        length = struct.unpack("!H", read_exact(sock, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", read_exact(sock, 8))[0]
    return opcode, read_exact(sock, length)


def send_frame(sock, opcode, payload):
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--host-header", default="localhost")
    parser.add_argument("--origin")
    parser.add_argument("--message", default="hello")
    parser.add_argument("--timeout", type=float, default=15)
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    if url.hostname not in LOOPBACK:
        sys.exit(f"refusing non-loopback target {url.hostname!r}")
    port = url.port or (443 if url.scheme == "wss" else 80)
    sock = socket.create_connection((url.hostname, port), timeout=args.timeout)
    if url.scheme == "wss":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        sock = ctx.wrap_socket(sock, server_hostname=args.host_header)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {url.path or '/'}{'?' + url.query if url.query else ''} HTTP/1.1", f"Host: {args.host_header}",
             "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if args.origin:
        lines.append(f"Origin: {args.origin}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    result = {"status": status}
    if status == 101:
        opcode, payload = read_frame(sock)
        result["first"] = json.loads(payload) if opcode == 1 else None
        send_frame(sock, 1, args.message.encode())
        while True:
            opcode, payload = read_frame(sock)
            if opcode == 1:
                message = json.loads(payload)
                if message.get("type") == "echo":
                    result["echo"] = message
                    break
            elif opcode == 8:
                result["closed"] = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                break
        send_frame(sock, 8, struct.pack("!H", 1000))
    sock.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
