"""roles/gunicorn/files/pydeploy_gunicorn.py: the reload hooks that keep old workers serving until the new
ones loaded the app, and the configuration checker's command line."""
import importlib.util
import os
import pathlib
import subprocess
import time
import types

import pytest

MODULE = pathlib.Path(__file__).resolve().parents[3] / "roles/gunicorn/files/pydeploy_gunicorn.py"
spec = importlib.util.spec_from_file_location("pydeploy_gunicorn", MODULE)
pg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pg)


class Clock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def server(ages, num_workers, timeout=30):
    workers = {pid: types.SimpleNamespace(age=age) for pid, age in ages.items()}
    return types.SimpleNamespace(WORKERS=workers, num_workers=num_workers, timeout=timeout, calls=[])


def test_steady_state_does_not_wait(tmp_path):
    clock = Clock()
    result = pg.wait_for_new_workers(server({1: 1, 2: 2}, 2), lambda pid: str(tmp_path / str(pid)),
                                     lambda pid: True, clock.sleep, clock.monotonic)
    assert result == "steady" and clock.now == 0


def test_reload_waits_until_every_new_worker_is_ready(tmp_path):
    clock = Clock()
    srv = server({10: 1, 11: 2, 20: 3, 21: 4}, 2)  # 10, 11 old; 20, 21 new (higher age)

    def ready(pid):
        return str(tmp_path / str(pid))

    def sleep(seconds):
        clock.sleep(seconds)
        if clock.now > 0.2:
            (tmp_path / "20").touch()
        if clock.now > 0.5:
            (tmp_path / "21").touch()

    result = pg.wait_for_new_workers(srv, ready, lambda pid: True, sleep, clock.monotonic)
    assert result == "ready" and 0.5 < clock.now < 1.0


def test_reload_gives_up_when_a_new_worker_dies_or_time_runs_out(tmp_path):
    clock = Clock()
    srv = server({10: 1, 20: 2}, 1, timeout=3)
    assert pg.wait_for_new_workers(srv, lambda pid: str(tmp_path / str(pid)), lambda pid: pid != 20, clock.sleep,
                                   clock.monotonic) == "died"
    assert pg.wait_for_new_workers(srv, lambda pid: str(tmp_path / str(pid)), lambda pid: True, clock.sleep,
                                   clock.monotonic) == "timeout"
    assert 3 <= clock.now < 3.2


def test_a_dead_new_worker_does_not_end_the_wait_for_the_others(tmp_path):
    """The old workers serve on until the new workers still alive have loaded the app: retiring them when
    one new worker died would leave no worker ready to serve."""
    clock = Clock()
    srv = server({10: 1, 11: 2, 20: 3, 21: 4}, 2)  # 20 died; 21 loads the app for 0.5 s

    def sleep(seconds):
        clock.sleep(seconds)
        if clock.now > 0.5:
            (tmp_path / "21").touch()

    assert pg.wait_for_new_workers(srv, lambda pid: str(tmp_path / str(pid)), lambda pid: pid != 20, sleep,
                                   clock.monotonic) == "died"
    assert 0.5 < clock.now < 0.6


def test_hooks_patch_manage_workers_and_track_ready_files(tmp_path):
    ready_dir = tmp_path / "ready"
    when_ready, post_worker_init, child_exit, _post_fork = pg.ready_hooks(str(ready_dir))
    retired = []
    srv = server({os.getpid(): 1}, 1)
    srv.manage_workers = lambda: retired.append(True)
    when_ready(srv)
    assert ready_dir.is_dir()
    worker = types.SimpleNamespace(pid=os.getpid())
    post_worker_init(worker)
    assert (ready_dir / str(os.getpid())).exists()
    srv.manage_workers()  # steady: retires at once
    assert retired == [True]
    child_exit(srv, worker)
    assert not (ready_dir / str(os.getpid())).exists()
    child_exit(srv, worker)  # a second exit report is harmless


