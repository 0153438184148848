"""roles/uvicorn_worker/files/pydeploy_uvicorn_worker.py: the parts that need no Uvicorn - which systemd
sockets are ours, the checker's command line, the missing-package report."""
import importlib.util
import os
import pathlib
import socket

MODULE = pathlib.Path(__file__).resolve().parents[3] / "roles/uvicorn_worker/files/pydeploy_uvicorn_worker.py"
spec = importlib.util.spec_from_file_location("pydeploy_uvicorn_worker", MODULE)
pu = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pu)


def test_systemd_fds_only_for_the_process_systemd_meant():
    assert pu.systemd_fds({"LISTEN_FDS": "2", "LISTEN_PID": "42"}, pid=42) == [3, 4]
    assert pu.systemd_fds({"LISTEN_FDS": "2", "LISTEN_PID": "42"}, pid=43) == []  # a spawned worker
    assert pu.systemd_fds({}, pid=42) == []
    assert pu.systemd_fds({"LISTEN_FDS": "x", "LISTEN_PID": "42"}, pid=42) == []


def test_one_socket_is_left_to_uvicorns_fd_3(monkeypatch):
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    given = [object()]
    assert pu._all_systemd_sockets(given) is given  # nothing created, nothing that could close fd 3


def test_several_sockets_are_all_served_from_duplicated_fds(monkeypatch):
    first, second = socket.socket(), socket.socket()
    try:
        monkeypatch.setattr(pu, "systemd_fds", lambda: [first.fileno(), second.fileno()])
        sockets = pu._all_systemd_sockets(["fd 3 only"])
        assert len(sockets) == 2 and all(isinstance(s, socket.socket) for s in sockets)
        assert {s.fileno() for s in sockets}.isdisjoint({first.fileno(), second.fileno()})
        for s in sockets:
            s.close()
        assert first.fileno() != -1 and second.fileno() != -1  # systemd's fds stay open
    finally:
        first.close()
        second.close()


def test_check_arguments():
    assert pu.parse_check_args(["--check", "{}"]) == ("{}", [], None)
    assert pu.parse_check_args(["--check", "{}", "--require", "uvicorn", "uvloop"]) == ("{}", ["uvicorn", "uvloop"], None)
    assert pu.parse_check_args(["--check", "{}", "--require", "uvicorn", "--cli", "app:x", "--fd", "3"]) == (
        "{}", ["uvicorn"], ["app:x", "--fd", "3"])


def test_missing_distribution_is_reported_before_anything_else(capsys):
    assert pu.main(["--check", "{}", "--require", "pydeploy-surely-not-installed"]) == 1
    assert "lacks pydeploy-surely-not-installed" in capsys.readouterr().err


def test_settings_owned_by_gunicorn_are_refused():
    try:
        pu.settings_from('{"workers": 3}')
    except ValueError as exc:
        assert "workers" in str(exc)
    else:
        raise AssertionError("workers accepted")
    assert pu.settings_from('{"loop": "uvloop"}') == {"loop": "uvloop"}


class _Worker:
    """Uvicorn 0.54's supervisor-side Process, reduced to what the health check uses: a duplex pipe made
    in the supervisor, a child process that gets both ends, start()."""

    def __init__(self):
        import multiprocessing

        self.parent_conn, self.child_conn = multiprocessing.Pipe()
        # fork (the test's functions need no pickling); the child inherits both ends, as a spawned
        # worker receives both in its pickled Process object.
        self.process = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))

    def start(self):
        self.process.start()


def test_a_worker_that_exits_closes_the_health_check_pipe_at_once():
    """A health check of a worker that has exited: with the supervisor's copy of the worker's end
    closed after start, the pipe reads as closed (EOF) instead of staying silent until the timeout."""
    kept = _Worker()
    kept.start()
    kept.process.join()
    assert kept.parent_conn.poll(0.2) is False  # Uvicorn as it is: silent, the check would wait it out

    released = _Worker()
    pu._start_letting_go_of_the_workers_end(_Worker.start)(released)
    assert released.child_conn.closed
    released.process.join()
    assert released.parent_conn.poll(5) is True  # EOF: readable at once
    try:
        released.parent_conn.recv()
    except EOFError:
        pass
    else:
        raise AssertionError("a pong from a worker that exited")
    assert pu._start_letting_go_of_the_workers_end(_Worker.start)._pydeploy is True
