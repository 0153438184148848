"""nginx in front of Gunicorn on a live host: TLS by handshake, the redirect, static and media from
disk, WebSocket pass-through, rate limits, and the check-then-reload chain.

Every request goes through nginx on the container's loopback (curl, openssl, tests/tools/).
Tests that run the playbook again come last: they change the live state.
"""
import json
import pathlib
import re
import shlex
import tempfile
import uuid

import pytest
from pydeploy_testlib import (http_get, journal_lines, journal_suppressed, recap_changed, run_load, run_playbook,
                              wait_for)
from pydeploy_testlib.release import make_release
from pydeploy_testlib.nginx import (file_certificate_sha256, handshake, journal_cursor, journal_since,
                                    live_config_digest, loadgen, nginx_master_pid, nginx_worker_pids, request,
                                    served_certificate_sha256, ws_probe)

GUNICORN = "gunicorn-demo.service"
WEB = "pydeploy.django_stack.web"
SITES = ("localhost", "files.test", "vault.test")
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}
# Mozilla's intermediate TLS 1.2 suites, guidelines 6 (the role's nginx_ssl_ciphers): ECDHE only.
MOZILLA_INTERMEDIATE_TLS12 = {
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
}


def assert_security_headers(response, hsts=None):
    """Each security header exactly once, with nginx's value (and HSTS only when given)."""
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == [value], (name, response)
    if hsts is not None:
        assert response.headers.get("strict-transport-security") == [hsts], response


def static_css(host):
    """The hashed stylesheet the demo page links to (collectstatic's manifest name)."""
    page = request(host, "/")
    assert page.status == 200, page
    match = re.search(r'href="(/static/demo/site\.[0-9a-f]+\.css)"', page.body)
    assert match, page.body[:500]
    return match.group(1)


def test_nginx_runs_only_the_managed_sites(host):
    assert host.service("nginx").is_running and host.service("nginx").is_enabled
    assert host.run("nginx -t").rc == 0
    enabled = set(host.run("ls -A /etc/nginx/sites-enabled").stdout.split())
    assert enabled == {"demo.conf", "files.conf", "tlsup.conf", "vault.conf"}, enabled
    assert host.socket("tcp://0.0.0.0:443").is_listening
    assert host.socket("tcp://0.0.0.0:80").is_listening
    # The app server listens on loopback and its unix socket only: nginx is the only way in.
    assert host.socket("tcp://127.0.0.1:8001").is_listening
    assert not host.socket("tcp://0.0.0.0:8001").is_listening


