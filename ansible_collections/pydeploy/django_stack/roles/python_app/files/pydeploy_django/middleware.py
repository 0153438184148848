"""Middleware the role's settings module puts first: the real client address, the health check.

- REMOTE_ADDR: behind nginx the app server sees nginx (or nothing at all on a unix socket).
  nginx sends the client's address in X-Real-IP on every request; when the request comes from
  a trusted proxy (a unix socket, loopback, the web tier's addresses) REMOTE_ADDR becomes that
  address, so that Django, rate limits and login throttles (e.g. django-allauth's "Unable to
  determine client IP address") see the client.
- The health check (PYDEPLOY["health_path"]): 200 and {"status": "ok", "db": "ok", "release": id}
  when the default database answers, 503 otherwise. It answers before any other middleware
  (no host validation, no HTTPS redirect), so a deploy can ask the app server directly.
"""
import os

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from pydeploy_django import contract


def release_id():
    """The release this code belongs to (/srv/<app>/releases/<id>/...), "" elsewhere."""
    parts = os.path.realpath(__file__).split(os.sep)
    if "releases" in parts:
        index = len(parts) - 1 - parts[::-1].index("releases")
        if index + 1 < len(parts):
            return parts[index + 1]
    return ""


def database_status():
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return 200, "ok"
    except Exception:  # noqa: BLE001 - any database failure makes the app unhealthy
        return 503, "error"
    finally:
        connection.close_if_unusable_or_obsolete()


class PydeployMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        options = getattr(settings, "PYDEPLOY", {}) or {}
        self.health_path = options.get("health_path") or ""
        self.networks = contract.trusted_networks(options.get("trusted_proxies") or [])
        self.release = release_id()
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def _prepare(self, request):
        real = contract.real_client_address(request.META, self.networks)
        if real is not None:
            request.META["REMOTE_ADDR"] = real
        return bool(self.health_path) and request.path == self.health_path

    def _health(self, status, db):
        body = {"status": "ok" if status == 200 else "unavailable", "db": db, "release": self.release}
        return JsonResponse(body, status=status, headers={"Cache-Control": "no-store"})

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        if self._prepare(request):
            return self._health(*database_status())
        return self.get_response(request)

    async def __acall__(self, request):
        if self._prepare(request):
            return self._health(*await sync_to_async(database_status)())
        return await self.get_response(request)
