"""roles/gunicorn/files/pydeploy_gunicorn.py: the reload hooks that keep old workers serving until the new
ones loaded the app, and the configuration checker's command line."""
import importlib.util
import os
import pathlib
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


def test_hooks_patch_manage_workers_and_track_ready_files(tmp_path):
    ready_dir = tmp_path / "ready"
    when_ready, post_worker_init, child_exit = pg.ready_hooks(str(ready_dir))
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


def test_checker_usage_and_missing_gunicorn(capsys):
    assert pg.main([]) == 2
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        assert pg.main(["--check", "/nonexistent.conf.py"]) == 1
        assert "Gunicorn is not installed" in capsys.readouterr().err
    else:
        pytest.skip("gunicorn installed here: the missing-package path is not reachable")