def test_boot_slots_are_half_the_cpus_at_least_one():
    assert [pg.boot_slots(n) for n in (1, 2, 3, 4, 16)] == [1, 1, 1, 2, 8]
    assert pg.boot_slots() >= 1


def test_new_workers_of_a_reload_load_the_app_one_slot_at_a_time(tmp_path, monkeypatch):
    """Two new workers of a reload with one slot: the second waits (and beats its heartbeat) until the
    first has loaded the app; a worker of a start, or one replacing another, never waits."""
    monkeypatch.setattr(pg.signal, "signal", lambda signum, handler: None)  # not this process's handlers
    clock = Clock()
    ready_dir = tmp_path / "ready"
    ready_dir.mkdir()
    beats = []
    first = types.SimpleNamespace(pid=101, notify=lambda: beats.append(101))
    second = types.SimpleNamespace(pid=102, notify=lambda: beats.append(102))

    def sleep(seconds):
        clock.sleep(seconds)
        if clock.now >= 0.5 and not (ready_dir / "101").exists():
            post_worker_init(first)  # the first one has loaded the app: its slot is free

    when_ready, post_worker_init, child_exit, post_fork = pg.ready_hooks(str(ready_dir), sleep, clock.monotonic, slots=1)
    reload = server({1: 1, 2: 2}, 2)  # the two old workers are still there
    post_fork(reload, first)
    assert clock.now == 0 and beats == []
    post_fork(reload, second)  # waits for the slot the first one holds
    assert 0.5 <= clock.now < 0.6 and set(beats) == {102}
    post_worker_init(second)
    # a start (fewer workers than wanted) or a replaced worker: no slot, no wait
    start = server({1: 1}, 2)
    holder = pg.take_boot_slot(str(ready_dir), 1, 0, lambda: None)
    before = clock.now
    post_fork(start, types.SimpleNamespace(pid=103, notify=lambda: beats.append(103)))
    assert clock.now == before and 103 not in beats
    os.close(holder)
    del when_ready, child_exit


def test_a_worker_that_waited_too_long_loads_the_app_anyway(tmp_path):
    clock = Clock()
    held = pg.take_boot_slot(str(tmp_path), 1, 0, lambda: None)
    assert held is not None
    beats = []
    assert pg.take_boot_slot(str(tmp_path), 1, 2, lambda: beats.append(1), clock.sleep, clock.monotonic) is None
    assert 2 <= clock.now < 2.2 and len(beats) >= 30
    second = pg.take_boot_slot(str(tmp_path), 2, 0, lambda: None)  # a second slot is free
    assert second is not None
    os.close(held)
    os.close(second)
    again = pg.take_boot_slot(str(tmp_path), 1, 0, lambda: None)  # closed descriptors free their slots
    assert again is not None
    os.close(again)


def test_checker_usage_and_missing_gunicorn(capsys):
    assert pg.main([]) == 2
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        assert pg.main(["--check", "/nonexistent.conf.py"]) == 1
        assert "Gunicorn is not installed" in capsys.readouterr().err
    else:
        pytest.skip("gunicorn installed here: the missing-package path is not reachable")


def gunicorn_chdir(sys_path, chdir):
    """What Gunicorn's Application.chdir() does with the `chdir` a (re)loaded config set."""
    if chdir not in sys_path:
        sys_path.insert(0, chdir)


