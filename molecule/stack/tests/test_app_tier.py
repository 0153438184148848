"""The app tier of the three-tier stack, seen from the other tiers (issue 14, items 1 and 3).

The app server listens on TCP (uvicorn_worker_bind_tcp) for nginx on the web host. Only the web
tier (and loopback) may connect: the .socket unit's IP access list drops everyone else, so nginx's
TLS, limits and buffering cannot be bypassed, nor X-Forwarded-Proto forged. Proven from both sides
with the same request: the web host is served, the db host (outside the web group) is not.

And the connection is TLS (uvicorn_worker_tls_*, nginx_upstream_tls; upstream_tls.yml makes the
operator's files): each app server presents a certificate of the test CA for its own name and the
name nginx verifies, and serves only clients presenting a certificate of that CA. Plain HTTP and
TLS without a client certificate get no answer.
"""
import os
import shlex

import pytest
import testinfra

testinfra_hosts = ["ansible://web"]
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
PORT = 8000  # uvicorn_worker_bind_tcp in molecule.yml
TLS_DIR = "/etc/ssl/pydeploy-upstream"  # upstream_tls.yml
UPSTREAM_NAME = "app.internal"  # pydeploy_test_upstream_name: what nginx verifies
# One GET over a TCP connection, plain or (with a name and a CA file) TLS verifying the server's
# chain and name, with an optional client certificate and key; prints the status line, or the
# error (rc 1) when the connection or the handshake fails (dropped SYNs time out after 3 s: the
# kernel answers a SYN however busy the host is). Once connected, the handshake and the answer may
# take up to 30 s (the app's workers on a machine busy to 100 %: 3 s were not always enough).
PROBE = ("import socket, ssl, sys\n"
         "ip, port, name, ca, cert, key = (sys.argv[1:] + [''] * 6)[:6]\n"
         "try:\n"
         "    s = socket.create_connection((ip, int(port)), timeout=3)\n"
         "    s.settimeout(30)\n"
         "    if name:\n"
         "        ctx = ssl.create_default_context(cafile=ca)\n"
         "        if cert:\n"
         "            ctx.load_cert_chain(cert, key)\n"
         "        s = ctx.wrap_socket(s, server_hostname=name)\n"
         "    s.sendall(b'GET /health/ HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n')\n"
         "    print(s.recv(128).decode('latin-1').split('\\r\\n')[0])\n"
         "except OSError as exc:\n"
         "    print(type(exc).__name__, exc)\n"
         "    sys.exit(1)\n")


def tier(group):
    return testinfra.get_hosts([f"ansible://{group}?ansible_inventory={INVENTORY}"])


def address(host):
    return host.run("hostname -I").stdout.split()[0]


def probe(client, target_ip, name="", client_cert=True):
    args = [target_ip, str(PORT)]
    if name:
        args += [name, f"{TLS_DIR}/ca.pem"]
        if client_cert:
            args += [f"{TLS_DIR}/client.crt", f"{TLS_DIR}/client.key"]
    return client.run(f"python3 -c {shlex.quote(PROBE)} " + " ".join(shlex.quote(a) for a in args))


@pytest.fixture(scope="module", name="apps")
def fixture_apps():
    """(address, host name) of each app host."""
    apps = [(address(h), h.run("hostname").stdout.strip()) for h in tier("app")]
    assert len(apps) == 2, apps
    return apps


@pytest.fixture(scope="module", name="app_addresses")
def fixture_app_addresses(apps):
    return [ip for ip, _ in apps]


def test_web_host_is_served_over_tls_with_its_client_certificate(host, apps):
    # Verified as nginx does (the shared name) and by each host's own name.
    for ip, name in apps:
        for server_name in (UPSTREAM_NAME, name):
            result = probe(host, ip, server_name)
            assert result.rc == 0 and result.stdout.startswith("HTTP/1.1 200"), (ip, server_name, result.stdout)


def test_plain_http_to_the_app_port_gets_no_answer(host, app_addresses):
    for ip in app_addresses:
        result = probe(host, ip)
        print(f"plain HTTP web -> {ip}:{PORT}: {result.stdout.strip()!r}")
        # Connected (the web host is allowed), then nothing an HTTP client could read.
        assert "HTTP/" not in result.stdout and "timed out" not in result.stdout, (ip, result.stdout)


def test_tls_without_a_client_certificate_is_refused(host, apps):
    # The same handshake with the web host's client certificate is served; without it the server
    # ends the connection (an alert or a close): no HTTP answer.
    for ip, name in apps:
        result = probe(host, ip, name, client_cert=False)
        print(f"TLS without a client certificate web -> {ip}:{PORT}: {result.stdout.strip()!r}")
        assert "HTTP/" not in result.stdout and "timed out" not in result.stdout, (ip, result.stdout)
        assert probe(host, ip, name).stdout.startswith("HTTP/1.1 200"), ip


def test_a_server_certificate_is_checked_against_its_name(host, apps):
    # app1's certificate does not carry app2's name: a client verifying names is not fooled.
    (ip1, _), (_, name2) = apps
    result = probe(host, ip1, name2)
    assert result.rc != 0 and "CERTIFICATE_VERIFY_FAILED" in result.stdout, result.stdout


def test_host_outside_the_web_group_is_refused(app_addresses):
    (db,) = tier("db")
    for ip in app_addresses:
        result = probe(db, ip)
        print(f"db -> {ip}:{PORT}: {result.stdout.strip()}")
        assert result.rc != 0 and "HTTP/" not in result.stdout, (ip, result.stdout)


def test_app_host_itself_is_served_on_its_address():
    # The host's own address stays allowed (the binds' addresses are in the allow list); over TLS
    # with the host's client certificate, the one the deploy's health check presents.
    for app in tier("app"):
        name = app.run("hostname").stdout.strip()
        result = probe(app, address(app), name)
        assert result.rc == 0 and result.stdout.startswith("HTTP/1.1 200"), result.stdout
