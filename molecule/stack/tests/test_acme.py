"""ACME end to end against pebble (Debian's RFC 8555 test CA) on the scenario's `acme` host:
issuance over HTTP-01 through the role's challenge location, the served chain verified against
pebble's root, no CA request on a no-op run, renewal by certbot's timer unit under load, a failed
renewal that keeps serving, several names on one certificate, a site switched from the local CA
to ACME and back. Every certificate is checked as served over TLS, never as a file."""
import json
import os
import shlex
import uuid

import pytest
import testinfra
from pydeploy_testlib import Load, journal_cursor, journal_lines, recap_changed, run_playbook, wait_for

testinfra_hosts = ["ansible://web"]
HTTPS = "https://127.0.0.1"
SHOP = ("shop.test", "www.shop.test", "api.shop.test")
PEBBLE_ROOT = "/tmp/pebble-root.pem"
RENEWAL_CONF = "/etc/letsencrypt/renewal/shop.conf"
HOOK_TAG = "pydeploy-nginx-acme"


@pytest.fixture(name="web")
def fixture_web(host):
    return host


@pytest.fixture(name="acme", scope="module")
def fixture_acme():
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_hosts([f"ansible://acme?ansible_inventory={inventory}"])[0]


def acme_name(acme):
    return acme.ansible.get_variables()["inventory_hostname"]


def served(web, name, *extra):
    """openssl's view of the certificate nginx serves for SNI `name` (subject, issuer, serial, SANs)."""
    cmd = (f"echo | timeout 15 openssl s_client -connect 127.0.0.1:443 -servername {shlex.quote(name)} "
           f"{' '.join(extra)} 2>&1")
    return web.run(cmd).stdout


def served_serial(web, name):
    out = web.run(f"echo | timeout 15 openssl s_client -connect 127.0.0.1:443 -servername {shlex.quote(name)} "
                  "2>/dev/null | openssl x509 -noout -serial").stdout.strip()
    assert out.startswith("serial="), out
    return out.split("=", 1)[1]


def served_text(web, name):
    return web.run(f"echo | timeout 15 openssl s_client -connect 127.0.0.1:443 -servername {shlex.quote(name)} "
                   "2>/dev/null | openssl x509 -noout -text").stdout


def pebble_root(web, acme):
    """pebble's current root, from its management interface (over its TLS, trusted through the file
    the role wrote from nginx_acme_ca_certificates)."""
    result = web.run(f"curl -sS --fail --cacert /etc/nginx/tls/acme-server-ca.pem -o {PEBBLE_ROOT} "
                     f"https://{acme_name(acme)}:15000/roots/0")
    assert result.rc == 0, result.stderr
    return PEBBLE_ROOT


def verifies_against(web, name, cafile):
    out = served(web, name, "-CAfile", cafile, "-verify_return_error", "-verify_hostname", name)
    return "Verify return code: 0 (ok)" in out, out


def force_renewal_due(web):
    """certbot renews a lineage when it expires within renew_before_expiry: make that always."""
    assert web.run(f"sed -i '1i renew_before_expiry = 36500 days' {RENEWAL_CONF}").rc == 0


def restore_renewal_conf(web):
    web.run(f"sed -i '/^renew_before_expiry = 36500 days$/d' {RENEWAL_CONF}")


def test_issued_over_http01_through_the_challenge_location(web, acme):
    """The converge obtained shop's certificate from pebble: the CA fetched the challenge from
    nginx's /.well-known/acme-challenge/ location on port 80, and every name of the site is served
    a chain that verifies against pebble's root (not the local CA's placeholder)."""
    root = pebble_root(web, acme)
    for name in SHOP:
        ok, out = verifies_against(web, name, root)
        assert ok, out[-2000:]
    # One certificate for the three names (SANs), the same serial whichever name is asked.
    text = served_text(web, "shop.test")
    for name in SHOP:
        assert f"DNS:{name}" in text, text
    assert len({served_serial(web, name) for name in SHOP}) == 1
    # The placeholder is gone: not the local CA's.
    ok, _ = verifies_against(web, "shop.test", "/etc/nginx/tls/local-ca.pem")
    assert not ok
    # pebble's validation requests went through the role's location and got the token (200).
    log = web.run("grep -h 'GET /.well-known/acme-challenge/' /var/log/nginx/access.log*").stdout
    assert any('" 200 ' in line and "host=shop.test" in line for line in log.splitlines()), log[-2000:]


def test_a_noop_run_asks_nothing_of_the_ca(web, acme):
    cursor = journal_cursor(acme, "pebble.service")
    before = web.run("stat -c %Y:%s /var/log/letsencrypt/letsencrypt.log").stdout
    result = run_playbook("web_only.yml")
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap_changed(result.stdout) == 0, result.stdout[-4000:]
    assert journal_lines(acme, cursor, unit="pebble.service") == []
    assert web.run("stat -c %Y:%s /var/log/letsencrypt/letsencrypt.log").stdout == before


