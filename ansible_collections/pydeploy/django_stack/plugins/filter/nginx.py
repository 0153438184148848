# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Data shaping of the nginx role: sites from the stack input, the certificate plan of the sites,
the listen addresses of sites named by IP address. Plain data in, plain data out (unit-tested)."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # unit tests without Ansible
    AnsibleFilterError = ValueError


def _ip(name):
    try:
        return ipaddress.ip_address(str(name).strip("[]"))
    except ValueError:
        return None


def nginx_stack_sites(apps, websocket_path="/ws/"):
    """`nginx_stack.apps` -> the default `nginx_sites`: one site per app, named after it, answering its
    server names, proxying to its app server (unix socket on one box, every app host's TCP binds otherwise),
    serving its static and media directories, with TLS to the upstream when the app server offers it."""
    sites = []
    for index, entry in enumerate(apps or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("app"), dict):
            raise AnsibleFilterError(f"nginx_stack.apps[{index}] needs an 'app' (python_app_exports)")
        app = entry["app"]
        server = entry.get("server") or {}
        upstream = list(entry.get("upstream_servers") or [])
        tls = server.get("tls") or {}
        site = {
            "name": app["name"],
            "server_names": list(dict.fromkeys(app.get("server_names") or [])),
            "upstream_servers": upstream,
            "upstream_socket": server.get("socket_path") or "",
        }
        for key in ("static_url", "static_root", "media_url", "media_root"):
            if app.get(key) is not None:
                site[key] = app[key]
        if server.get("websocket"):
            site["websocket_locations"] = [{"path": websocket_path}]
        # TLS to the app servers only across hosts: on one box nginx talks to the unix socket.
        if upstream and tls.get("enabled"):
            site["upstream_tls"] = {
                "enabled": True,
                "ca_pem": tls.get("ca_pem") or "",
                "ca_file": "" if tls.get("ca_pem") else (tls.get("ca_file") or ""),
                "name": tls.get("server_name") or app["name"],
            }
        sites.append(site)
    return sites


def nginx_app_timeout(apps, default=30):
    """The longest request timeout of the app servers behind nginx."""
    values = [int((e.get("server") or {}).get("timeout") or 0) for e in apps or []]
    values = [v for v in values if v > 0]
    return max(values) if values else default


def nginx_app_keepalive(apps, default=5):
    """The shortest keep-alive of the app servers (nginx must close idle upstream connections first)."""
    values = [int((e.get("server") or {}).get("keepalive") or 0) for e in apps or []]
    values = [v for v in values if v > 0]
    return min(values) if values else default


SOURCES = {"local_ca": "local_ca", "self_signed": "local_ca", "acme": "acme"}


def nginx_tls_sites(sites):
    """The sites (merged with their defaults) -> the `sites` parameter of the nginx_tls module."""
    out = []
    for index, site in enumerate(sites):
        certificate = site.get("certificate", "local_ca")
        if certificate == "provided":
            source = "provided_content" if site.get("certificate_content") else "provided_files"
        else:
            source = SOURCES[certificate]
        tls = site.get("upstream_tls") or {}
        out.append({
            "name": site["name"],
            "source": source,
            "names": list(site.get("server_names") or []),
            "certificate_content": (site.get("certificate_content") or "") if source == "provided_content" else "",
            "key_content": (site.get("certificate_key_content") or "") if source == "provided_content" else "",
            "certificate_file": (site.get("certificate_file") or "") if source == "provided_files" else "",
            "key_file": (site.get("certificate_key_file") or "") if source == "provided_files" else "",
            "upstream_ca_content": (tls.get("ca_pem") or "") if tls.get("enabled") else "",
            # nginx_sites[i] as the user wrote it (the sites are nginx_sites merged with their fallbacks, in order)
            "label": f"nginx_sites[{index}]",
        })
    return out


