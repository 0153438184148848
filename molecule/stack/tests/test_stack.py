"""The three-tier stack converged by site.yml, checked through nginx on the web host."""
import json
import os
import pathlib
import re
import shlex
import shutil

import pytest
from pydeploy_testlib import DEPLOY_LOAD_RATE, TOOLS, Load, http_get, http_json, run_playbook

# Everything is checked from the web host: the real path is client -> nginx -> app hosts -> db.
# The loads during deploys open a connection per request: nginx closes idle client keep-alive
# connections when it reloads (drain/undrain), and a request racing that close on a reused
# connection is one an HTTP/1.1 client has to retry; with fresh connections every failure counts.
testinfra_hosts = ["ansible://web"]
HTTPS = "https://127.0.0.1"


@pytest.fixture(name="web")
def fixture_web(host):
    return host


def test_page_over_https_through_nginx(web):
    status, headers, body = http_get(web, "/", url=HTTPS)
    assert status == 200
    assert "pydeploy.django_stack demo" in body
    assert re.search(r"^server: nginx\s*$", headers, re.M | re.I)


def test_static_served_by_nginx_from_its_own_disk(web):
    _, _, body = http_get(web, "/", url=HTTPS)
    css = re.search(r'href="(/static/demo/site\.[0-9a-f]+\.css)"', body).group(1)
    status, headers, text = http_get(web, css, url=HTTPS)
    assert status == 200 and "pydeploy demo stylesheet" in text
    assert re.search(r"^cache-control: .*max-age=\d+", headers, re.M | re.I)
    assert web.file("/srv/demo/shared/static/" + css[len("/static/"):]).exists


def test_health_reports_postgres_through_tls(web):
    status, body = http_json(web, "/health/", url=HTTPS)
    assert status == 200
    assert body["db"] == "ok" and body["db_vendor"] == "postgresql"
    assert body["secure"] is True


def test_requests_spread_over_both_app_hosts(web):
    seen = {http_json(web, "/health/", url=HTTPS)[1].get("host") for _ in range(30)}
    assert seen == {"app1", "app2"}, seen


def test_websocket_echo_through_nginx_tls(web):
    cmd = ["python3", f"{TOOLS}/wsclient.py", "probe", "--url", "wss://127.0.0.1/ws/echo/", "--insecure", "--json",
           "--message", "over nginx"]
    result = json.loads(web.run(" ".join(shlex.quote(c) for c in cmd)).stdout)
    assert result["status"] == 101
    assert result["first"]["type"] == "hello" and result["first"]["scheme"] == "wss"
    assert result["echo"]["data"] == "over nginx"


def _release(tmp_path, version, broken_health=False):
    """A copy of the bundled demo as a new release (VERSION changed), optionally with a failing /health/."""
    demo = (pathlib.Path(os.environ["ANSIBLE_COLLECTIONS_PATH"].split(":")[0])
            / "ansible_collections/pydeploy/django_stack/roles/python_app/files/demo_project")
    src = tmp_path / f"release-{version}"
    shutil.copytree(demo, src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "VERSION").write_text(version + "\n")
    if broken_health:
        with open(src / "demo/views.py", "a") as fh:
            fh.write("\n\ndef health(request):  # noqa: F811 - this release's health check fails\n"
                     "    return JsonResponse({'status': 'broken', 'version': settings.APP_VERSION}, status=500)\n")
    return src


def _app_versions(web, rounds=30):
    return {(b.get("host"), b.get("version")) for b in (http_json(web, "/health/", url=HTTPS)[1] for _ in range(rounds))}


def test_rolling_deploy_drops_no_request(web, tmp_path):
    src = _release(tmp_path, "3.0.0")
    with Load(web, url=HTTPS, path="/health/", concurrency=4, duration=600, requests=300000,
              rate=DEPLOY_LOAD_RATE) as load:
        result = run_playbook("pydeploy.django_stack.deploy", {"python_app_source_path": str(src)})
        assert result.returncode == 0, result.stdout[-4000:]
    print("rolling deploy under load:", json.dumps(load.result))
    assert load.result["failed"] == 0, load.result
    assert load.result["ok"] > 100
    assert _app_versions(web) == {("app1", "3.0.0"), ("app2", "3.0.0")}


def test_rollback_returns_every_host_to_the_previous_release(web):
    with Load(web, url=HTTPS, path="/health/", concurrency=4, duration=300, requests=150000,
              rate=DEPLOY_LOAD_RATE) as load:
        result = run_playbook("pydeploy.django_stack.rollback")
        assert result.returncode == 0, result.stdout[-4000:]
    print("rollback under load:", json.dumps(load.result))
    assert load.result["failed"] == 0, load.result
    assert _app_versions(web) == {("app1", "1.0.0"), ("app2", "1.0.0")}


def test_failing_health_check_stops_the_roll(web, tmp_path):
    before = _app_versions(web)
    src = _release(tmp_path, "4.0.0-bad", broken_health=True)
    with Load(web, url=HTTPS, path="/", concurrency=4, duration=600, requests=300000,
              rate=DEPLOY_LOAD_RATE) as load:
        # Two attempts of the health check, not the default 15 (30 s of a check that cannot pass while
        # the load runs): the rescue that rolls the host back runs no health check of its own.
        result = run_playbook("pydeploy.django_stack.deploy", {"python_app_source_path": str(src),
                                                               "python_app_health_retries": 2})
    assert result.returncode != 0
    said = " ".join(result.stdout.split())  # the message as one line, however the callback wrapped it
    assert "it was rolled back there; the roll stopped" in said, result.stdout[-4000:]
    print("failed deploy under load:", json.dumps(load.result))
    assert load.result["failed"] == 0, load.result
    # Both hosts serve the release they had: the first was rolled back, the second never switched.
    assert _app_versions(web) == before


def test_static_files_come_from_an_app_host_that_finished_never_a_failed_one(web):
    # static_source.yml: the first app host failed its app tier in the run, the second finished it;
    # each put pydeploy-source-<its index in the app group>.txt holding its name in its static root.
    root = "/srv/demo/shared/static"
    try:
        result = run_playbook("static_source.yml")
        assert result.returncode == 0, result.stdout[-4000:]
        assert web.file(f"{root}/pydeploy-source-1.txt").content_string.strip().endswith("app2")
        assert not web.file(f"{root}/pydeploy-source-0.txt").exists
    finally:
        web.run(f"rm -f {root}/pydeploy-source-0.txt {root}/pydeploy-source-1.txt")
