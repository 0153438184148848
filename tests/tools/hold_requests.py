#!/usr/bin/env python3
"""Hold N requests open through a TLS server on loopback: each sends its headers with a
Content-Length and no body, so the server counts it as a request in progress until its body
timeout. Then one more request is sent normally. Prints JSON: the status of the extra request
and the statuses the held requests ended with. Bounded: at most 300 connections, 120 s."""
import argparse
import json
import socket
import ssl
import time

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def status_of(sock):
    """The status code the server answered, "closed" when it closed or reset the connection without
    one, "open" when nothing happened before the socket's timeout."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return "open"
    except OSError:
        pass
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    return parts[1] if len(parts) > 1 and parts[1].isdigit() else "closed"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--name", default="localhost")
    parser.add_argument("--path", default="/")
    parser.add_argument("--extra-path", help="path of the extra request (default: --path)")
    parser.add_argument("--held", type=int, required=True)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the held requests' end")
    args = parser.parse_args()
    if args.address not in LOOPBACK or not 0 < args.held <= 300 or not 0 < args.wait <= 120:
        raise SystemExit("loopback only, at most 300 held requests and 120 s")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    head = (f"POST {args.path} HTTP/1.1\r\nHost: {args.name}\r\nContent-Type: text/plain\r\n"
            "Content-Length: 100\r\n\r\n").encode()
    held = []
    for _ in range(args.held):
        sock = ctx.wrap_socket(socket.create_connection((args.address, args.port), timeout=10),
                               server_hostname=args.name)
        sock.sendall(head)
        held.append(sock)
    time.sleep(1)
    extra = ctx.wrap_socket(socket.create_connection((args.address, args.port), timeout=10), server_hostname=args.name)
    extra.sendall(f"GET {args.extra_path or args.path} HTTP/1.1\r\nHost: {args.name}\r\nConnection: close\r\n\r\n".encode())
    extra_status = status_of(extra)
    extra.close()
    ends = {}
    deadline = time.monotonic() + args.wait
    for sock in held:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        status = status_of(sock)
        ends[status] = ends.get(status, 0) + 1
        sock.close()
    print(json.dumps({"extra": extra_status, "held_ended": ends}))


if __name__ == "__main__":
    main()
