"""The checks that start a release's interpreter run as the service's user, never as root.

Gunicorn's configuration check (gunicorn role, Gunicorn + Uvicorn workers for app demo) and the
Uvicorn settings checker (both modes: demo, and standalone Uvicorn for app solo) import the
release's third-party packages. A probe imported at every start of the live venvs' interpreter
(a .pth file in their site-packages) records who started it; the server roles then run again
(--tags, the release unchanged: what an operator changing a setting runs).
"""
import base64
import json
import shlex

import pytest
from pydeploy_testlib import recap_changed, run_tagged

PROBE_DIR = "/run/pydeploy-test-interpreters"
PROBE = f"""\
import json, os
try:
    with open("/proc/self/cmdline", "rb") as fh:
        _argv = [a.decode("utf-8", "replace") for a in fh.read().split(b"\\0") if a]
    with open(os.path.join({PROBE_DIR!r}, "%d-%s.json" % (os.getpid(), os.urandom(4).hex())), "w") as fh:
        json.dump({{"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "argv": _argv}}, fh)
except OSError:  # a sandboxed service cannot write there: not what this records
    pass
"""
# The second play of converge.yml: the standalone app.
SOLO = {"python_app_name": "solo", "python_app_allowed_hosts": ["localhost", "127.0.0.1", "solo.test"],
        "uvicorn_worker_mode": "standalone", "uvicorn_worker_bind_tcp": ["127.0.0.1:8001"],
        "uvicorn_worker_forwarded_allow_ips": ["*"]}


def site_packages(host, app):
    out = host.run(f"realpath /srv/{app}/current/venv/lib/python3*/site-packages").stdout.split()
    assert len(out) == 1, out
    return out[0]


@pytest.fixture(name="probed")
def fixture_probed(host):
    paths = {app: site_packages(host, app) for app in ("demo", "solo")}
    probe = base64.b64encode(PROBE.encode()).decode()
    try:
        assert host.run(f"install -d -m 1777 {PROBE_DIR}").rc == 0
        for path in paths.values():
            cmd = (f"echo {probe} | base64 -d > {shlex.quote(path)}/pydeploy_test_probe.py && "
                   f"echo 'import pydeploy_test_probe' > {shlex.quote(path)}/pydeploy-test-probe.pth")
            assert host.run(cmd).rc == 0
        yield
    finally:
        for path in paths.values():
            host.run(f"rm -rf {shlex.quote(path)}/pydeploy_test_probe.py {shlex.quote(path)}/pydeploy-test-probe.pth "
                     f"{shlex.quote(path)}/__pycache__/pydeploy_test_probe.*")
        host.run(f"rm -rf {PROBE_DIR}")


def records(host):
    out = host.run(f"for f in {PROBE_DIR}/*.json; do [ -f \"$f\" ] && cat \"$f\" && echo; done; true").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_release_checks_run_as_the_service_user_not_root(host, probed):
    for extra in ({}, SOLO):
        result = run_tagged("pydeploy.django_stack.app", ["uvicorn_worker", "gunicorn"], extra)
        assert result.returncode == 0, result.stdout[-3000:]
        assert recap_changed(result.stdout) == 0, result.stdout[-3000:]
    seen = records(host)
    print("interpreters of the release venvs started during the runs:",
          json.dumps([{"uid": r["uid"], "argv": r["argv"][:3]} for r in seen]))
    checks = {
        "gunicorn config (demo)": ("demo", "pydeploy_gunicorn.py"),
        "uvicorn settings (demo, gunicorn mode)": ("demo", "pydeploy_uvicorn_worker.py"),
        "uvicorn settings (solo, standalone)": ("solo", "pydeploy_uvicorn_worker.py"),
    }
    for what, (app, script) in checks.items():
        user = host.user(app)
        found = [r for r in seen if r["argv"][0].startswith(f"/srv/{app}/") and len(r["argv"]) > 2
                 and r["argv"][1].endswith("/" + script) and r["argv"][2] == "--check"]
        assert found, (what, seen)
        for record in found:
            assert record["uid"] == user.uid and record["gid"] == user.gid, (what, record)
            assert 0 not in record["groups"], (what, record)
    # Nothing else of the releases ran as root either.
    assert not [r for r in seen if r["uid"] == 0], seen