def nginx_site_defaults(sites, defaults):
    """Every site of `nginx_sites` over the defaults (the nginx_* values): what a site leaves out, it takes
    from the defaults; a key it sets wins. A shallow merge, as `combine` would make, in one pass: the
    defaults are read once, however many sites there are."""
    base = dict(defaults)
    out = []
    for index, site in enumerate(sites):
        if not isinstance(site, Mapping):
            raise AnsibleFilterError(f"nginx_sites[{index}]: is a {type(site).__name__} where a dict is expected")
        merged = dict(base)
        merged.update(site)
        out.append(merged)
    return out


def nginx_ip_listens(sites, port, ipv6=True):
    """Sites named by an IP address answer clients that send no SNI (nobody sends an address as SNI).
    The catch-all server rejects handshakes without a known SNI on the wildcard listener, so each such
    address gets listeners of its own, where the naming site's certificate completes the handshake and
    a catch-all of that address closes unknown Host headers. Returns [{listen, address, site}]."""
    seen = {}
    for site in sites:
        for name in site.get("server_names") or []:
            ip = _ip(name)
            if ip is None or (ip.version == 6 and not ipv6):
                continue
            if ip.is_unspecified:
                continue
            key = str(ip)
            if key in seen and seen[key]["site"] != site["name"]:
                raise AnsibleFilterError(
                    f"nginx_sites: the address {key} is a server name of both {seen[key]['site']} and {site['name']}; "
                    "a client reaching an address sends no SNI, so only one site can answer it")
            listen = f"[{key}]:{port}" if ip.version == 6 else f"{key}:{port}"
            seen[key] = {"listen": listen, "address": key, "site": site["name"]}
    return list(seen.values())


def nginx_upstreams(sites, keepalive_timeout):
    """The app upstream of every site, as the converge records it on the web host for the `upstream`
    entry point (drain/undrain renders from this record, never from the calling host's variables)."""
    return [{"name": s["name"], "servers": list(s.get("upstream_servers") or []),
             "socket": s.get("upstream_socket") or "", "keepalive": int(s.get("upstream_keepalive") or 0),
             "keepalive_timeout": int(keepalive_timeout)} for s in sites]


def nginx_config_files(sites, upstreams, conf_dir, sites_dir, upstreams_dir, record, upstreams_only=False):
    """The `files` of pydeploy.django_stack.config_set: nginx.conf, one file per site and per upstream
    (each template finds its site by the file's name), and the record of the upstreams, staged in the
    layout nginx.conf includes them by (relative paths), so that `nginx -t -c %{stage}/nginx.conf`
    checks exactly this set. `upstreams_only`: the upstream files alone (drain/undrain)."""
    files = []
    if not upstreams_only:
        files.append({"dest": f"{conf_dir}/nginx.conf", "template": "nginx.conf.j2", "stage_as": "nginx.conf",
                      "mode": "0644"})
        for site in sites:
            files.append({"dest": f"{conf_dir}/{sites_dir}/{site['name']}.conf", "template": "site.conf.j2",
                          "stage_as": f"{sites_dir}/{site['name']}.conf", "mode": "0644"})
    for upstream in upstreams:
        files.append({"dest": f"{conf_dir}/{upstreams_dir}/{upstream['name']}.conf", "template": "upstream.conf.j2",
                      "stage_as": f"{upstreams_dir}/{upstream['name']}.conf", "mode": "0644"})
    if not upstreams_only:
        files.append({"dest": record, "content": json.dumps(upstreams, indent=1, sort_keys=True) + "\n",
                      "stage_as": f"{upstreams_dir}/{record.rsplit('/', 1)[-1]}", "mode": "0644"})
    return files