def test_release_dir_puts_the_current_release_first_a_rollback_included(tmp_path, monkeypatch):
    monkeypatch.setattr(pg, "_RELEASE_DIRS", [])
    releases = {name: tmp_path / "releases" / name for name in ("r1", "r2")}
    for path in releases.values():
        path.mkdir(parents=True)
    current = tmp_path / "current"
    sys_path = ["/srv/app/venvs/v-1/bin", "/usr/lib/python311.zip", "/srv/app/venvs/v-1/lib/site-packages"]
    seen = []
    for release in ("r1", "r2", "r1", "r2"):  # start, deploy, rollback, deploy again (each a reload)
        if current.is_symlink():
            current.unlink()
        current.symlink_to(releases[release])
        chdir = pg.release_dir(str(current), sys_path)
        assert chdir == str(releases[release])
        gunicorn_chdir(sys_path, chdir)
        seen.append(sys_path[0])
        # One release directory on sys.path, the current one; nothing else was touched.
        assert [p for p in sys_path if "releases" in p] == [chdir]
        assert sys_path[1:] == ["/srv/app/venvs/v-1/bin", "/usr/lib/python311.zip",
                                "/srv/app/venvs/v-1/lib/site-packages"]
    assert seen == [str(releases[r]) for r in ("r1", "r2", "r1", "r2")]


def test_without_release_dir_a_rollback_keeps_importing_the_newer_release():
    # Why release_dir exists: Gunicorn alone leaves the release switched back to behind the other.
    sys_path = []
    for chdir in ("/srv/app/releases/r1", "/srv/app/releases/r2", "/srv/app/releases/r1"):
        gunicorn_chdir(sys_path, chdir)
    assert sys_path[0] == "/srv/app/releases/r2"


def test_a_new_worker_of_a_reload_stops_at_once_on_the_masters_stop_signals(tmp_path, monkeypatch):
    """Until Gunicorn's Worker.init_process sets the worker's handlers, a new worker has the master's, which
    would queue a stop in the worker's copy of the master's queue: nothing reads it there, and the worker
    would serve on until the master's SIGKILL. A worker of a reload (which may wait for its boot slot)
    takes the default action instead; a worker of a start keeps Gunicorn's own sequence."""
    handlers = []
    monkeypatch.setattr(pg.signal, "signal", lambda signum, handler: handlers.append((signum, handler)))
    _when_ready, post_worker_init, _child_exit, post_fork = pg.ready_hooks(str(tmp_path), slots=2)
    post_fork(server({1: 1}, 2), types.SimpleNamespace(pid=30, notify=lambda: None))  # a start
    assert handlers == []
    post_fork(server({1: 1, 2: 2}, 2), types.SimpleNamespace(pid=31, notify=lambda: None))  # a reload
    assert sorted(handlers) == sorted((signum, pg.signal.SIG_DFL)
                                      for signum in (pg.signal.SIGTERM, pg.signal.SIGINT, pg.signal.SIGQUIT))
    post_worker_init(types.SimpleNamespace(pid=31))