@pytest.mark.parametrize("flag,protocol", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
@pytest.mark.parametrize("servername", SITES)
def test_modern_tls_handshakes_succeed(host, flag, protocol, servername):
    rc, out, negotiated, cipher = handshake(host, flag, servername=servername)
    assert rc == 0, out[-1500:]
    assert negotiated == protocol and cipher, out[-1500:]
    if protocol == "TLSv1.2":
        assert cipher in MOZILLA_INTERMEDIATE_TLS12, cipher
        # A client offering only a suite outside the list gets no handshake.
        rc, out, negotiated, _ = handshake(host, flag, "-cipher", "ECDHE-ECDSA-AES128-SHA", servername=servername)
        assert rc != 0 and negotiated is None and "alert handshake failure" in out, out[-1500:]


@pytest.mark.parametrize("flag", ["-tls1_1", "-tls1"])
def test_old_tls_is_refused_by_the_server(host, flag):
    # OpenSSL 3 refuses TLS < 1.2 on its own at the default security level: the client is
    # told to allow it (SECLEVEL=0), and a control server that accepts it proves the client can.
    client = (flag, "-cipher", "DEFAULT@SECLEVEL=0")
    # In the background with every descriptor of the session redirected (sleep's too): over SSH the
    # command returns only when nothing holds the session's output open, 8 s later, when the server
    # (its input at end) had already quit.
    control = host.run(
        "(sleep 8 | timeout 10 openssl s_server -accept 127.0.0.1:14443 -naccept 1 "
        f"-cert /etc/nginx/tls/demo/fullchain.pem -key /etc/nginx/tls/demo/privkey.pem {flag} "
        "-cipher DEFAULT@SECLEVEL=0) > /tmp/tls-control.log 2>&1 < /dev/null &")
    assert control.rc == 0
    wait_for(lambda: host.socket("tcp://127.0.0.1:14443").is_listening, 10, "control TLS server")
    rc, out, negotiated, cipher = handshake(host, *client, port=14443)
    assert negotiated == {"-tls1_1": "TLSv1.1", "-tls1": "TLSv1"}[flag], f"control handshake failed:\n{out[-1500:]}"
    rc, out, negotiated, cipher = handshake(host, *client)
    assert rc != 0 and negotiated is None, out[-1500:]
    assert "alert protocol version" in out, out[-1500:]


@pytest.mark.parametrize("name", SITES)
def test_http_redirects_to_https_with_headers(host, name):
    response = request(host, "/some/path/?q=1", name=name, scheme="http")
    assert response.status == 301, response
    assert response.header("location") == f"https://{name}/some/path/?q=1"
    assert_security_headers(response)
    # HSTS is never sent over plain HTTP.
    assert response.header("strict-transport-security") is None


def test_acme_challenge_path_is_not_redirected(host):
    token = f"probe-{uuid.uuid4().hex}"
    path = f"/var/www/acme/.well-known/acme-challenge/{token}"
    assert host.run(f"echo {token}-content > {path}").rc == 0
    try:
        response = request(host, f"/.well-known/acme-challenge/{token}", name="files.test", scheme="http")
        assert response.status == 200, response
        assert response.body.strip() == f"{token}-content"
    finally:
        host.run(f"rm -f {path}")


@pytest.mark.parametrize("name", SITES)
def test_app_answers_over_tls_with_forwarded_proto(host, name):
    response = request(host, "/health/", name=name, http2=True)
    assert response.status == 200, response
    assert response.http_version == "2"
    body = response.json()
    # request.is_secure() in Django: X-Forwarded-Proto reached it through Gunicorn.
    assert body["secure"] is True and body["scheme"] == "https" and body["db"] == "ok", body
    page = request(host, "/", name=name)
    assert page.status == 200 and 'id="scheme">https<' in page.body, page.body[:500]


def test_security_headers_on_success_and_errors(host):
    ok = request(host, "/health/")
    missing = request(host, f"/static/missing-{uuid.uuid4().hex}.css")
    assert ok.status == 200 and missing.status == 404
    for response in (ok, missing):
        assert_security_headers(response)
        assert response.header("server") == "nginx"  # server_tokens off: no version
    # Self-signed demo site: no HSTS (browsers ignore it on untrusted certificates).
    assert ok.header("strict-transport-security") is None
    for name in ("files.test", "vault.test"):
        for response in (request(host, "/health/", name=name), request(host, "/static/nope.css", name=name)):
            assert_security_headers(response, hsts="max-age=63072000")


def test_oversized_body_is_refused_by_nginx(host):
    # client_max_body_size (10m): nginx answers 413 itself, with the headers, before Gunicorn.
    cursor = journal_cursor(host, GUNICORN)
    marker = f"body-{uuid.uuid4().hex}"
    result = host.run(
        "head -c 11000000 /dev/zero | curl -sS -k -o /dev/null -D - --max-time 30 --resolve localhost:443:127.0.0.1 "
        f"-H 'Content-Type: application/octet-stream' --data-binary @- 'https://localhost/?probe={marker}'")
    assert result.stdout.startswith("HTTP/2 413") or result.stdout.startswith("HTTP/1.1 413"), result.stdout
    assert "x-content-type-options: nosniff" in result.stdout.lower(), result.stdout
    assert marker not in journal_since(host, GUNICORN, cursor)


def test_static_and_media_come_from_disk_not_from_gunicorn(host):
    css = static_css(host)
    upload = f"uploads-{uuid.uuid4().hex[:8]}"
    upload_dir = f"/srv/demo/shared/media/{upload}"
    media_body = "media-body line\n" * 200
    # As the app would write an upload: as the app user, with Gunicorn's umask (0027).
    assert host.run(f"runuser -u demo -- sh -c 'umask 027; mkdir {upload_dir} && "
                    f"yes media-body line | head -n 200 > {upload_dir}/note.txt'").rc == 0
    # Neither "other" nor the app's group lets nginx in: only the role's default ACL does.
    assert host.file(upload_dir).mode == 0o750 and "demo" not in host.user("www-data").groups
    # A text file big enough for gzip (the demo's stylesheet is below gzip_min_length).
    probe = f"/srv/demo/shared/static/gzip-probe-{uuid.uuid4().hex[:8]}.txt"
    assert host.run(f"yes static-body line | head -n 200 > {probe}").rc == 0
    markers = {kind: f"{kind}-{uuid.uuid4().hex}" for kind in ("static", "media", "dynamic")}
    cursor = journal_cursor(host, GUNICORN)
    try:
        static = request(host, f"{css}?probe={markers['static']}")
        static_gz = request(host, f"/static/{probe.rsplit('/', 1)[1]}?probe={markers['static']}",
                            headers={"Accept-Encoding": "gzip"}, body=False)
        media = request(host, f"/media/{upload}/note.txt?probe={markers['media']}")
        media_gz = request(host, f"/media/{upload}/note.txt?probe={markers['media']}",
                           headers={"Accept-Encoding": "gzip"}, body=False)
        dynamic = request(host, f"/health/?probe={markers['dynamic']}", headers={"Accept-Encoding": "gzip"}, body=False)
    finally:
        host.run(f"rm -rf {upload_dir} {probe}")
    assert static.status == 200 and static.header("content-type") == "text/css", static
    assert static.header("cache-control") == "max-age=2592000" and static.header("expires"), static
    assert_security_headers(static)
    assert static_gz.status == 200 and static_gz.header("content-encoding") == "gzip", static_gz
    assert media.status == 200 and media.body == media_body, media
    assert media.header("cache-control") == "max-age=604800" and media.header("expires"), media
    assert media.header("content-security-policy") == "default-src 'none'; sandbox", media
    assert_security_headers(media)
    assert media_gz.header("content-encoding") == "gzip", media_gz
    # The app's responses stay uncompressed by default (BREACH), and carry no cache headers of nginx.
    assert dynamic.status == 200 and dynamic.header("content-encoding") is None, dynamic
    assert dynamic.header("expires") is None, dynamic
    # Gunicorn logs every request it serves (gunicorn_access_log in this scenario): the dynamic
    # one shows up, the static and media ones never do.
    wait_for(lambda: markers["dynamic"] in journal_since(host, GUNICORN, cursor), 30, "the dynamic request in the log")
    log = journal_since(host, GUNICORN, cursor)
    assert markers["static"] not in log and markers["media"] not in log, log


def test_websocket_upgrade_is_passed_through(host):
    unit = f"pydeploy-ws-echo-{uuid.uuid4().hex[:6]}"
    started = host.run(
        f"systemd-run --unit={unit} --property=RuntimeMaxSec=120 --property=RuntimeDirectory=pydeploy-ws-echo "
        "--property=RuntimeDirectoryMode=0755 "
        "python3 /usr/local/lib/pydeploy-tests/ws_echo.py --unix /run/pydeploy-ws-echo/echo.sock --lifetime 110")
    assert started.rc == 0, started.stderr
    try:
        wait_for(lambda: host.file("/run/pydeploy-ws-echo/echo.sock").is_socket, 20, "the WebSocket test upstream")
        message = f"ping-{uuid.uuid4().hex[:8]}"
        result = ws_probe(host, "--path", "/ws/chat/", "--message", message,
                          "--header", "X-Forwarded-For: 203.0.113.9")
        assert result["status"] == 101, result
        assert result["accept_ok"] is True, result
        assert result["echo"] == message and result["echo_opcode"] == 1, result
        seen = result["headers"]
        assert seen["x-echo-request-line"] == "GET /ws/chat/ HTTP/1.1"
        assert seen["x-echo-upgrade"].lower() == "websocket"
        assert seen["x-echo-connection"].lower() == "upgrade"
        assert seen["x-echo-x-forwarded-proto"] == "https"
        assert seen["x-echo-host"] == "localhost"
        # A client's own X-Forwarded-For is replaced by the address nginx saw.
        assert seen["x-echo-x-forwarded-for"] == "127.0.0.1" and seen["x-echo-x-real-ip"] == "127.0.0.1"
        # Without an upgrade the map sends "Connection: close" and no Upgrade header.
        plain = ws_probe(host, "--path", "/ws/chat/", "--no-upgrade")
        assert plain["status"] == 426, plain
        assert plain["headers"]["x-echo-connection"] == "close" and plain["headers"]["x-echo-upgrade"] == ""
    finally:
        host.run(f"systemctl stop {unit}")


def test_requests_within_the_limit_pass_and_static_is_not_limited(host):
    # /sync/ has its own zone in this scenario (2r/s, burst 5) and nothing else uses it before
    # this test: 5 requests fit in the burst however fast they come.
    statuses = [request(host, "/sync/").status for _ in range(5)]
    assert statuses == [200] * 5, statuses
    burst = loadgen(host, static_css(host), concurrency=50, requests=50)
    assert burst["statuses"] == {"200": 50}, burst


def test_a_burst_above_rate_and_burst_gets_429(host):
    burst = loadgen(host, "/sync/", concurrency=50, requests=50)
    print("burst of 50 on /sync/ (2r/s, burst 5):", burst["statuses"])
    assert set(burst["statuses"]) <= {"200", "429"}, burst
    assert burst["statuses"].get("429", 0) > 0, burst
    assert burst["statuses"].get("200", 0) > 0, burst


def test_every_request_is_logged_exactly_once(host):
    """A bounded load through nginx with one marker: nginx's access log and Gunicorn's (on in this
    scenario, to journald) hold exactly one line per request, and journald suppressed nothing."""
    total, marker = 3000, f"logprobe-{uuid.uuid4().hex}"
    journal = journal_cursor(host)  # the whole journal: journald's own reports too
    load = run_load(host, url="https://127.0.0.1", path=f"/health/?{marker}", concurrency=8, requests=total,
                    duration=540, extra=("--host-header", "vault.test", "--keepalive"))
    print("log lines under load:", json.dumps(load))
    assert load["statuses"] == {"200": total} and load["failed"] == 0, load

    def nginx_lines():
        return int(host.run(f"grep -c -F -- {marker} /var/log/nginx/access.log").stdout.strip() or 0)

    def gunicorn_lines():
        return len(journal_lines(host, journal, unit=GUNICORN, grep=marker))

    # Lines may land a moment after the responses; never more than one per request.
    wait_for(lambda: nginx_lines() >= total and gunicorn_lines() >= total, 60, "every request in both logs")
    print(f"log lines: nginx {nginx_lines()}, gunicorn {gunicorn_lines()} of {total} requests")
    assert nginx_lines() == total
    assert gunicorn_lines() == total
    assert journal_suppressed(host, journal) == []


def _curl(host, *args):
    """curl's exit code and output (status line and headers on stdout), never raising."""
    cmd = "curl -sS -o /dev/null -D - --max-time 10 " + " ".join(shlex.quote(a) for a in args)
    result = host.run(cmd)
    return result.rc, result.stdout + result.stderr


def _own_address(host):
    """The container's address on its network: a listener that is not a site's IP name."""
    return host.run("hostname -I").stdout.split()[0]


def test_unknown_host_on_port_80_is_closed_without_a_redirect(host):
    # Before the catch-all, the first site answered and reflected the Host into Location:.
    for target in ("http://127.0.0.1/", f"http://{_own_address(host)}/"):
        rc, out = _curl(host, "-H", "Host: evil.example", target)
        # curl: empty reply (52) or reset (56): nginx closed the connection without an answer (444).
        assert rc in (52, 56), (target, rc, out)
        assert "location:" not in out.lower(), out
    # A site's own name still gets its redirect.
    assert request(host, "/x", name="vault.test", scheme="http").header("location") == "https://vault.test/x"


def test_unknown_sni_is_refused_at_the_handshake(host):
    address = _own_address(host)
    out = host.run(f"echo | timeout 15 openssl s_client -connect {address}:443 -servername evil.example 2>&1").stdout
    assert "unrecognized name" in out and "BEGIN CERTIFICATE" not in out, out[-1500:]
    # No SNI at all (an address nobody named): refused too.
    out = host.run(f"echo | timeout 15 openssl s_client -connect {address}:443 -noservername 2>&1").stdout
    assert "BEGIN CERTIFICATE" not in out, out[-1500:]
    # A known name on the same listener completes the handshake with its own certificate.
    rc, out = _curl(host, "-k", "--resolve", f"vault.test:443:{address}", "https://vault.test/health/")
    assert rc == 0 and out.startswith("HTTP/"), out
    assert served_certificate_sha256(host, "vault.test") == file_certificate_sha256(host, "/etc/nginx/tls/vault/fullchain.pem")


def test_a_site_named_by_address_answers_without_sni_and_unknown_hosts_are_closed(host):
    # 127.0.0.1 is a server name of "demo": clients reaching it send no SNI and get demo's certificate.
    rc, out = _curl(host, "-k", "https://127.0.0.1/health/")
    assert rc == 0 and " 200" in out.splitlines()[0], out
    # By Host header, the other sites answer on that address too ...
    rc, out = _curl(host, "-k", "-H", "Host: vault.test", "https://127.0.0.1/health/")
    assert rc == 0 and " 200" in out.splitlines()[0], out
    # ... and an unknown Host is closed (444), not passed to Django.
    rc, out = _curl(host, "-k", "-H", "Host: evil.example", "https://127.0.0.1/health/")
    assert rc in (52, 92, 56), (rc, out)


def test_local_ca_signs_proper_leaves_one_file_to_trust(host):
    """The demo site's certificate verifies against the local CA alone, with strict X.509 checks
    (Authority Key Identifier, basicConstraints, key usage: what Python 3.13 and rustls demand)."""
    assert host.file("/etc/nginx/tls/local-ca.pem").exists
    assert host.file("/etc/nginx/tls/ca/ca.key").mode == 0o600
    for name in ("localhost", "127.0.0.1", "single"):
        rc, out = _curl(host, "--cacert", "/etc/nginx/tls/local-ca.pem", "--resolve", f"{name}:443:127.0.0.1",
                        f"https://{name}/health/")
        assert rc == 0 and " 200" in out.splitlines()[0], (name, out)
    script = (
        "import socket, ssl\n"
        "ctx = ssl.create_default_context(cafile='/etc/nginx/tls/local-ca.pem')\n"
        "ctx.verify_flags |= ssl.VERIFY_X509_STRICT\n"
        "with socket.create_connection(('127.0.0.1', 443), timeout=10) as raw:\n"
        "    with ctx.wrap_socket(raw, server_hostname='localhost') as tls:\n"
        "        print('verified', tls.version())\n")
    result = host.run(f"python3 -c {shlex.quote(script)}")
    assert result.rc == 0 and result.stdout.startswith("verified"), result.stderr[-1500:]
    text = host.run("openssl x509 -noout -text -in /etc/nginx/tls/demo/fullchain.pem").stdout
    for extension in ("Authority Key Identifier", "CA:FALSE", "Digital Signature", "TLS Web Server Authentication"):
        assert extension in text, (extension, text)


def test_dhe_suites_are_no_longer_offered(host):
    # vault.test has an RSA certificate: DHE-RSA suites would be negotiable if offered (Mozilla 5.7).
    rc, out, negotiated, _ = handshake(host, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256", servername="vault.test")
    assert rc != 0 and negotiated is None, out[-1500:]
    rc, out, negotiated, cipher = handshake(host, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256",
                                            servername="vault.test")
    assert negotiated == "TLSv1.2" and cipher == "ECDHE-RSA-AES128-GCM-SHA256", out[-1500:]


def test_post_quantum_hybrid_group_is_kept_where_openssl_has_it(host):
    version = host.run("openssl version").stdout.split()[1]
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) < (3, 5):
        # OpenSSL before 3.5 has no ML-KEM: the classic groups, X25519 first.
        out = host.run("echo | timeout 15 openssl s_client -connect 127.0.0.1:443 -servername localhost "
                       "-tls1_3 -groups X25519:P-256 2>&1").stdout
        assert re.search(r"(Server Temp Key|Negotiated TLS1.3 group): X25519", out), out[-1500:]
        return
    out = host.run("echo | timeout 15 openssl s_client -connect 127.0.0.1:443 -servername localhost "
                   "-tls1_3 -groups X25519MLKEM768:X25519 2>&1").stdout
    assert "X25519MLKEM768" in out, out[-1500:]


def test_client_sent_forwarding_headers_are_cleared(host):
    unit = f"pydeploy-ws-echo-{uuid.uuid4().hex[:6]}"
    started = host.run(
        f"systemd-run --unit={unit} --property=RuntimeMaxSec=60 --property=RuntimeDirectory=pydeploy-ws-echo "
        "--property=RuntimeDirectoryMode=0755 "
        "python3 /usr/local/lib/pydeploy-tests/ws_echo.py --unix /run/pydeploy-ws-echo/echo.sock --lifetime 50")
    assert started.rc == 0, started.stderr
    try:
        wait_for(lambda: host.file("/run/pydeploy-ws-echo/echo.sock").is_socket, 20, "the WebSocket test upstream")
        result = ws_probe(host, "--path", "/ws/fwd/", "--no-upgrade",
                          "--header", "X-Forwarded-Host: evil.example", "--header", "Forwarded: for=203.0.113.9;proto=https",
                          "--header", "X-Forwarded-Port: 8443", "--header", "X-Forwarded-Ssl: on",
                          "--header", "X-Forwarded-Protocol: ssl", "--header", "X-Forwarded-Proto: http")
        seen = result["headers"]
        for name in ("x-echo-x-forwarded-host", "x-echo-forwarded", "x-echo-x-forwarded-port", "x-echo-x-forwarded-ssl",
                     "x-echo-x-forwarded-protocol"):
            assert seen[name] == "", (name, seen)
        assert seen["x-echo-x-forwarded-proto"] == "https" and seen["x-echo-host"] == "localhost", seen
    finally:
        host.run(f"systemctl stop {unit}")


def test_websocket_handshakes_are_rate_limited_per_client(host):
    # Plain requests to the WebSocket location count like handshakes (5r/s, burst 10 by default);
    # nothing listens behind it here, so the ones let through get 502, the excess 429.
    burst = loadgen(host, "/ws/limited/", concurrency=30, requests=30)
    print("30 handshakes at once on /ws/:", burst["statuses"])
    assert burst["statuses"].get("429", 0) > 0, burst
    assert set(burst["statuses"]) <= {"429", "502", "426"}, burst


def test_concurrent_requests_per_client_are_limited_and_slow_bodies_time_out(host):
    """100 requests held open by one client (headers sent, body never): the next one gets 429,
    also on a static file (limit_conn on every location); nginx drops the held ones after
    client_body_timeout (15 s; nginx's default would keep them a minute), before the tool stops
    waiting after 40 s, without the app ever seeing them."""
    css = static_css(host)
    for extra in ("/health/", css):
        result = host.run(f"python3 /usr/local/lib/pydeploy-tests/hold_requests.py --name vault.test --path /health/ "
                          f"--extra-path {extra} --held 100 --wait 40")
        assert result.rc == 0, result.stderr[-1500:]
        held = json.loads(result.stdout)
        print(f"held requests, extra {extra}:", held)
        assert held["extra"] == "429", held
        # Ended by nginx: a 408, or the connection reset (reset_timedout_connection); never still open.
        assert "open" not in held["held_ended"] and sum(held["held_ended"].values()) == 100, held


def test_upstream_tls_verifies_the_app_servers_certificate(host):
    """Site tlsup proxies over TLS to 127.0.0.1:9443: a server whose certificate chains to the app
    servers' CA and names app.internal is served; one with another name is refused (502)."""
    def serve(name):
        unit = f"pydeploy-tls-up-{uuid.uuid4().hex[:6]}"
        started = host.run(
            f"systemd-run --unit={unit} --property=RuntimeMaxSec=90 python3 /usr/local/lib/pydeploy-tests/tls_http.py "
            f"--port 9443 --cert /etc/ssl/pydeploy-test/{name}.crt --key /etc/ssl/pydeploy-test/{name}.key "
            f"--label served-by-{name} --lifetime 80")
        assert started.rc == 0, started.stderr
        wait_for(lambda: host.socket("tcp://127.0.0.1:9443").is_listening, 20, "the TLS upstream")
        return unit

    unit = serve("app.internal")
    try:
        response = request(host, "/", name="tlsup.test")
        assert response.status == 200 and response.body.strip() == "served-by-app.internal", response
    finally:
        host.run(f"systemctl stop {unit}")
    wait_for(lambda: not host.socket("tcp://127.0.0.1:9443").is_listening, 20, "the TLS upstream to stop")
    unit = serve("other.internal")
    try:
        response = request(host, "/", name="tlsup.test")
        assert response.status == 502, response
        log = host.run("tail -n 50 /var/log/nginx/error.log").stdout
        assert "upstream SSL certificate does not match" in log, log[-2000:]
    finally:
        host.run(f"systemctl stop {unit}")


def test_certificates_match_the_files_and_keys_are_private(host):
    for site, name in (("demo", "localhost"), ("files", "files.test"), ("vault", "vault.test")):
        served = served_certificate_sha256(host, name)
        assert served and served == file_certificate_sha256(host, f"/etc/nginx/tls/{site}/fullchain.pem"), site
    for site in ("demo", "vault"):  # keys the role wrote (files: the user's own, linked)
        key = host.file(f"/etc/nginx/tls/{site}/privkey.pem")
        assert key.user == "root" and key.group == "root" and key.mode == 0o600, (site, oct(key.mode))
    assert host.file("/etc/nginx/tls/files/fullchain.pem").linked_to == "/etc/ssl/pydeploy-test/files.crt"
    sans = host.run("openssl x509 -noout -ext subjectAltName -in /etc/nginx/tls/demo/fullchain.pem").stdout
    for san in ("DNS:localhost", "DNS:single", "IP Address:127.0.0.1"):
        assert san in sans, sans


# A Django project with Django's own security middlewares (as `startproject` makes it), set to
# values that contradict nginx's.
DJANGO_SECURITY_MIDDLEWARES = """
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", *MIDDLEWARE,
              "django.middleware.clickjacking.XFrameOptionsMiddleware"]
SECURE_HSTS_SECONDS = 60
X_FRAME_OPTIONS = "SAMEORIGIN"
SECURE_REFERRER_POLICY = "no-referrer"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin-allow-popups"
"""


def test_security_headers_the_app_also_sends_reach_clients_once_with_nginx_values(host):
    """nginx owns the security headers: when the app sends them too, the client still gets each one
    once, nginx's, on the app's successes and its errors (no duplicates, no contradicting values)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = make_release(pathlib.Path(tmp), "1.1.0-headers", extra_settings=DJANGO_SECURITY_MIDDLEWARES)
        # The contradicting values are deliberate (SAMEORIGIN, a short HSTS): Django's deployment
        # checks warn about them, which is not what this test is about.
        result = run_playbook("pydeploy.django_stack.app", {"python_app_source_path": str(src), "python_app_source_type": "path",
                                                            "python_app_django_check_fail_level": "ERROR"})
    assert result.returncode == 0, result.stdout[-3000:]
    # The app itself sends them (asked directly on its TCP bind, as nginx would ask it).
    status, direct, _ = http_get(host, "/health/", url="http://127.0.0.1:8001", headers={"X-Forwarded-Proto": "https"})
    assert status == 200, direct
    for line in ("x-frame-options: SAMEORIGIN", "referrer-policy: no-referrer", "x-content-type-options: nosniff",
                 "cross-origin-opener-policy: same-origin-allow-popups", "strict-transport-security: max-age=60"):
        assert line.lower() in direct.lower().replace("\r", ""), (line, direct)
    for name in ("localhost", "files.test", "vault.test"):
        ok = request(host, "/health/", name=name)
        missing = request(host, f"/no-such-page-{uuid.uuid4().hex}/", name=name)  # Django's 404
        assert ok.status == 200 and ok.json()["version"] == "1.1.0-headers", ok
        assert missing.status == 404, missing
        for response in (ok, missing):
            if name == "localhost":
                # No HSTS from nginx on the self-signed site: the app's, if any, is the only one.
                assert_security_headers(response)
                assert len(response.headers.get("strict-transport-security", [])) <= 1, response
            else:
                assert_security_headers(response, hsts="max-age=63072000")


# The app server's timeout as the playbooks pass it (nginx_stack, from the app server's export).
SLOW_APP = {"nginx_stack": {"apps": [{"app": {"name": "demo", "server_names": ["localhost"]},
                                      "server": {"socket_path": "/run/gunicorn/demo.sock", "timeout": 90},
                                      "upstream_servers": []}]}}


# A refused value changes nothing on a live host. The controller suite (tests/controller/cases) holds
# the whole table of wrong values (typos, types, ACME for an address, ...); these two need the live
# path: the timeout nginx_stack carries from the app server, and a file checked on the host itself.
@pytest.mark.parametrize("bad,expected", [
    (SLOW_APP, "must exceed the app server's timeout"),
    # Checked where they live, before anything changes: a provided file that is not there.
    ({"nginx_sites": [{"name": "x", "server_names": ["x.test"], "certificate": "provided",
                       "certificate_file": "/etc/ssl/pydeploy-test/missing.crt",
                       "certificate_key_file": "/etc/ssl/pydeploy-test/files.key"}]}, "nginx_sites[0].certificate_file: cannot be read"),
])
def test_bad_input_fails_before_any_change(host, bad, expected):
    before = live_config_digest(host)
    result = run_playbook(WEB, bad)
    assert result.returncode != 0, bad
    assert expected in result.stdout, result.stdout[-2500:]
    assert recap_changed(result.stdout) == 0, result.stdout[-2500:]
    assert live_config_digest(host) == before


def test_invalid_directive_fails_and_nginx_keeps_serving(host):
    before = live_config_digest(host)
    master, workers = nginx_master_pid(host), nginx_worker_pids(host)
    result = run_playbook(WEB, {"nginx_http_extra_directives": ["pydeploy_no_such_directive on;"]})
    assert result.returncode != 0
    # nginx's own message reaches the play output.
    assert 'unknown directive "pydeploy_no_such_directive"' in result.stdout, result.stdout[-2500:]
    # The candidate was rendered and rejected (nginx's message above); the live files were never touched ...
    assert live_config_digest(host) == before
    assert host.run("grep -rq pydeploy_no_such_directive /etc/nginx/nginx.conf /etc/nginx/sites-enabled").rc != 0
    # ... and nginx was not reloaded: same master, same workers, still answering.
    assert nginx_master_pid(host) == master and nginx_worker_pids(host) == workers
    assert request(host, "/health/").status == 200
    assert host.run("nginx -t").rc == 0


def test_config_and_certificate_changes_reload_nginx_once_without_restart(host):
    """A changed header and a certificate replaced on disk (site "files" links to the user's
    files): one play, one reload, the same master, new workers serving both."""
    old_cert = served_certificate_sha256(host, "files.test")
    assert host.run(
        "cd /etc/ssl/pydeploy-test && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
        "-subj /CN=files.test -addext subjectAltName=DNS:files.test -keyout files.key.new -out files.crt.new "
        "2>/dev/null && mv files.key.new files.key && mv files.crt.new files.crt").rc == 0
    new_cert = file_certificate_sha256(host, "/etc/ssl/pydeploy-test/files.crt")
    assert new_cert != old_cert
    # nginx keeps the old certificate in memory until something reloads it.
    assert served_certificate_sha256(host, "files.test") == old_cert
    master, workers = nginx_master_pid(host), nginx_worker_pids(host)
    headers = {**{k.title(): v for k, v in SECURITY_HEADERS.items()}, "Permissions-Policy": "geolocation=()"}
    cursor = journal_cursor(host, "nginx.service")
    result = run_playbook(WEB, {"nginx_security_headers": headers})
    assert result.returncode == 0, result.stdout[-3000:]
    # systemd's own record of the reloads it ran for nginx.service during the play: one.
    reloads = journal_lines(host, cursor, unit="nginx.service", grep="Reloaded")
    assert len(reloads) == 1, reloads
    wait_for(lambda: request(host, "/health/").header("permissions-policy") == "geolocation=()", 30, "the new header")
    wait_for(lambda: served_certificate_sha256(host, "files.test") == new_cert, 30, "the new certificate")
    wait_for(lambda: not set(nginx_worker_pids(host)) & set(workers), 60, "the old workers to finish")
    assert nginx_master_pid(host) == master
    assert request(host, "/health/", name="files.test").status == 200
