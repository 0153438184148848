"""The app tier of the three-tier stack, seen from the other tiers (issue 14, item 1).

The app server listens on TCP (uvicorn_worker_bind_tcp) for nginx on the web host. Only the web
tier (and loopback) may connect: the .socket unit's IP access list drops everyone else, so nginx's
TLS, limits and buffering cannot be bypassed, nor X-Forwarded-Proto forged. Proven from both sides
with the same raw HTTP request: the web host is served, the db host (outside the web group) is not.
"""
import os
import shlex

import pytest
import testinfra

testinfra_hosts = ["ansible://web"]
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
PORT = 8000  # uvicorn_worker_bind_tcp in molecule.yml
# One GET over a plain TCP connection; prints the status line, or the error (rc 1) when the
# connection cannot be made within 3 s (dropped SYNs time out; nothing answers).
PROBE = ("import socket, sys\n"
         "try:\n"
         "    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
         "    s.sendall(b'GET /health/ HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n')\n"
         "    print(s.recv(128).decode('latin-1').split('\\r\\n')[0])\n"
         "except OSError as exc:\n"
         "    print(type(exc).__name__, exc)\n"
         "    sys.exit(1)\n")


def tier(group):
    return testinfra.get_hosts([f"ansible://{group}?ansible_inventory={INVENTORY}"])


def address(host):
    return host.run("hostname -I").stdout.split()[0]


def probe(client, target_ip):
    return client.run(f"python3 -c {shlex.quote(PROBE)} {target_ip} {PORT}")


@pytest.fixture(scope="module", name="app_addresses")
def fixture_app_addresses():
    addresses = [address(h) for h in tier("app")]
    assert len(addresses) == 2, addresses
    return addresses


def test_web_host_is_served_over_tcp(host, app_addresses):
    for ip in app_addresses:
        result = probe(host, ip)
        assert result.rc == 0 and result.stdout.startswith("HTTP/1.1 200"), (ip, result.stdout, result.stderr)


def test_host_outside_the_web_group_is_refused(app_addresses):
    (db,) = tier("db")
    for ip in app_addresses:
        result = probe(db, ip)
        print(f"db -> {ip}:{PORT}: {result.stdout.strip()}")
        assert result.rc != 0 and "HTTP/" not in result.stdout, (ip, result.stdout)


def test_app_host_itself_is_served_on_its_address(app_addresses):
    # The host's own address stays allowed (the binds' addresses are in the allow list).
    for app in tier("app"):
        result = probe(app, address(app))
        assert result.rc == 0 and result.stdout.startswith("HTTP/1.1 200"), result.stdout
