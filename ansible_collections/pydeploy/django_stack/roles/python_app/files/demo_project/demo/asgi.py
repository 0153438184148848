"""ASGI entry point (Uvicorn, standalone or as Gunicorn workers).

A small router in front of Django's own ASGI handler: HTTP goes to Django (every view, sync
and async, works as under WSGI), WebSocket connections go to the handlers in demo.ws, and
the lifespan protocol is answered here (Django's handler refuses it).

Why not Django Channels: the demo needs one WebSocket endpoint whose state lives in the
worker's event loop. Channels adds a package, a consumer framework and, for anything shared
between workers, a channel layer (Redis) to run and secure. This router is the same shape
Channels' ProtocolTypeRouter gives (Django for HTTP, own code for WebSockets) without them;
a project that needs groups across workers should move to Channels and keep this entry point
name (`<project>.asgi:application`).
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
# Sets Django up (settings, app registry); demo.ws imports models and settings after it.
django_application = get_asgi_application()

from demo import ws  # noqa: E402  (needs Django set up first)


async def lifespan(receive, send):
    """Answer the ASGI lifespan protocol, so that Uvicorn's `lifespan: on` works."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        await django_application(scope, receive, send)
    elif kind == "websocket":
        await ws.route(scope, receive, send)
    elif kind == "lifespan":
        await lifespan(receive, send)
    else:
        raise ValueError(f"unsupported ASGI scope type {kind!r}")
