"""python_app + gunicorn on a live host: systemd, the socket, reload, zero-drop deploys.

The app tier of the single box (PostgreSQL and nginx on the same host). Tests that change the app
run the collection's app playbook (validate + app tier), the part of site.yml they exercise."""
import json
import pathlib
import re
import tempfile
import uuid

import pytest
from pydeploy_testlib import (DEPLOY_LOAD_RATE, Load, child_pids, http_get, http_json, journal_cursor, journal_lines, main_pid,
                              recap_changed, run_load, run_playbook, run_tagged, wait_for)
from pydeploy_testlib.release import make_release

SERVICE = "gunicorn-demo.service"
SOCKET = "/run/gunicorn/demo.sock"
# The reload hooks' ready files and boot locks (pydeploy_gunicorn.ready_hooks), in the unit's RuntimeDirectory.
READY_DIR = "/run/gunicorn-demo/ready"
APP = "pydeploy.django_stack.app"
# The second app: the variables of the last import of converge.yml (SQLite, no TCP bind, no access log).
SECOND = {"service": "gunicorn-second.service", "sock": "/run/gunicorn/second.sock",
          "vars": {"python_app_name": "second", "gunicorn_workers": 2, "gunicorn_bind_tcp": [],
                   "gunicorn_access_log": False, "gunicorn_nice": 0,
                   "python_app_database": {"engine": "sqlite", "name": "/srv/second/shared/data/db.sqlite3"},
                   "python_app_database_password": "", "postgres_databases": []}}


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


def nice_levels(host, pids):
    return [int(host.run(f"ps -o ni= -p {pid}").stdout.strip()) for pid in pids]


def test_serving_processes_run_above_the_normal_priority(host):
    """gunicorn_nice and nginx_worker_priority -5 (molecule.yml; 0 by default): the master, its workers (a reload's
    new ones are forked by the same master) and nginx's workers run at -5, the container having CAP_SYS_NICE as a
    host's systemd does. The second app sets gunicorn_nice 0: no Nice= in its unit, its processes at the normal
    priority."""
    master = main_pid(host, SERVICE)
    assert nice_levels(host, [master] + child_pids(host, master)) == [-5] * 4
    assert "\nNice=-5\n" in host.file(f"/etc/systemd/system/{SERVICE}").content_string
    second = main_pid(host, SECOND["service"])
    assert nice_levels(host, [second] + child_pids(host, second)) == [0] * 3
    assert "Nice=" not in host.file(f"/etc/systemd/system/{SECOND['service']}").content_string
    nginx_master = main_pid(host, "nginx.service")
    workers = child_pids(host, nginx_master)
    assert workers and nice_levels(host, workers) == [-5] * len(workers)
    refused = host.run("grep setpriority /var/log/nginx/error.log").stdout
    assert refused == "", refused[-500:]


def test_systemd_security_exposure(host):
    result = host.run(f"systemd-analyze security --no-pager --threshold=20 {SERVICE}")
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert exposure, result.stdout[-500:]
    print(f"systemd-analyze security exposure: {exposure.group(1)}")
    assert result.rc == 0, f"exposure {exposure.group(1)} is above 2.0"


