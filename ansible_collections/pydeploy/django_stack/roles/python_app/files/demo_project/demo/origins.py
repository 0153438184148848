"""Whether a WebSocket handshake's Origin is the site's own, as Django's CSRF check decides it
for a POST (CsrfViewMiddleware._origin_verified), with no Django import (unit-tested alone).

A page origin is scheme, host and port: http://localhost:8080 is another site than
https://localhost even though the host name is the same. Allowed are:
- the origin of the request itself: https for wss:// (what the server saw behind the proxy,
  X-Forwarded-Proto), http for ws://, and the Host header's name and port (the scheme's
  default port when it has none);
- every origin of CSRF_TRUSTED_ORIGINS ("https://example.com", "https://example.com:8443"),
  and with "https://*.example.com" the domain and its subdomains, with that scheme and port.
Ports are compared as numbers, the default one spelled or not ("https://a:443" = "https://a").
"""
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
PAGE_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def origin_tuple(origin):
    """(scheme, host, port) of a serialized origin, or None when the text is not one (the
    opaque "null", another scheme, a path, user info, a bad port)."""
    try:
        parsed = urlsplit(origin)
        port = parsed.port
    except ValueError:
        return None
    scheme = parsed.scheme.lower()
    if (scheme not in DEFAULT_PORTS or not parsed.hostname or parsed.path not in ("", "/")
            or parsed.query or parsed.fragment or "@" in parsed.netloc):
        return None
    return scheme, parsed.hostname, port or DEFAULT_PORTS[scheme]


def request_origin(scheme, host):
    """The origin of a page on the site this request was made to (scheme of the ASGI scope, Host header)."""
    page_scheme = PAGE_SCHEMES.get(scheme)
    return origin_tuple(f"{page_scheme}://{host}") if page_scheme and host else None


def _trusted(candidate, trusted):
    """Whether one CSRF_TRUSTED_ORIGINS entry allows the (scheme, host, port) candidate."""
    scheme, sep, rest = trusted.partition("://*.")
    if not sep:
        return origin_tuple(trusted) == candidate
    pattern = origin_tuple(f"{scheme}://{rest}")
    if pattern is None:
        return False
    return (candidate[0], candidate[2]) == (pattern[0], pattern[2]) and (
        candidate[1] == pattern[1] or candidate[1].endswith("." + pattern[1]))


def origin_allowed(origin, scheme, host, trusted_origins=()):
    """origin: the Origin header (None when the client sent none: not a browser, let through as
    Django lets a request without Referer through on plain HTTP); scheme: the ASGI scope's
    ("ws"/"wss"); host: the Host header (already checked against ALLOWED_HOSTS)."""
    if origin is None:
        return True
    candidate = origin_tuple(origin)
    if candidate is None:
        return False
    if candidate == request_origin(scheme, host):
        return True
    return any(_trusted(candidate, trusted) for trusted in trusted_origins)
