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