def nginx_down_problems(upstreams, down):
    """Problems of a drain request against the recorded upstreams ([] when fine)."""
    problems = []
    if not _is_list(down) or not all(isinstance(d, str) for d in down):
        return [f"nginx_upstream_down must be a list of host:port (got {down!r})"]
    for entry in down:
        if hostport_problem(entry):
            problems.append(f"nginx_upstream_down: {entry!r} {hostport_problem(entry)}")
    for upstream in upstreams:
        servers = upstream.get("servers") or []
        if servers and not [s for s in servers if s not in down]:
            problems.append(f"nginx_upstream_down marks every server of site {upstream['name']} down "
                            f"({', '.join(servers)}); at least one must stay up")
    return problems


def nginx_export_sites(sites):
    """`nginx_exports.sites`: name, server names and upstream (host:port list, or ["unix:<socket>"])."""
    return [{"name": s["name"], "server_names": list(s.get("server_names") or []),
             "upstream": list(s.get("upstream_servers") or []) or [f"unix:{s.get('upstream_socket')}"]}
            for s in sites]


# ------------------------------------------------------------------------------------------------
# Validation: every value that reaches nginx's configuration, with messages naming the variable.

NAME_RE = re.compile(r"\A[A-Za-z0-9_-]+\Z")
DNS_RE = re.compile(r"\A(\*\.|\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")
# Server names: DNS names, and '_' inside labels (nginx matches it like any character; inventory and
# container names hold it, and the app's default server names include the inventory host name).
SERVER_NAME_RE = re.compile(r"\A(\*\.|\.)?([A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\Z")
FQDN_RE = re.compile(r"\A[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+\Z")
PATH_RE = re.compile(r"\A/[A-Za-z0-9._@%+=,:~/-]*\Z")
URL_PATH_RE = re.compile(r"\A/[A-Za-z0-9._@%+=,:~/-]*\Z")
SIZE_RE = re.compile(r"\A[0-9]+[kKmMgG]?\Z")
TIME_RE = re.compile(r"\A([0-9]+(ms|s|m|h|d|w|M|y)?)+\Z")
RATE_RE = re.compile(r"\A[1-9][0-9]*r/[sm]\Z")
TOKEN_RE = re.compile(r"\A[A-Za-z0-9-]+\Z")
CIPHERS_RE = re.compile(r"\A[A-Za-z0-9_:+!@=.-]+\Z")
MIME_RE = re.compile(r"\A[a-z0-9.+-]+/[a-z0-9.+*-]+\Z")
HEADER_VALUE_BAD = re.compile(r'["\\$\x00-\x1f\x7f]')
EMAIL_RE = re.compile(r"\A[^@\s\"';{}\\]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\Z")
HTTPS_URL_RE = re.compile(r"\Ahttps://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/+-]*)?\Z")

# The nginx_* variable a site key falls back to (what a message names when the site does not set it).
FALLBACK = {
    "server_names": "nginx_stack (the app's server names)", "certificate": "nginx_certificate",
    "upstream_socket": "nginx_upstream_socket", "upstream_servers": "nginx_upstream_servers",
    "upstream_keepalive": "nginx_upstream_keepalive", "upstream_tls": "nginx_upstream_tls",
    "static_url": "nginx_static_url", "static_root": "nginx_static_root", "media_url": "nginx_media_url",
    "media_root": "nginx_media_root", "websocket_locations": "nginx_websocket_locations",
    "websocket_rate_limit": "nginx_websocket_rate_limit", "rate_limit": "nginx_rate_limit",
    "rate_limited_locations": "nginx_rate_limited_locations", "limit_conn": "nginx_limit_conn",
    "client_max_body_size": "nginx_client_max_body_size",
}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value):
    """An integer, or an integer-looking string (Ansible templates may deliver either); None otherwise."""
    if _is_int(value):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    return None


def _is_list(value):
    return isinstance(value, (list, tuple))


