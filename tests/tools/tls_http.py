#!/usr/bin/env python3
"""A minimal HTTPS server on loopback for upstream-TLS tests: answers every GET with 200 and a
body naming the certificate it serves (and the client certificate's subject, if one was sent).
Bounded: exits after --lifetime seconds (at most 300)."""
import argparse
import http.server
import ssl
import threading


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--label", default="tls-upstream")
    parser.add_argument("--lifetime", type=float, default=120.0)
    args = parser.parse_args()
    if not 0 < args.lifetime <= 300:
        raise SystemExit("--lifetime: at most 300 s")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's naming
            body = f"{args.label}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Timer(args.lifetime, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