def test_environment_reaches_the_processes_exactly(host):
    """gunicorn_environment (molecule.yml) holds quotes, blanks, % and $: every worker sees it as written."""
    expected = 'say "hi" to 50% of $HOME \\ ok'
    for pid in [main_pid(host, SERVICE)] + child_pids(host, main_pid(host, SERVICE)):
        environ = host.run(f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout.splitlines()
        assert f"PYDEPLOY_PROBE={expected}" in environ, [e for e in environ if e.startswith("PYDEPLOY")]


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


@pytest.mark.parametrize("app", ["demo", "second"])
def test_stop_timeout_outlasts_graceful_timeout(host, app):
    """systemd's TimeoutStopSec must leave Gunicorn its whole graceful_timeout, or a stop or restart
    kills workers that are still finishing requests."""
    conf = host.file(f"/etc/gunicorn/{app}.conf.py").content_string
    graceful = int(re.search(r"^graceful_timeout = (\d+)$", conf, re.M).group(1))
    shown = host.run(f"systemctl show -p TimeoutStopUSec --value gunicorn-{app}.service").stdout.strip()
    parts = re.fullmatch(r"(?:(\d+)min)? ?(?:(\d+)s)?", shown)  # "45s", "1min 30s"
    assert parts and shown, shown
    stop_sec = int(parts.group(1) or 0) * 60 + int(parts.group(2) or 0)
    assert stop_sec > graceful, (shown, graceful)


def test_access_log_is_off_unless_asked(host):
    """nginx logs every request; Gunicorn logging them too (to journald, which drops lines beyond its
    rate limit) is opt-in: with gunicorn_access_log false (the default; the second app's value) no
    request reaches Gunicorn's log, while the first app (true in molecule.yml) logs each one."""
    assert re.search(r"^accesslog = None$", host.file("/etc/gunicorn/second.conf.py").content_string, re.M)
    marker = f"probe-{uuid.uuid4().hex}"
    cursors = {unit: journal_cursor(host, unit) for unit in (SECOND["service"], SERVICE)}
    for unit, sock in ((SECOND["service"], SECOND["sock"]), (SERVICE, SOCKET)):
        load = run_load(host, unix=sock, path=f"/health/?{marker}", concurrency=2, requests=20)
        assert load["statuses"] == {"200": 20}, (unit, load)
    assert journal_lines(host, cursors[SECOND["service"]], unit=SECOND["service"], grep=marker) == []
    # The same probe on the app that asked for the log shows up (the probe itself can see lines).
    wait_for(lambda: len(journal_lines(host, cursors[SERVICE], unit=SERVICE, grep=marker)) == 20, 30,
             "the first app's 20 access log lines")


def test_reload_keeps_master_replaces_workers_and_drops_nothing(host):
    wait_steady(host)
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


# Holds every boot slot of the reload hooks (pydeploy_gunicorn.take_boot_slot) for argv[2] seconds, as a
# new worker loading the app does: the new workers of a reload then wait for their turn, before Gunicorn
# sets their own signal handlers. Creates a missing lock file as its directory's owner (the service user).
SLOT_HOLDER = r"""
import fcntl, os, sys, time
ready, seconds = sys.argv[1], float(sys.argv[2])
owner = os.stat(ready)
fds = []
for slot in range(max(1, len(os.sched_getaffinity(int(sys.argv[3]))) // 2)):
    path = os.path.join(ready, f"boot.{slot}")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.chown(path, owner.st_uid, owner.st_gid)
    fcntl.flock(fd, fcntl.LOCK_EX)
    fds.append(fd)
open(sys.argv[4], "w").close()
time.sleep(seconds)
"""


def wait_steady(host, workers=3, timeout=90):
    """The service as every test of a reload or restart starts: `workers` live workers, each of which has
    loaded the app (its ready file), and no other child of the master (no reload or exit under way). A
    test that fails halfway through a reload leaves the next one this state, not its own."""
    master = main_pid(host, SERVICE)

    def steady():
        pids = child_pids(host, master)
        if len(pids) != workers:
            return False
        probe = " && ".join(f"test -e {READY_DIR}/{pid} && ! grep -q ') Z' /proc/{pid}/stat" for pid in pids)
        return host.run(probe).rc == 0

    wait_for(steady, timeout, f"{workers} workers that have loaded the app, and no other child of the master")


def hold_boot_slots(host, seconds):
    """Starts SLOT_HOLDER in the container for `seconds`; returns (its pid, the file it removes at the end)."""
    master = main_pid(host, SERVICE)
    held = f"/tmp/slots-held-{uuid.uuid4().hex}"
    holder = int(host.run(f"nohup python3 -c '{SLOT_HOLDER}' {READY_DIR} {seconds} {master} {held} > /dev/null 2>&1 "
                          "< /dev/null & echo $!").stdout.strip())
    wait_for(lambda: host.file(held).exists, 10, "the boot slots to be held")
    return holder, held


def reload_with_new_workers(host, master, before):
    """systemctl reload, then the three new workers the master forks (sorted pids)."""
    assert host.run(f"systemctl reload {SERVICE}").rc == 0
    wait_for(lambda: len(set(child_pids(host, master)) - set(before)) == 3, 10, "new workers")
    return sorted(set(child_pids(host, master)) - set(before))


def test_a_new_worker_that_dies_during_a_reload_is_replaced_while_the_old_ones_serve(host):
    """A new worker of a reload that waits for its turn to load the app stops at once on SIGTERM (until
    Gunicorn sets its own handlers it has the master's, which would queue the stop where nothing reads
    it). Its death does not end the wait for the other new workers: the old ones serve until those have
    loaded the app, and then the master replaces the dead one, which it logs, well before gunicorn_timeout
    (30 s, which a dead worker not yet reaped used to cost). Under load, no request fails. The load is
    paced: unpaced, it takes the CPUs from the new workers loading the app on a busy machine."""
    wait_steady(host)
    master = main_pid(host, SERVICE)
    before = child_pids(host, master)
    cursor = journal_cursor(host, SERVICE)
    with Load(host, unix=SOCKET, concurrency=4, duration=120, rate=DEPLOY_LOAD_RATE) as load:
        holder, held = hold_boot_slots(host, 60)  # until killed below
        try:
            new = reload_with_new_workers(host, master, before)
            assert not [pid for pid in new if host.file(f"{READY_DIR}/{pid}").exists]  # none has loaded the app
            victim = new[-1]
            assert host.run(f"kill -TERM {victim}").rc == 0

            def victim_state():
                stat = host.run(f"cat /proc/{victim}/stat")
                return stat.stdout.rsplit(")", 1)[1].split()[0] if stat.rc == 0 else "gone"

            # At once, not after gunicorn_graceful_timeout (30 s): the master's SIGKILL, which it used to need.
            wait_for(lambda: victim_state() in ("Z", "gone"), 10, "the waiting worker to stop on SIGTERM")
            assert set(before) <= set(child_pids(host, master))  # the old workers still serve
        finally:
            host.run(f"kill {holder}; rm -f {held}")  # the slots are free: the other two load the app
        # The master retires the old workers once the two have loaded the app (one at a time here: half of
        # two CPUs), at the latest gunicorn_timeout (30 s) after the reload.
        wait_for(lambda: not set(child_pids(host, master)) & set(before), 90, "the old workers to be retired")
        wait_steady(host)  # the dead worker's replacement
    after = child_pids(host, master)
    assert main_pid(host, SERVICE) == master and victim not in after and set(new) - {victim} <= set(after)
    waits = journal_lines(host, cursor, unit=SERVICE, grep="reload: ")
    assert len(waits) == 1 and "a new worker died while loading the app" in waits[0], waits
    print("reload with a new worker stopped:", json.dumps(load.result))
    assert load.result["failed"] == 0, load.result
    assert load.result["ok"] > 0


def test_a_restart_during_a_reload_stops_at_once_and_drops_nothing(host):
    """systemctl restart while the new workers of a reload still wait for their turn to load the app: the
    master reads the stop at once (it waits in the reload hook, not in its main loop) and logs so, instead
    of waiting until they have loaded the app; systemd holds the socket meanwhile, and under load no
    request fails (a request may wait for the new master: the client waits up to 120 s)."""
    wait_steady(host)
    master = main_pid(host, SERVICE)
    before = child_pids(host, master)
    cursor = journal_cursor(host, SERVICE)
    with Load(host, unix=SOCKET, concurrency=4, duration=120, extra=("--timeout", 120)) as load:
        # Held longer than a new worker waits for its turn (gunicorn_timeout / 2): had the master not read
        # the stop, the new workers would load the app and the wait would end "every new worker loaded".
        holder, held = hold_boot_slots(host, 60)
        try:
            reload_with_new_workers(host, master, before)
            assert host.run(f"systemctl restart {SERVICE}").rc == 0
        finally:
            host.run(f"kill {holder}; rm -f {held}")
    assert main_pid(host, SERVICE) != master
    waits = journal_lines(host, cursor, unit=SERVICE, grep="reload: ")
    assert len(waits) == 1 and "a stop signal arrived" in waits[0], waits
    print("restart during a reload under load:", json.dumps(load.result))
    assert load.result["failed"] == 0, load.result
    assert load.result["ok"] > 0
    wait_steady(host)


def test_worker_recycling_by_max_requests_drops_nothing(host):
    """gunicorn_max_requests (+ jitter) with sync workers under load: workers are replaced again and
    again, no request fails. The setting is applied by the app playbook's gunicorn steps and taken back
    the same way."""
    recycle = {"gunicorn_max_requests": 40, "gunicorn_max_requests_jitter": 10}
    master = main_pid(host, SERVICE)
    unlimited = child_pids(host, master)
    # The gunicorn role only (--tags), as an operator changing a setting runs it.
    result = run_tagged(APP, ["gunicorn"], recycle)
    assert result.returncode == 0, result.stdout[-3000:]
    try:
        assert re.search(r"^max_requests = 40$", host.file("/etc/gunicorn/demo.conf.py").content_string, re.M)
        assert main_pid(host, SERVICE) == master  # a reload, not a restart
        # Only workers of the new settings serve the load (the reload retires the old ones).
        wait_for(lambda: not set(child_pids(host, master)) & set(unlimited), 60, "the old workers to exit")
        cursor = journal_cursor(host, SERVICE)
        # 750: each worker boot loads Django again, so this test costs what its recycles cost. With
        # 3 workers of at most 50 requests, at least 13 of them reach max_requests (750 - 3 * 49).
        total = 750
        # /async/ answers with the pid of the worker that served it.
        load = run_load(host, unix=SOCKET, path="/async/?n=1&ms=0", concurrency=4, requests=total,
                        extra=("--tally", "pid"))
        print("sync worker recycling under load:", json.dumps(load))
        restarts = journal_lines(host, cursor, unit=SERVICE, grep="Autorestarting worker after current request")
        print(f"sync worker recycling: {len(restarts)} workers reached max_requests, {len(load['tally'])} pids served")
        assert load["failed"] == 0 and load["statuses"] == {"200": total}, load
        assert sum(load["tally"].values()) == total
        # A sync worker serves at most max_requests + jitter = 50 requests; 750 need 15 pids or more.
        assert max(load["tally"].values()) <= 50, load["tally"]
        assert len(load["tally"]) >= total // 50, load["tally"]
        assert len(restarts) >= 10, restarts
        assert main_pid(host, SERVICE) == master
        wait_for(lambda: len(child_pids(host, master)) == 3, 60, "three workers again")
    finally:
        restored = run_tagged(APP, ["gunicorn"])
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert re.search(r"^max_requests = 0$", host.file("/etc/gunicorn/demo.conf.py").content_string, re.M)


def test_bad_input_fails_before_any_change(host):
    """A refused value changes nothing on a live host: one of the gunicorn role (a newline would add a
    unit directive) and one of python_app. The controller suite (tests/controller/cases) holds the
    whole table of wrong values; these prove the refusal on a real host and connection."""
    for bad, name in (({"gunicorn_environment": {"X": "a\nExecStartPre=+/bin/touch /tmp/pwned"}}, "gunicorn_environment"),
                      ({"python_app_source_type": "svn"}, "python_app_source_type")):
        # A new source too, so that any task that ran would change something.
        result = run_playbook(APP, {**bad, "python_app_release": "never-built"})
        assert result.returncode != 0, bad
        assert name in result.stdout, result.stdout[-2000:]
        assert recap_changed(result.stdout) == 0, result.stdout[-2000:]
    assert not host.file("/srv/demo/releases/never-built").exists


def test_broken_release_keeps_the_old_one_serving(host):
    current = host.file("/srv/demo/current").linked_to
    with tempfile.TemporaryDirectory() as tmp:
        src = make_release(pathlib.Path(tmp), "1.5.0-broken", broken_migration=True)
        result = run_playbook(APP, {"python_app_source_path": str(src)})
    assert result.returncode != 0
    assert "deliberately broken release" in result.stdout
    assert host.file("/srv/demo/current").linked_to == current
    status, body = http_json(host, "/health/", unix=SOCKET)
    assert status == 200 and body["version"] == "1.0.0"


def test_new_release_with_new_dependency_deploys_without_dropping_requests(host):
    master = main_pid(host, SERVICE)
    with tempfile.TemporaryDirectory() as tmp:
        src = make_release(pathlib.Path(tmp), "2.0.0", extra_requirement=("six", "six==1.17.0"))
        with Load(host, unix=SOCKET, concurrency=4, duration=600, requests=2000000, rate=DEPLOY_LOAD_RATE) as load:
            result = run_playbook(APP, {"python_app_source_path": str(src)})
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


def test_release_switch_of_the_second_app_reloads_only_that_app(host):
    """Two apps on one host: a new release of the second, with the requirements (so the virtualenv)
    its master runs, is a reload: the same master, only new workers, all of them serving the new
    code once the deploy returns, no request dropped; the first app's master and workers are left
    alone. (A release with a new virtualenv restarts: test_new_release_with_new_dependency...)"""
    demo_master = main_pid(host, SERVICE)
    demo_workers = child_pids(host, demo_master)
    demo_version = http_json(host, "/health/", unix=SOCKET)[1]["version"]
    second_master = main_pid(host, SECOND["service"])
    second_workers = set(child_pids(host, second_master))
    venv = host.file("/srv/second/current/venv").linked_to
    current = host.file("/srv/second/current").linked_to
    with tempfile.TemporaryDirectory() as tmp:
        src = make_release(pathlib.Path(tmp), "3.0.0-second")
        with Load(host, unix=SECOND["sock"], concurrency=4, duration=600, requests=2000000,
                  rate=DEPLOY_LOAD_RATE) as load:
            result = run_playbook(APP, {**SECOND["vars"], "python_app_source_path": str(src)})
            assert result.returncode == 0, result.stdout[-3000:]
    print("second app deploy under load:", json.dumps(load.result))
    assert load.result["failed"] == 0, load.result
    assert load.result["last_version"] == "3.0.0-second", load.result
    assert host.file("/srv/second/current").linked_to != current
    assert host.file("/srv/second/current/venv").linked_to == venv
    assert main_pid(host, SECOND["service"]) == second_master
    workers = set(child_pids(host, second_master))
    assert workers and not workers & second_workers, (second_workers, workers)
    assert {http_json(host, "/health/", unix=SECOND["sock"])[1]["version"] for _ in range(20)} == {"3.0.0-second"}
    # The first app: same master, same workers, same release.
    assert main_pid(host, SERVICE) == demo_master
    assert child_pids(host, demo_master) == demo_workers
    assert http_json(host, "/health/", unix=SOCKET)[1]["version"] == demo_version


def test_a_reload_outlives_the_release_the_master_started_from(host):
    """A master lives across releases (a release switch is a reload) and python_app prunes old releases,
    the one the master started from among them: a reload must not need that directory. Here the second
    app's master starts from its current release, which is then copied and switched to (as a deploy
    does) and moved aside (as pruning does); a reload after that keeps the same master, which serves on.
    (Gunicorn checks at every reload that the directory it started in exists: the unit starts it in the
    role's helpers directory, not in the release.)"""
    service, sock, root = SECOND["service"], SECOND["sock"], "/srv/second"
    start = host.file(f"{root}/current").linked_to
    copy, moved = f"{start}-copy", f"{start}-moved"
    name = pathlib.PurePosixPath(start).name

    def reload_and_wait(master):
        before = set(child_pids(host, master))
        assert host.run(f"systemctl reload {service}").rc == 0
        wait_for(lambda: not set(child_pids(host, master)) & before, 60, "the old workers to exit")

    def switch(target):
        assert host.run(f"ln -sfn releases/{target} {root}/current.next && mv -T {root}/current.next {root}/current").rc == 0

    assert host.run(f"systemctl restart {service}").rc == 0
    wait_for(lambda: http_json(host, "/health/", unix=sock)[0] == 200, 60, "the second app to answer")
    master = main_pid(host, service)
    try:
        assert host.run(f"cp -a {start} {copy}").rc == 0
        switch(f"{name}-copy")
        reload_and_wait(master)
        assert host.run(f"mv -T {start} {moved}").rc == 0
        with Load(host, unix=sock, concurrency=4, duration=60) as load:
            reload_and_wait(master)
        print("reload after the start release went:", json.dumps(load.result))
        assert main_pid(host, service) == master
        assert len(child_pids(host, master)) == SECOND["vars"]["gunicorn_workers"]
        assert load.result["failed"] == 0, load.result
        assert http_json(host, "/health/", unix=sock)[0] == 200
    finally:
        host.run(f"test -e {start} || mv -T {moved} {start}")
        switch(name)
        host.run(f"systemctl restart {service}")  # a master that started from the copy would need it
        wait_for(lambda: http_json(host, "/health/", unix=sock)[0] == 200, 60, "the second app to answer")
        host.run(f"rm -rf {copy}")
