"""Helpers of the nginx tests (scenario single): HTTPS/HTTP requests by name through nginx, TLS handshakes,
nginx processes and live files, the Gunicorn journal. Everything runs inside the test container
against its own loopback (curl, openssl, tests/tools/)."""
import json
import shlex

from pydeploy_testlib import TOOLS, journal_cursor  # noqa: F401 - part of this module's helpers

STATUS_MARKER = "\n__PYDEPLOY_STATUS__:"


def _run(host, cmd):
    return host.run(" ".join(shlex.quote(str(c)) for c in cmd))


def parse_headers(text):
    """Last header block of curl -D output -> {lower-case name: [values]}."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip().startswith("HTTP/")]
    headers = {}
    for line in (blocks[-1] if blocks else "").splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return headers


class Response:
    def __init__(self, status, headers, body, http_version):
        self.status, self.headers, self.body, self.http_version = status, headers, body, http_version

    def header(self, name):
        values = self.headers.get(name.lower(), [])
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} HTTP/{self.http_version} {self.headers}>"


def request(host, path, name="localhost", scheme="https", headers=None, http2=False, timeout=15, body=True):
    """One request through nginx on 127.0.0.1 with the given name as Host (and SNI).

    body=False discards the body (compressed responses are not text)."""
    port = 443 if scheme == "https" else 80
    cmd = ["curl", "-sS", "-k", "--max-time", timeout, "--resolve", f"{name}:{port}:127.0.0.1",
           "-D", "/dev/stderr", "-o", "-" if body else "/dev/null",
           "-w", STATUS_MARKER + "%{http_code} %{http_version}",
           "--http2" if http2 else "--http1.1"]
    for key, value in (headers or {}).items():
        cmd += ["-H", f"{key}: {value}"]
    cmd.append(f"{scheme}://{name}{path}")
    result = _run(host, cmd)
    body, _, tail = result.stdout.rpartition(STATUS_MARKER)
    status, _, version = tail.partition(" ")
    return Response(int(status or 0), parse_headers(result.stderr), body, version.strip())


def handshake(host, *flags, servername="localhost", port=443):
    """openssl s_client -brief against 127.0.0.1; returns (rc, output, protocol, cipher).

    protocol and cipher are what the handshake negotiated, None when it failed."""
    cmd = ["openssl", "s_client", "-brief", "-connect", f"127.0.0.1:{port}", "-servername", servername, *flags]
    result = host.run("echo | timeout 15 " + " ".join(shlex.quote(c) for c in cmd) + " 2>&1")
    protocol = cipher = None
    for line in result.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "Protocol version":
            protocol = value.strip()
        elif sep and key.strip() == "Ciphersuite":
            cipher = value.strip()
    return result.rc, result.stdout, protocol, cipher


def served_certificate_sha256(host, servername, port=443):
    cmd = (f"echo | timeout 15 openssl s_client -connect 127.0.0.1:{port} -servername {shlex.quote(servername)} "
           "2>/dev/null | openssl x509 -noout -fingerprint -sha256")
    return host.run(cmd).stdout.strip().split("=", 1)[-1]


def file_certificate_sha256(host, path):
    return host.run(f"openssl x509 -noout -fingerprint -sha256 -in {shlex.quote(path)}").stdout.strip().split("=", 1)[-1]


def nginx_master_pid(host):
    return int(host.file("/run/nginx.pid").content_string.strip())


def nginx_worker_pids(host):
    return sorted(int(p) for p in host.run(f"pgrep -P {nginx_master_pid(host)}").stdout.split())


def live_config_digest(host):
    """sha256 of every live configuration file nginx reads from the role (not the staging copy)."""
    return host.run("cd /etc/nginx && sha256sum nginx.conf sites-enabled/* | LC_ALL=C sort").stdout


def journal_since(host, unit, cursor):
    return host.run(f"journalctl -u {unit} --after-cursor={shlex.quote(cursor)} --no-pager -o cat").stdout


def ws_probe(host, *args, name="localhost", port=443):
    """One WebSocket upgrade (or, with --no-upgrade, a plain GET) through nginx on 127.0.0.1 over TLS
    with `name` as Host and server name, and one message: the probe mode of tests/tools/wsclient.py
    (args: --path, --message, --header 'Name: value', --no-upgrade). Returns its JSON result."""
    result = _run(host, ["python3", f"{TOOLS}/wsclient.py", "probe", "--url", f"wss://127.0.0.1:{port}",
                         "--host-header", name, "--insecure", "--timeout", 30, *args])
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def loadgen(host, path, concurrency, requests, duration=60, host_header="localhost"):
    """A bounded burst through nginx (loopback, HTTPS); returns loadgen's JSON summary."""
    result = _run(host, ["python3", f"{TOOLS}/loadgen.py", "--url", "https://127.0.0.1", "--path", path,
                         "--host-header", host_header, "--concurrency", concurrency, "--requests", requests,
                         "--duration", duration, "--timeout", 15])
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)
