"""The web tier seen from another host of the scenario (app1): only the names nginx serves get an
answer. Unknown Host headers are closed on port 80 (no redirect that reflects them), unknown SNI
is refused at the TLS handshake, a served name works."""
import os
import shlex

import pytest
import testinfra

testinfra_hosts = ["ansible://web"]


@pytest.fixture(name="client", scope="module")
def fixture_client():
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_hosts([f"ansible://app?ansible_inventory={inventory}"])[0]


def web_address(web, client):
    name = web.ansible.get_variables()["inventory_hostname"]
    address = client.run(f"getent ahostsv4 {shlex.quote(name)}").stdout.split()[0]
    assert address
    return address


def test_unknown_host_on_port_80_is_closed_across_hosts(host, client):
    address = web_address(host, client)
    result = client.run(f"curl -sS -o /dev/null -D - --max-time 10 -H 'Host: evil.example' http://{address}/")
    # 444: nginx closes the connection without a reply; curl sees an empty reply (52) or, when the
    # close reaches it as a reset, a receive failure (56). Never an HTTP status.
    assert result.rc in (52, 56), (result.rc, result.stdout, result.stderr)
    assert "location" not in result.stdout.lower()
    # A served name gets its own redirect.
    result = client.run(f"curl -sS -o /dev/null -D - --max-time 10 -H 'Host: shop.test' http://{address}/x")
    assert result.rc == 0 and "location: https://shop.test/x" in result.stdout.lower(), result.stdout


@pytest.mark.parametrize("sni", ["evil.example", None])
def test_unknown_or_missing_sni_is_refused_across_hosts(host, client, sni):
    address = web_address(host, client)
    flag = f"-servername {sni}" if sni else "-noservername"
    out = client.run(f"echo | timeout 15 openssl s_client -connect {address}:443 {flag} 2>&1").stdout
    assert "BEGIN CERTIFICATE" not in out and "alert" in out, out[-1500:]


def test_a_served_name_completes_the_handshake_across_hosts(host, client):
    address = web_address(host, client)
    result = client.run(f"curl -sS -k -o /dev/null -w '%{{http_code}}' --max-time 10 "
                        f"--resolve shop.test:443:{address} https://shop.test/health/")
    assert result.rc == 0 and result.stdout == "200", (result.stdout, result.stderr)


def test_without_cap_sys_nice_nginx_serves_at_the_normal_priority(host):
    """This scenario's containers lack CAP_SYS_NICE (single's have it): nginx_worker_priority -5 cannot be
    set, the workers say so in the error log and serve at 0 (the tests above show the sites answer)."""
    assert "worker_priority -5;" in host.file("/etc/nginx/nginx.conf").content_string
    workers = host.run("pgrep -u www-data -x nginx").stdout.split()
    assert workers
    assert {host.run(f"ps -o ni= -p {pid}").stdout.strip() for pid in workers} == {"0"}
    assert "setpriority(-5) failed" in host.run("grep setpriority /var/log/nginx/error.log").stdout
