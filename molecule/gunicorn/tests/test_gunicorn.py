"""python_app + gunicorn on a live host: systemd, the socket, reload, zero-drop deploys."""
import json
import os
import pathlib
import re
import shutil
import tempfile

import pytest
from pydeploy_testlib import Load, child_pids, http_get, http_json, main_pid, recap_changed, run_playbook, wait_for

SERVICE = "gunicorn-demo.service"
SOCKET = "/run/gunicorn/demo.sock"
DEMO = (pathlib.Path(os.environ["ANSIBLE_COLLECTIONS_PATH"].split(":")[0])
        / "ansible_collections/pydeploy/django_stack/roles/python_app/files/demo_project")


def make_release(tmp_path, version, extra_requirement=None, broken_migration=False):
    """A copy of the demo with another version (and optionally a new dependency or a failing migration)."""
    src = tmp_path / f"release-{version}"
    shutil.copytree(DEMO, src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "VERSION").write_text(version + "\n")
    if extra_requirement:
        module, requirement = extra_requirement
        with open(src / "requirements.txt", "a") as fh:
            fh.write(requirement + "\n")
        # The new code needs the new package at import time: served by an old venv it would fail.
        with open(src / "demo/__init__.py", "a") as fh:
            fh.write(f"import {module}  # noqa: F401  new dependency of release {version}\n")
    if broken_migration:
        (src / "demo/migrations/0002_broken.py").write_text(
            "from django.db import migrations\n\n\n"
            "def fail(apps, schema_editor):\n    raise RuntimeError('deliberately broken release')\n\n\n"
            "class Migration(migrations.Migration):\n"
            "    dependencies = [('demo', '0001_initial')]\n"
            "    operations = [migrations.RunPython(fail)]\n")
    return src


def test_service_active_notify_and_socket_activated(host):
    assert host.service(SERVICE).is_running
    assert host.service(SERVICE).is_enabled
    assert host.run(f"systemctl show -p Type --value {SERVICE}").stdout.strip() == "notify"
    assert host.service("gunicorn-demo.socket").is_running
    sock = host.file(SOCKET)
    assert sock.is_socket
    assert sock.group == "www-data" and sock.mode == 0o660
    # The app is not reachable over TCP unless asked.
    assert not host.socket("tcp://0.0.0.0:8000").is_listening


def test_health_over_unix_socket(host):
    status, body = http_json(host, "/health/", unix=SOCKET)
    assert status == 200
    assert body["status"] == "ok" and body["db"] == "ok" and body["version"] == "1.0.0"


def test_page_renders_with_collected_static(host):
    status, _, body = http_get(host, "/", unix=SOCKET)
    assert status == 200
    css = re.search(r'href="/static/(demo/site\.[0-9a-f]+\.css)"', body)
    assert css, body[:500]
    assert host.file(f"/srv/demo/shared/static/{css.group(1)}").exists


def test_processes_run_as_app_user_and_sandboxed(host):
    pid = main_pid(host, SERVICE)
    assert host.process.get(pid=pid).user == "demo"
    workers = child_pids(host, pid)
    assert len(workers) == 3
    status = host.file(f"/proc/{workers[0]}/status").content_string
    assert re.search(r"^CapEff:\s+0+$", status, re.M)
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)


def test_systemd_security_exposure(host):
    result = host.run(f"systemd-analyze security --no-pager --threshold=20 {SERVICE}")
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert exposure, result.stdout[-500:]
    print(f"systemd-analyze security exposure: {exposure.group(1)}")
    assert result.rc == 0, f"exposure {exposure.group(1)} is above 2.0"


def test_control_socket_in_runtime_directory(host):
    ctl = host.file("/run/gunicorn-demo/gunicorn.ctl")
    assert ctl.is_socket and ctl.user == "demo" and ctl.mode == 0o600


def test_env_file_and_secret_key_protected(host):
    env = host.file("/etc/demo/env")
    assert env.user == "root" and env.group == "demo" and env.mode == 0o640
    key = host.file("/etc/demo/secret_key")
    assert key.mode == 0o640 and len(key.content_string.strip()) == 64


def test_second_app_does_not_collide(host):
    assert host.service("gunicorn-second.service").is_running
    status, body = http_json(host, "/health/", unix="/run/gunicorn/second.sock")
    assert status == 200 and body["status"] == "ok"
    assert len(child_pids(host, main_pid(host, "gunicorn-second.service"))) == 2
    assert host.file("/etc/second/env").exists
    assert host.file("/etc/demo/secret_key").content_string != host.file("/etc/second/secret_key").content_string