def hostport_problem(value):
    """None when value is host:port with a valid host and port 1-65535, else what is wrong."""
    if not isinstance(value, str):
        return "is not a string"
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})", value)
    if not match:
        return "is not host:port"
    host, port = match.group(1), int(match.group(2))
    if not 1 <= port <= 65535:
        return f"has port {port} outside 1-65535"
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"has an invalid IPv6 address {host}"
    elif re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"has an invalid IPv4 address {host}"
    elif not DNS_RE.match(host) or host.startswith((".", "*")):
        return f"has an invalid host name {host}"
    return None


class Problems:
    def __init__(self, host):
        self.host = host
        self.items = []

    def add(self, where, message, context=""):
        self.items.append(f"{where}: {message} ({context + '; ' if context else ''}host {self.host})")


class _SiteProblems:
    """Problems of one site: the path as the user wrote it comes first (nginx_sites[0].server_names[1], or the
    nginx_* fallback the site took the value from), the site's name after the message."""

    def __init__(self, problems, name):
        self.problems = problems
        self.name = name

    def add(self, where, message):
        context = f"site {self.name}" if where.startswith("nginx_sites[") else f"used by site {self.name}"
        self.problems.add(where, message, context)


def _site_where(raw_sites, index, key):
    raw = raw_sites[index] if index < len(raw_sites) and isinstance(raw_sites[index], dict) else {}
    if key in raw:
        return f"nginx_sites[{index}].{key}"
    return FALLBACK.get(key, "nginx_" + key)


def _check_limit(p, where, limit, path_required=False):
    if not isinstance(limit, dict):
        p.add(where, "must be a dict with rate and burst")
        return
    if not limit and not path_required:
        return
    if not isinstance(limit.get("rate"), str) or not RATE_RE.match(limit.get("rate", "")):
        p.add(where, f"rate must look like 10r/s or 30r/m (got {limit.get('rate')!r})")
    burst = _int(limit.get("burst"))
    if burst is None or burst < 0:
        p.add(where, f"burst must be an integer 0 or more (got {limit.get('burst')!r})")
    if path_required and (not isinstance(limit.get("path"), str) or not URL_PATH_RE.match(limit.get("path", ""))):
        p.add(where, f"path must be a URL path starting with / (got {limit.get('path')!r})")


def _check_headers(p, where, headers):
    if not isinstance(headers, dict):
        p.add(where, "must be a dict of header name: value")
        return
    for name, value in headers.items():
        if not isinstance(name, str) or not TOKEN_RE.match(name):
            p.add(where, f"header name {name!r} must be a token of letters, digits and -")
        if not isinstance(value, (str, int)) or HEADER_VALUE_BAD.search(str(value)):
            p.add(f"{where}[{name}]", 'value must be one line without ", \\ or $')