def test_a_worker_that_exited_counts_as_dead_before_the_master_reaps_it(tmp_path):
    """Gunicorn 22 and later reap workers in the master's main loop, which waits in the reload hook: a new
    worker that died meanwhile is a zombie there, and the wait must end on it, not on gunicorn_timeout."""
    running = subprocess.Popen(["sleep", "30"])
    exited = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while pathlib.Path(f"/proc/{exited.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert pg.worker_alive(running.pid) is True
        assert pg.worker_alive(exited.pid) is False  # not reaped yet: a zombie
        clock = Clock()
        srv = server({10: 1, running.pid: 2, exited.pid: 3}, 2)
        (tmp_path / str(running.pid)).touch()  # the other new worker has loaded the app
        assert pg.wait_for_new_workers(srv, lambda pid: str(tmp_path / str(pid)), pg.worker_alive, clock.sleep,
                                       clock.monotonic) == "died"
        assert clock.now == 0
    finally:
        running.kill()
        running.wait()
        exited.wait()
    assert pg.worker_alive(exited.pid) is False  # reaped: gone
    assert pg.worker_alive(os.getpid(), proc=str(tmp_path / "no-proc")) is False
    (tmp_path / "unreadable" / str(os.getpid()) / "stat").mkdir(parents=True)  # reading it fails, not as missing
    assert pg.worker_alive(os.getpid(), proc=str(tmp_path / "unreadable")) is True  # fell back to signal 0


def sig_server(kind, signals):
    """A master whose signal queue holds `signals`: a SimpleQueue (Gunicorn 23 and later) or a list."""
    if kind == "list":
        return types.SimpleNamespace(SIG_QUEUE=list(signals))
    sig_queue = pg.queue.SimpleQueue()
    for sig in signals:
        sig_queue.put_nowait(sig)
    return types.SimpleNamespace(SIG_QUEUE=sig_queue)


def queued(srv):
    """What the queue holds, in order (a SimpleQueue is emptied to read it: only for a test's last look)."""
    if isinstance(srv.SIG_QUEUE, list):
        return list(srv.SIG_QUEUE)
    taken = []
    while not srv.SIG_QUEUE.empty():
        taken.append(srv.SIG_QUEUE.get_nowait())
    return taken


@pytest.mark.parametrize("kind", ["simplequeue", "list"])
def test_a_stop_signal_in_the_masters_queue_is_seen_and_left_in_place(kind):
    """The master reads its signal queue only between two turns of its main loop (a SimpleQueue since
    Gunicorn 23, a list before): the wait reads it without taking anything out or reordering it."""
    signals = [pg.signal.SIGHUP, pg.signal.SIGCHLD]
    srv = sig_server(kind, signals)
    assert pg.stop_pending(srv) is False and queued(srv) == signals
    for stop in (pg.signal.SIGTERM, pg.signal.SIGINT, pg.signal.SIGQUIT):
        srv = sig_server(kind, [*signals, stop])
        assert pg.stop_pending(srv) is True and queued(srv) == [*signals, stop]
    assert pg.stop_pending(types.SimpleNamespace()) is False  # no queue to read: never a stop


def test_a_stop_during_the_wait_ends_it_at_once(tmp_path):
    """systemctl stop or restart while new workers load the app: the master stops now, not when they have
    loaded it (or after gunicorn_timeout)."""
    clock = Clock()
    srv = server({10: 1, 20: 2}, 1)  # 20 loads the app and never finishes
    srv.SIG_QUEUE = pg.queue.SimpleQueue()

    def sleep(seconds):
        clock.sleep(seconds)
        if clock.now > 0.3 and srv.SIG_QUEUE.empty():
            srv.SIG_QUEUE.put_nowait(pg.signal.SIGTERM)

    assert pg.wait_for_new_workers(srv, lambda pid: str(tmp_path / str(pid)), lambda pid: True, sleep,
                                   clock.monotonic) == "stopping"
    assert 0.3 < clock.now < 0.5
    assert srv.SIG_QUEUE.get_nowait() == pg.signal.SIGTERM  # left for the master's main loop


class Log:
    def __init__(self):
        self.lines = []

    def info(self, message, *args):
        self.lines.append(("info", message % args))

    def warning(self, message, *args):
        self.lines.append(("warning", message % args))


def test_the_master_logs_how_each_reload_wait_ended(tmp_path):
    ready_dir = tmp_path / "ready"
    clock = Clock()
    when_ready, _post_worker_init, _child_exit, _post_fork = pg.ready_hooks(str(ready_dir), clock.sleep,
                                                                            clock.monotonic, slots=1)
    retired = []
    srv = server({10: 1, 20: 2}, 1, timeout=2)
    srv.log = Log()
    srv.manage_workers = lambda: retired.append(True)
    when_ready(srv)
    srv.manage_workers()  # 20 never loads the app: the timeout
    assert retired == [True] and srv.log.lines[-1][0] == "warning" and "within the timeout (2.0 s)" in srv.log.lines[-1][1]
    (ready_dir / "20").touch()
    srv.manage_workers()
    assert srv.log.lines[-1] == ("info", "reload: every new worker loaded the app in 0.0 s; retiring the old workers")
    srv.WORKERS = {20: srv.WORKERS[20]}
    srv.manage_workers()  # steady: nothing to log
    assert len(srv.log.lines) == 2 and retired == [True] * 3
    pg.log_wait(types.SimpleNamespace(), "stopping", 1.0)  # a server without a log: nothing to do