def test_reload_keeps_master_replaces_workers_and_drops_nothing(host):
    master = main_pid(host, SERVICE)
    before = child_pids(host, master)
    with Load(host, unix=SOCKET, concurrency=4, duration=60) as load:
        assert host.run(f"systemctl reload {SERVICE}").rc == 0
        wait_for(lambda: len(set(child_pids(host, master)) - set(before)) >= 3, 30, "new workers")
        wait_for(lambda: not set(child_pids(host, master)) & set(before), 60, "old workers to exit")
    assert main_pid(host, SERVICE) == master
    after = child_pids(host, master)
    assert len(after) == 3 and not set(after) & set(before)
    print("reload under load:", json.dumps(load.result))
    assert load.result["failed"] == 0, load.result
    assert load.result["ok"] > 0


def test_restart_drops_nothing(host):
    master = main_pid(host, SERVICE)
    with Load(host, unix=SOCKET, concurrency=4, duration=60) as load:
        assert host.run(f"systemctl restart {SERVICE}").rc == 0
    assert main_pid(host, SERVICE) != master
    print("restart under load:", json.dumps(load.result))
    assert load.result["failed"] == 0, load.result


def test_bad_input_fails_before_any_change(host):
    for bad, name in (({"gunicorn_workers": "many"}, "gunicorn_workers"),
                      ({"gunicorn_worker_class": "bogus"}, "gunicorn_worker_class"),
                      ({"gunicorn_graceful_timeout": 60, "gunicorn_timeout_stop_sec": 30}, "gunicorn_timeout_stop_sec"),
                      ({"python_app_keep_releases": "lots"}, "python_app_keep_releases"),
                      ({"python_app_source_type": "svn"}, "python_app_source_type")):
        # A new source too, so that any task that ran would change something.
        result = run_playbook("converge.yml", {**bad, "python_app_release": "never-built"})
        assert result.returncode != 0, bad
        assert name in result.stdout, result.stdout[-2000:]
        assert recap_changed(result.stdout) == 0, result.stdout[-2000:]
    assert not host.file("/srv/demo/releases/never-built").exists


def test_broken_release_keeps_the_old_one_serving(host):
    current = host.file("/srv/demo/current").linked_to
    with tempfile.TemporaryDirectory() as tmp:
        src = make_release(pathlib.Path(tmp), "1.5.0-broken", broken_migration=True)
        result = run_playbook("converge.yml", {"python_app_source_path": str(src)})
    assert result.returncode != 0
    assert "deliberately broken release" in result.stdout
    assert host.file("/srv/demo/current").linked_to == current
    status, body = http_json(host, "/health/", unix=SOCKET)
    assert status == 200 and body["version"] == "1.0.0"


def test_new_release_with_new_dependency_deploys_without_dropping_requests(host):
    master = main_pid(host, SERVICE)
    with tempfile.TemporaryDirectory() as tmp:
        src = make_release(pathlib.Path(tmp), "2.0.0", extra_requirement=("six", "six==1.17.0"))
        with Load(host, unix=SOCKET, concurrency=4, duration=600, requests=2000000) as load:
            result = run_playbook("converge.yml", {"python_app_source_path": str(src)})
            assert result.returncode == 0, result.stdout[-3000:]
    print("deploy under load:", json.dumps(load.result))
    assert load.result["failed"] == 0, load.result
    assert load.result["last_version"] == "2.0.0"
    assert host.file("/srv/demo/previous").exists
    assert host.file("/srv/demo/current").linked_to != host.file("/srv/demo/previous").linked_to
    assert main_pid(host, SERVICE) != master
    versions = {http_json(host, "/health/", unix=SOCKET)[1]["version"] for _ in range(20)}
    assert versions == {"2.0.0"}
    # The new release's venv has the new package; the old one does not.
    current = host.file("/srv/demo/current").linked_to
    previous = host.file("/srv/demo/previous").linked_to
    assert host.run(f"{current}/venv/bin/python -c 'import six'").rc == 0
    assert host.run(f"{previous}/venv/bin/python -c 'import six'").rc != 0


@pytest.mark.parametrize("path", ["/sync/", "/async/?n=5&ms=50"])
def test_sync_and_async_views(host, path):
    status, body = http_json(host, path, unix=SOCKET)
    assert status == 200 and body["view"] in ("sync", "async")
