"""WebSocket endpoints of the demo (plain ASGI; routed by demo.asgi).

/ws/echo/ accepts a connection and sends a JSON `hello` (worker pid, version, the scheme and
client address as the server saw them behind the proxy, open sockets in this worker). Then:
- every text message comes back as {"type": "echo", "data": <text>, "pid": <worker pid>},
  every binary message comes back unchanged;
- with ?pings=N&ping_ms=M the server also pushes N {"type": "ping"} messages, one every M ms,
  from its own task while it keeps echoing: the event loop serves both at once.

A handshake is refused (HTTP 403) when its Host is not in ALLOWED_HOSTS or when it carries an
Origin that is neither the request's own (scheme, host and port: https://<Host> behind nginx)
nor in CSRF_TRUSTED_ORIGINS, as Django's CSRF check decides (demo.origins): a page on another
site (http://localhost:8080 is another site than https://localhost) cannot open a socket with
the visitor's cookies (cross-site WebSocket hijacking). Clients that send no Origin (not
browsers: browsers always send it) are let through, like Django lets through requests without
a Referer on plain HTTP. Unknown paths get 404.
"""
import asyncio
import json
import os
from urllib.parse import parse_qs

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from demo import origins

PID = os.getpid()
_open_sockets = 0


def _header(scope, name):
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def host_allowed(scope):
    domain, _port = split_domain_port(_header(scope, b"host") or "")
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def origin_allowed(scope):
    """Scheme, host and port of the Origin against the request's own and CSRF_TRUSTED_ORIGINS (demo.origins)."""
    return origins.origin_allowed(_header(scope, b"origin"), scope.get("scheme", "ws"), _header(scope, b"host"),
                                  settings.CSRF_TRUSTED_ORIGINS)


def _int_param(query, name, default, low, high):
    try:
        value = int(query.get(name, [default])[0])
    except ValueError:
        value = default
    return max(low, min(value, high))


async def _refuse(scope, receive, send, status):
    """Reject the handshake: with the HTTP status when the server supports it, else 403."""
    await receive()  # websocket.connect
    if status != 403 and "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps({"error": status}).encode()
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


async def echo(scope, receive, send):
    global _open_sockets
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    pings = _int_param(query, "pings", 0, 0, 100)
    ping_ms = _int_param(query, "ping_ms", 100, 10, 10000)
    lock = asyncio.Lock()  # one sender at a time: the echo loop and the ping task share the socket

    async def send_json(data):
        async with lock:
            await send({"type": "websocket.send", "text": json.dumps(data)})

    async def pinger():
        try:
            for n in range(1, pings + 1):
                await asyncio.sleep(ping_ms / 1000)
                await send_json({"type": "ping", "n": n, "of": pings, "pid": PID})
        except OSError:  # the client went away between two pings; the echo loop ends the connection
            return

    await send({"type": "websocket.accept"})
    _open_sockets += 1
    ticker = asyncio.create_task(pinger()) if pings else None
    try:
        client = scope.get("client")
        await send_json({"type": "hello", "pid": PID, "version": settings.APP_VERSION, "host": settings.APP_HOSTNAME,
                         "scheme": scope.get("scheme"), "client": client[0] if client else None,
                         "open_in_worker": _open_sockets})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await send_json({"type": "echo", "data": message["text"], "pid": PID})
            elif message.get("bytes") is not None:
                async with lock:
                    await send({"type": "websocket.send", "bytes": message["bytes"]})
    finally:
        _open_sockets -= 1
        if ticker is not None:
            ticker.cancel()


ROUTES = {"/ws/echo/": echo}


async def route(scope, receive, send):
    handler = ROUTES.get(scope["path"])
    if handler is None:
        await _refuse(scope, receive, send, 404)
    elif not host_allowed(scope) or not origin_allowed(scope):
        await _refuse(scope, receive, send, 403)
    else:
        await handler(scope, receive, send)
