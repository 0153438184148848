#!/usr/bin/env python3
"""Test-only WebSocket upstream (stdlib only; runs inside a test container, on a unix socket).

Answers a WebSocket upgrade with 101 and reports the request headers it received as X-Echo-*
response headers, so a test can see what the proxy passed on; then echoes every data frame
back until the client closes. A request without an upgrade gets 426 with the same X-Echo-*
headers. Bounded: exits after --lifetime seconds (at most 600); each connection times out.
"""
import argparse
import base64
import hashlib
import os
import socketserver
import struct
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ECHOED = ("host", "upgrade", "connection", "x-forwarded-proto", "x-forwarded-for", "x-real-ip",
          # forwarding headers a client may send: nginx must clear them
          "x-forwarded-host", "forwarded", "x-forwarded-port", "x-forwarded-ssl", "x-forwarded-protocol")


def read_exact(stream, n):
    data = stream.read(n)
    if len(data) != n:
        raise EOFError
    return data


def read_frame(stream):
    first, second = read_exact(stream, 2)
    opcode = first & 0x0F
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", read_exact(stream, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", read_exact(stream, 8))[0]
    if length > 1 << 20:
        raise EOFError
    mask = read_exact(stream, 4) if second & 0x80 else b"\0\0\0\0"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(read_exact(stream, length)))
    return opcode, payload


def frame(opcode, payload):
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([len(payload)])
    elif len(payload) < 1 << 16:
        head += bytes([126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([127]) + struct.pack("!Q", len(payload))
    return head + payload


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.request.settimeout(30)
        request_line = self.rfile.readline(8192).decode("latin-1").strip()
        headers = {}
        while True:
            line = self.rfile.readline(8192).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        echo = [f"X-Echo-Request-Line: {request_line}"]
        echo += [f"X-Echo-{name}: {headers.get(name, '')}" for name in ECHOED]
        if headers.get("upgrade", "").lower() != "websocket" or "sec-websocket-key" not in headers:
            body = b"a WebSocket upgrade was expected\n"
            head = ["HTTP/1.1 426 Upgrade Required", "Content-Type: text/plain", f"Content-Length: {len(body)}",
                    "Connection: close", *echo]
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            return
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
        head = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
                f"Sec-WebSocket-Accept: {accept}", *echo]
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        self.wfile.flush()
        try:
            while True:
                opcode, payload = read_frame(self.rfile)
                if opcode == 0x8:
                    self.wfile.write(frame(0x8, payload[:2]))
                    return
                if opcode == 0x9:
                    self.wfile.write(frame(0xA, payload))
                elif opcode in (0x1, 0x2):
                    self.wfile.write(frame(opcode, payload))
                self.wfile.flush()
        except (EOFError, OSError):
            return


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--unix", required=True, help="unix socket path")
    parser.add_argument("--mode", default="0666", help="socket mode (the proxy's user must connect)")
    parser.add_argument("--lifetime", type=float, default=300.0, help="seconds before exiting (max 600)")
    args = parser.parse_args()
    if os.path.exists(args.unix):
        os.unlink(args.unix)
    server = Server(args.unix, Handler)
    os.chmod(args.unix, int(args.mode, 8))
    threading.Timer(min(args.lifetime, 600.0), server.shutdown).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if os.path.exists(args.unix):
            os.unlink(args.unix)


if __name__ == "__main__":
    main()