def _check_site(p, raw_sites, index, site, v):
    p = _SiteProblems(p, site.get("name", "?"))

    def where(key):
        return _site_where(raw_sites, index, key)

    names = site.get("server_names")
    if not _is_list(names) or not names:
        p.add(where("server_names"), f"must be a non-empty list of names (got {names!r})")
        names = []
    for i, name in enumerate(names):
        if name in ("_", "*", ""):
            p.add(f"{where('server_names')}[{i}]", f"{name!r} is not a name: the role's catch-all server already "
                  "closes requests for unknown names; list the names this site answers")
        elif not isinstance(name, str) or not (SERVER_NAME_RE.match(name) or _ip(name) is not None):
            p.add(f"{where('server_names')}[{i}]", f"{name!r} is not a host name, .domain, *.domain or IP address")
    certificate = site.get("certificate")
    if certificate not in ("local_ca", "self_signed", "provided", "acme"):
        p.add(where("certificate"), f"must be local_ca, provided or acme (got {certificate!r})")
    if certificate == "provided":
        content = site.get("certificate_content") or ""
        # The merged sites seen here carry no key content (it never enters messages): `__with_key` names
        # the sites that have one.
        has_key = bool(site.get("certificate_key_content")) or site.get("name") in (v.get("__with_key") or [])
        files = [site.get("certificate_file") or "", site.get("certificate_key_file") or ""]
        if content:
            if "-----BEGIN CERTIFICATE-----" not in str(content):
                p.add(where("certificate_content"), "holds no PEM certificate")
            if not has_key:
                p.add(where("certificate_key_content"), "is needed with certificate_content (provided needs both)")
        elif not all(isinstance(f, str) and PATH_RE.match(f) for f in files):
            p.add(where("certificate"), "provided needs certificate_content and certificate_key_content, or "
                  f"absolute certificate_file and certificate_key_file (got {files})")
    if certificate == "acme":
        if not isinstance(v.get("nginx_acme_email"), str) or not EMAIL_RE.match(v.get("nginx_acme_email") or ""):
            p.add("nginx_acme_email", f"an ACME site ({site.get('name')}) needs an account e-mail address")
        for i, name in enumerate(names):
            if isinstance(name, str) and (_ip(name) is not None or not FQDN_RE.match(name)):
                p.add(f"{where('server_names')}[{i}]", f"{name!r}: an ACME certificate (HTTP-01) needs DNS names "
                      "the CA can reach at http://NAME/.well-known/acme-challenge/ (no IP address, wildcard or "
                      "single label)")
    servers = site.get("upstream_servers")
    if not _is_list(servers):
        p.add(where("upstream_servers"), f"must be a list of host:port (got {servers!r})")
        servers = []
    for i, server in enumerate(servers):
        problem = hostport_problem(server)
        if problem:
            p.add(f"{where('upstream_servers')}[{i}]", f"{server!r} {problem}")
    down = v.get("nginx_upstream_down") or []
    if servers and not [s for s in servers if s not in down]:
        p.add("nginx_upstream_down", f"marks every server of site {site.get('name')} down; at least one must stay up")
    socket = site.get("upstream_socket")
    if not servers and (not isinstance(socket, str) or not PATH_RE.match(socket)):
        p.add(where("upstream_socket"), f"must be an absolute path without spaces or quotes when there are no "
              f"upstream_servers (got {socket!r})")
    keepalive = _int(site.get("upstream_keepalive"))
    if keepalive is None or keepalive < 0:
        p.add(where("upstream_keepalive"), "must be an integer 0 or more")
    tls = site.get("upstream_tls") or {}
    if not isinstance(tls, dict):
        p.add(where("upstream_tls"), "must be a dict")
    elif tls.get("enabled"):
        if not servers:
            p.add(where("upstream_tls"), "TLS to the app servers needs upstream_servers (on one box nginx uses the "
                  "unix socket)")
        if not tls.get("ca_pem") and not (isinstance(tls.get("ca_file"), str) and PATH_RE.match(tls.get("ca_file"))):
            p.add(where("upstream_tls"), "needs ca_pem (PEM of the CA that signs the app servers' certificates) "
                  "or an absolute ca_file")
        if tls.get("ca_pem") and "-----BEGIN CERTIFICATE-----" not in str(tls.get("ca_pem")):
            p.add(f"{where('upstream_tls')}.ca_pem", "holds no PEM certificate")
        if not isinstance(tls.get("name"), str) or not FQDN_RE.match(tls.get("name") or "x") and not \
                NAME_RE.match(tls.get("name") or ""):
            p.add(f"{where('upstream_tls')}.name", f"must be the DNS name the app servers' certificates carry "
                  f"(got {tls.get('name')!r})")
        pair = [tls.get("client_certificate_file") or "", tls.get("client_key_file") or ""]
        if any(pair) and not all(isinstance(f, str) and PATH_RE.match(f) for f in pair):
            p.add(where("upstream_tls"), "client_certificate_file and client_key_file go together, as absolute paths")
    for key in ("static_url", "media_url"):
        value = site.get(key)
        if key == "media_url" and value == "":
            continue
        if not isinstance(value, str) or not URL_PATH_RE.match(value) or not value.endswith("/"):
            p.add(where(key), f"must be a local URL path starting and ending with / (got {value!r}; a full URL "
                  "such as a CDN is not served here)")
    if site.get("static_url") == site.get("media_url"):
        p.add(where("media_url"), "must differ from static_url")
    for key in ("static_root", "media_root"):
        value = site.get(key)
        if not isinstance(value, str) or not PATH_RE.match(value):
            p.add(where(key), f"must be an absolute path without spaces, quotes or ; (got {value!r})")
    wss = site.get("websocket_locations")
    if not _is_list(wss):
        p.add(where("websocket_locations"), "must be a list of {path, upstream, read_timeout}")
        wss = []
    for i, ws in enumerate(wss):
        at = f"{where('websocket_locations')}[{i}]"
        if not isinstance(ws, dict):
            p.add(at, "must be a dict with path")
            continue
        if not isinstance(ws.get("path"), str) or not URL_PATH_RE.match(ws.get("path", "")):
            p.add(f"{at}.path", f"must be a URL path starting with / (got {ws.get('path')!r})")
        if "upstream" in ws and not (isinstance(ws["upstream"], str) and PATH_RE.match(ws["upstream"])) \
                and hostport_problem(ws["upstream"]):
            p.add(f"{at}.upstream", "must be a unix socket path or host:port")
        if "read_timeout" in ws and (_int(ws["read_timeout"]) is None or _int(ws["read_timeout"]) < 1):
            p.add(f"{at}.read_timeout", "must be a number of seconds, 1 or more")
        unknown = set(ws) - {"path", "upstream", "read_timeout"}
        if unknown:
            p.add(at, f"unknown keys {sorted(unknown)} (path, upstream, read_timeout)")
    _check_limit(p, where("websocket_rate_limit"), site.get("websocket_rate_limit"))
    _check_limit(p, where("rate_limit"), site.get("rate_limit"))
    rls = site.get("rate_limited_locations")
    if not _is_list(rls):
        p.add(where("rate_limited_locations"), "must be a list of {path, rate, burst}")
        rls = []
    for i, location in enumerate(rls):
        _check_limit(p, f"{where('rate_limited_locations')}[{i}]", location, path_required=True)
    limit = _int(site.get("limit_conn"))
    if limit is None or limit < 0:
        p.add(where("limit_conn"), "must be an integer 0 or more")
    size = site.get("client_max_body_size")
    if not isinstance(size, (str, int)) or not SIZE_RE.match(str(size)):
        p.add(where("client_max_body_size"), f"must be a size like 10m (got {size!r})")
    _check_headers(p, where("security_headers"), site.get("security_headers"))
    extra = site.get("extra_directives")
    if not _is_list(extra) or not all(isinstance(d, str) for d in extra):
        p.add(where("extra_directives"), "must be a list of directives (strings), one per item")


