"""The demo's WebSocket Origin check (roles/python_app/files/demo_project/demo/origins.py): scheme,
host and port, as Django's CSRF origin check compares them. Its use by the live /ws/echo/ is tested
in molecule/uvicorn_worker (test_cross_site_origin_refused_through_nginx)."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = (Path(__file__).resolve().parents[2]
          / "ansible_collections/pydeploy/django_stack/roles/python_app/files/demo_project/demo/origins.py")
spec = importlib.util.spec_from_file_location("demo_origins", SCRIPT)
origins = importlib.util.module_from_spec(spec)
spec.loader.exec_module(origins)

TRUSTED = ["https://localhost", "https://127.0.0.1", "https://*.example.com", "https://app.test:8443"]


@pytest.mark.parametrize("origin, scheme, host, allowed", [
    # Behind nginx: wss, Host without a port.
    ("https://localhost", "wss", "localhost", True),
    ("https://localhost:443", "wss", "localhost", True),
    ("https://LOCALHOST", "wss", "localhost", True),
    ("http://localhost", "wss", "localhost", False),
    ("https://localhost:8443", "wss", "localhost", False),
    ("http://localhost:8080", "wss", "localhost", False),
    ("https://evil.example", "wss", "localhost", False),
    ("https://localhost.evil.example", "wss", "localhost", False),
    ("null", "wss", "localhost", False),
    ("file://", "wss", "localhost", False),
    ("https://localhost/path", "wss", "localhost", False),
    ("https://user@localhost", "wss", "localhost", False),
    ("https://localhost:99999", "wss", "localhost", False),
    (None, "wss", "localhost", True),
    # The request's own origin, port included, whatever CSRF_TRUSTED_ORIGINS says.
    ("http://site.test:8001", "ws", "site.test:8001", True),
    ("http://site.test:8002", "ws", "site.test:8001", False),
    ("https://site.test:8001", "ws", "site.test:8001", False),
    ("http://localhost", "ws", "localhost", True),
    ("http://[::1]:8001", "ws", "[::1]:8001", True),
    # Trusted origins: exact (default port spelled or not), wildcard subdomains with scheme and port.
    ("https://localhost", "ws", "localhost", True),
    ("https://a.example.com", "wss", "localhost", True),
    ("https://example.com", "wss", "localhost", True),
    ("http://a.example.com", "wss", "localhost", False),
    ("https://a.example.com:8443", "wss", "localhost", False),
    ("https://aexample.com", "wss", "localhost", False),
    ("https://app.test:8443", "wss", "localhost", True),
    ("https://app.test", "wss", "localhost", False),
])
def test_origin_allowed(origin, scheme, host, allowed):
    assert origins.origin_allowed(origin, scheme, host, TRUSTED) is allowed


def test_without_trusted_origins_only_the_request_origin_passes():
    assert origins.origin_allowed("https://localhost", "wss", "localhost")
    assert not origins.origin_allowed("https://localhost", "ws", "localhost")
    assert not origins.origin_allowed("https://localhost", "wss", None)
