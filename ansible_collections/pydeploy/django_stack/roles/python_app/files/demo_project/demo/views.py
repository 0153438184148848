"""Views of the demo: a page with a static file, a health check, sync and async views."""
import asyncio
import os
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from demo.models import Note


def _identity(request):
    return {
        "version": settings.APP_VERSION,
        "host": settings.APP_HOSTNAME,
        "secure": request.is_secure(),
        "scheme": request.scheme,
    }


def index(request):
    return render(request, "demo/index.html", _identity(request))


def health(request):
    """200 with db ok when the database answers, 503 otherwise (JSON either way)."""
    body = _identity(request)
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        body.update(status="ok", db="ok", db_vendor=connection.vendor)
        status = 200
    except Exception as exc:  # noqa: BLE001 - any database failure is "unhealthy"
        connection.close_if_unusable_or_obsolete()
        body.update(status="unavailable", db="error", error=type(exc).__name__)
        status = 503
    return JsonResponse(body, status=status)


def _delay(request, name, default, ceiling):
    try:
        value = int(request.GET.get(name, default))
    except ValueError:
        value = default
    return max(0, min(value, ceiling))


def sync_view(request):
    """A small synchronous view; ?ms=N simulates N ms of blocking I/O."""
    ms = _delay(request, "ms", 0, 5000)
    if ms:
        time.sleep(ms / 1000)
    return JsonResponse({"view": "sync", "slept_ms": ms, **_identity(request)})


# Requests of async_view in progress in this process. Under an ASGI server one worker runs many
# at once on its event loop; a sync WSGI worker runs one request at a time, so it stays at 1
# there (gthread: at most one per thread).
_async_active = 0


async def async_view(request):
    """Concurrent I/O: ?n=N sleeps of ?ms=M each, awaited together (about one sleep in all).

    Besides the elapsed time it reports what shows the concurrency without a clock:
    max_in_flight, the most sleeps pending at once in this request (n when they overlap), and
    worker_active_peak, the most requests of this view in progress at once in this process
    while this one ran, with pid naming the process.
    """
    global _async_active
    n = _delay(request, "n", 10, 200)
    ms = _delay(request, "ms", 100, 5000)
    in_flight = peak = 0

    async def one_sleep():
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(ms / 1000)
        finally:
            in_flight -= 1

    _async_active += 1
    worker_peak = _async_active
    started = time.monotonic()
    try:
        await asyncio.gather(*(one_sleep() for _sleep in range(n)))
        worker_peak = max(worker_peak, _async_active)
    finally:
        _async_active -= 1
    elapsed = round((time.monotonic() - started) * 1000)
    return JsonResponse({"view": "async", "n": n, "ms": ms, "elapsed_ms": elapsed, "max_in_flight": peak,
                         "worker_active_peak": worker_peak, "pid": os.getpid(),
                         "version": settings.APP_VERSION, "host": settings.APP_HOSTNAME})


@require_http_methods(["GET"])
def notes(request):
    return JsonResponse({"count": Note.objects.count()})