def nginx_problems(v, host="?"):
    """Everything wrong with the role's variables `v` (a dict of nginx_* values plus `__sites`, the
    sites merged with their fallbacks), as messages naming the variable as the user wrote it."""
    p = Problems(host)
    raw_sites = v.get("nginx_sites")
    if not _is_list(raw_sites) or not raw_sites:
        p.add("nginx_sites", "needs at least one site (a list of dicts with a name)")
        return p.items
    names = []
    for index, raw in enumerate(raw_sites):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not NAME_RE.match(raw.get("name")):
            p.add(f"nginx_sites[{index}].name", "every site needs a name of letters, digits, _ and -")
            continue
        if raw["name"] in names:
            p.add(f"nginx_sites[{index}].name", f"{raw['name']} is the name of nginx_sites[{names.index(raw['name'])}] "
                  "already; site names are unique")
        names.append(raw["name"])
    for key in ("nginx_http_port", "nginx_https_port"):
        port = _int(v.get(key))
        if port is None or not 1 <= port <= 65535:
            p.add(key, f"must be a port 1-65535 (got {v.get(key)!r})")
    if _int(v.get("nginx_http_port")) == _int(v.get("nginx_https_port")):
        p.add("nginx_https_port", "must differ from nginx_http_port")
    wc, nofile = _int(v.get("nginx_worker_connections")), _int(v.get("nginx_worker_rlimit_nofile"))
    if wc is None or wc < 16:
        p.add("nginx_worker_connections", "must be at least 16")
    elif nofile is None or nofile < 2 * wc:
        p.add("nginx_worker_rlimit_nofile", f"must be at least twice nginx_worker_connections ({2 * wc})")
    if not re.fullmatch(r"auto|[1-9][0-9]*", str(v.get("nginx_worker_processes"))):
        p.add("nginx_worker_processes", "must be auto or a number")
    for key in ("nginx_client_max_body_size", "nginx_ssl_session_cache_size", "nginx_rate_limit_zone_size"):
        if not SIZE_RE.match(str(v.get(key))):
            p.add(key, f"must be a size like 10m (got {v.get(key)!r})")
    for key in ("nginx_ssl_session_timeout",):
        if not TIME_RE.match(str(v.get(key))):
            p.add(key, f"must be a time like 1d or 30m (got {v.get(key)!r})")
    for key in ("nginx_static_expires", "nginx_media_expires"):
        value = str(v.get(key))
        if not (TIME_RE.match(value) or value in ("off", "epoch", "max")):
            p.add(key, f"must be a time like 30d, or off, epoch or max (got {v.get(key)!r})")
    for key, low in (("nginx_keepalive_timeout", 0), ("nginx_client_header_timeout", 1),
                     ("nginx_client_body_timeout", 1), ("nginx_send_timeout", 1), ("nginx_proxy_connect_timeout", 1),
                     ("nginx_proxy_read_timeout", 1), ("nginx_proxy_send_timeout", 1),
                     ("nginx_websocket_read_timeout", 1), ("nginx_upstream_keepalive_timeout", 1),
                     ("nginx_app_timeout", 1), ("nginx_hsts_max_age", 0), ("nginx_certificate_days", 1),
                     ("nginx_certificate_renew_days", 0), ("nginx_local_ca_days", 2),
                     ("nginx_server_names_hash_bucket_size", 32)):
        value = _int(v.get(key))
        if value is None or value < low:
            p.add(key, f"must be an integer, {low} or more (got {v.get(key)!r})")
    app_timeout = _int(v.get("nginx_app_timeout")) or 0
    for key in ("nginx_proxy_read_timeout", "nginx_proxy_send_timeout"):
        value = _int(v.get(key))
        if value is not None and value <= app_timeout:
            p.add(key, f"({value}) must exceed the app server's timeout nginx_app_timeout ({app_timeout}): "
                  "otherwise nginx answers 504 while the app server is still allowed to work on the request")
    days, renew = _int(v.get("nginx_certificate_days")), _int(v.get("nginx_certificate_renew_days"))
    if days is not None and renew is not None and renew >= days:
        p.add("nginx_certificate_renew_days", f"must be below nginx_certificate_days ({days})")
    ca_days = _int(v.get("nginx_local_ca_days"))
    if days is not None and ca_days is not None and ca_days <= days:
        p.add("nginx_local_ca_days", f"must exceed nginx_certificate_days ({days})")
    protocols = v.get("nginx_ssl_protocols")
    if not _is_list(protocols) or not protocols or set(protocols) - {"TLSv1.2", "TLSv1.3"}:
        p.add("nginx_ssl_protocols", f"must be a list of TLSv1.2 and/or TLSv1.3 (got {protocols!r})")
    for key in ("nginx_ssl_ciphers", "nginx_ssl_ecdh_curve"):
        if not isinstance(v.get(key), str) or not CIPHERS_RE.match(v.get(key).strip()):
            p.add(key, "must be an OpenSSL list (names separated by :), nothing else")
    for key in ("nginx_tls_dir", "nginx_acme_webroot"):
        if not isinstance(v.get(key), str) or not PATH_RE.match(v.get(key)):
            p.add(key, f"must be an absolute path without spaces, quotes or ; (got {v.get(key)!r})")
    real_ip = v.get("nginx_real_ip_from")
    if not _is_list(real_ip):
        p.add("nginx_real_ip_from", "must be a list of addresses or CIDRs")
        real_ip = []
    for i, net in enumerate(real_ip):
        try:
            ipaddress.ip_network(str(net), strict=False)
        except ValueError:
            p.add(f"nginx_real_ip_from[{i}]", f"{net!r} is not an address or CIDR")
    fmt = v.get("nginx_access_log_format")
    if not isinstance(fmt, str) or re.search(r"[\r\n\\]", fmt):
        p.add("nginx_access_log_format", "must be one line without backslashes")
    for key in ("nginx_http_extra_directives",):
        value = v.get(key)
        if not _is_list(value) or not all(isinstance(d, str) for d in value):
            p.add(key, "must be a list of directives (strings), one per item")
    types = v.get("nginx_gzip_types")
    if not _is_list(types) or not all(isinstance(t, str) and MIME_RE.match(t) for t in types):
        p.add("nginx_gzip_types", "must be a list of MIME types like text/css")
    _check_headers(p, "nginx_security_headers", v.get("nginx_security_headers"))
    csp = v.get("nginx_media_content_security_policy")
    if not isinstance(csp, str) or HEADER_VALUE_BAD.search(csp):
        p.add("nginx_media_content_security_policy", 'must be one line without ", \\ or $')
    cleared = v.get("nginx_proxy_cleared_headers")
    if not _is_list(cleared) or not all(isinstance(h, str) and TOKEN_RE.match(h) for h in cleared):
        p.add("nginx_proxy_cleared_headers", "must be a list of header names")
    down = v.get("nginx_upstream_down")
    if not _is_list(down):
        p.add("nginx_upstream_down", "must be a list of host:port")
    cn = v.get("nginx_local_ca_common_name")
    if not isinstance(cn, str) or not 0 < len(cn) <= 64 or re.search(r"[\x00-\x1f]", cn):
        p.add("nginx_local_ca_common_name", "must be one line of 1 to 64 characters")
    if not isinstance(v.get("nginx_acme_directory"), str) or not HTTPS_URL_RE.match(v.get("nginx_acme_directory")):
        p.add("nginx_acme_directory", f"must be the https:// URL of the ACME directory (got {v.get('nginx_acme_directory')!r})")
    cas = v.get("nginx_acme_ca_certificates")
    if not _is_list(cas) or not all(isinstance(c, str) and "-----BEGIN CERTIFICATE-----" in c for c in cas):
        p.add("nginx_acme_ca_certificates", "must be a list of PEM certificates")
    sites = v.get("__sites") or []
    for index, site in enumerate(sites):
        if isinstance(site, dict):
            _check_site(p, raw_sites, index, site, v)
    try:
        nginx_ip_listens([s for s in sites if isinstance(s, dict) and _is_list(s.get("server_names"))], 443)
    except AnsibleFilterError as exc:
        p.add("nginx_sites", str(exc).split(": ", 1)[-1])
    return p.items


class FilterModule:
    def filters(self):
        return {
            "nginx_stack_sites": nginx_stack_sites,
            "nginx_app_timeout": nginx_app_timeout,
            "nginx_app_keepalive": nginx_app_keepalive,
            "nginx_tls_sites": nginx_tls_sites,
            "nginx_ip_listens": nginx_ip_listens,
            "nginx_site_defaults": nginx_site_defaults,
            "nginx_problems": nginx_problems,
            "nginx_export_sites": nginx_export_sites,
            "nginx_upstreams": nginx_upstreams,
            "nginx_down_problems": nginx_down_problems,
            "nginx_config_files": nginx_config_files,
        }