def test_renewal_by_the_timer_unit_replaces_the_served_certificate_under_load(web, acme):
    """certbot.timer starts certbot.service; that unit's `certbot renew` renews the due lineage, the
    deploy hook runs nginx -t and reloads: the new serial is served, no request failed meanwhile."""
    timer = web.run("systemctl show -p Unit --value certbot.timer").stdout.strip()
    assert timer == "certbot.service" and web.service("certbot.timer").is_enabled
    old = served_serial(web, "shop.test")
    cursor = journal_cursor(web)
    force_renewal_due(web)
    try:
        with Load(web, url=HTTPS, path="/health/", concurrency=4, duration=300, requests=100000,
                  extra=("--host-header", "shop.test")) as load:
            renewal = web.run("systemctl start certbot.service")
    finally:
        restore_renewal_conf(web)
    assert renewal.rc == 0, renewal.stderr
    print("renewal under load:", json.dumps(load.result))
    assert load.result["failed"] == 0 and load.result["ok"] > 0, load.result
    wait_for(lambda: served_serial(web, "shop.test") != old, 30, "the renewed certificate")
    ok, out = verifies_against(web, "shop.test", pebble_root(web, acme))
    assert ok, out[-2000:]
    # The hook logs under its own identifier (logger -t): its line, after the cursor taken before the renewal.
    wait_for(lambda: journal_lines(web, cursor, identifier=HOOK_TAG, grep="nginx -t passed, reloading"), 30,
             "the deploy hook's journal line")
    assert web.service("nginx").is_running


def test_failed_renewal_keeps_serving_and_the_next_one_recovers(web, acme):
    old = served_serial(web, "shop.test")
    ca = acme_name(acme)
    cursor = journal_cursor(web, "certbot.service")
    marker = f"pydeploy-test-{uuid.uuid4().hex[:8]}"
    force_renewal_due(web)
    try:
        # The CA unreachable: its name points at a closed port on the web host's loopback.
        assert web.run(f"echo '127.0.0.1 {ca} # {marker}' >> /etc/hosts").rc == 0
        failed = web.run("systemctl start certbot.service")
        assert failed.rc != 0
        assert web.run("systemctl is-failed certbot.service").stdout.strip() == "failed"
        trace = "\n".join(journal_lines(web, cursor, unit="certbot.service"))
        assert "Failed to renew certificate shop" in trace, trace[-3000:]
        # The old certificate keeps serving, nginx runs and answers.
        assert served_serial(web, "shop.test") == old
        assert web.service("nginx").is_running
        status = web.run("curl -sk -o /dev/null -w '%{http_code}' --resolve shop.test:443:127.0.0.1 "
                         "https://shop.test/health/").stdout
        assert status == "200", status
    finally:
        web.run(f"grep -v -F '# {marker}' /etc/hosts > /tmp/hosts.{marker} && cat /tmp/hosts.{marker} > /etc/hosts")
    try:
        recovered = web.run("systemctl start certbot.service")
    finally:
        restore_renewal_conf(web)
    assert recovered.rc == 0, recovered.stderr
    wait_for(lambda: served_serial(web, "shop.test") != old, 30, "the certificate of the recovered renewal")
    ok, out = verifies_against(web, "shop.test", pebble_root(web, acme))
    assert ok, out[-2000:]


def test_a_site_switched_from_the_local_ca_to_acme_and_back(web, acme):
    local_ca = "/etc/nginx/tls/local-ca.pem"
    ok, out = verifies_against(web, "blog.test", local_ca)
    assert ok, out[-2000:]
    cursor = journal_cursor(acme, "pebble.service")
    try:
        result = run_playbook("web_only.yml", {"pydeploy_test_blog_certificate": "acme"})
        assert result.returncode == 0, result.stdout[-4000:]
        ok, out = verifies_against(web, "blog.test", pebble_root(web, acme))
        assert ok, out[-2000:]
        assert journal_lines(acme, cursor, unit="pebble.service"), "pebble was never asked"
    finally:
        back = run_playbook("web_only.yml")
    assert back.returncode == 0, back.stdout[-4000:]
    ok, out = verifies_against(web, "blog.test", local_ca)
    assert ok, out[-2000:]
    # certbot's lineage stays for a later switch; nginx no longer reads it.
    assert web.file("/etc/letsencrypt/live/blog/fullchain.pem").exists
    assert not web.file("/etc/nginx/tls/blog/fullchain.pem").is_symlink
