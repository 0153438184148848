"""service_apply (plugins/modules/service_apply.py): the decisions, with a fake systemctl."""
import os

import pytest

from ansible_collections.pydeploy.django_stack.plugins.modules.service_apply import (ServiceApply, ServiceApplyError,
                                                                                     proc_children, proc_cmdline,
                                                                                     running_venv, strongest)

SERVICE, SOCKET = "gunicorn-app.service", "gunicorn-app.socket"


class FakeSystemd:
    """Units with ActiveState/UnitFileState/MainPID; records every systemctl call that changes something."""

    def __init__(self, **units):
        self.units = {name: dict(state) for name, state in units.items()}
        self.calls = []
        self.next_pid = 500
        self.fail = set()

    def unit(self, name):
        return self.units.setdefault(name, {"LoadState": "not-found", "ActiveState": "inactive",
                                            "UnitFileState": "", "MainPID": "0"})

    def __call__(self, argv):
        assert argv[0] == "systemctl"
        verb, args = argv[1], argv[2:]
        if verb == "show":
            names = args[args.index("--") + 1:]
            blocks = []
            for name in names:
                u = self.unit(name)
                blocks.append("\n".join([f"Id={name}", f"LoadState={u.get('LoadState', 'loaded')}",
                                         f"ActiveState={u['ActiveState']}", f"UnitFileState={u['UnitFileState']}",
                                         f"MainPID={u['MainPID']}", "FragmentPath=/etc/systemd/system/" + name]))
            return 0, "\n\n".join(blocks) + "\n", ""
        self.calls.append([verb, *args])
        if verb in self.fail:
            return 1, "", f"Job for {args[0]} failed."
        for name in args:
            u = self.unit(name)
            if verb == "start" and u["ActiveState"] != "active":
                u["ActiveState"] = "active"
                u["MainPID"] = str(self._pid()) if name.endswith(".service") else "0"
            elif verb == "restart":
                u["ActiveState"] = "active"
                u["MainPID"] = str(self._pid()) if name.endswith(".service") else "0"
            elif verb == "stop":
                u["ActiveState"] = "inactive"
                u["MainPID"] = "0"
            elif verb == "enable":
                u["UnitFileState"] = "enabled"
            elif verb == "disable":
                u["UnitFileState"] = "disabled"
        return 0, "", ""

    def _pid(self):
        self.next_pid += 1
        return self.next_pid


def running(pid=100):
    return {"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled", "MainPID": str(pid)}


def stopped(enabled="enabled"):
    return {"LoadState": "loaded", "ActiveState": "inactive", "UnitFileState": enabled, "MainPID": "0"}


@pytest.mark.parametrize("actions, expected", [
    ([], "none"), (["reload"], "reload"), (["reload", "restart"], "restart"),
    (["recreate_socket", "reload"], "recreate_socket"), ("restart", "restart"), (["none", "none"], "none"),
    (["reload", "switch"], "switch"), (["switch", "restart"], "restart"),
])
def test_strongest_wins(actions, expected):
    assert strongest(actions) == expected


def test_unknown_action_refused():
    with pytest.raises(ServiceApplyError):
        strongest(["bounce"])


def test_noop_when_running_enabled_and_nothing_due():
    systemd = FakeSystemd(**{SERVICE: running(), SOCKET: running(0)})
    result = ServiceApply(systemd).apply(SERVICE, SOCKET)
    assert result["changed"] is False and result["action"] == "none" and systemd.calls == []
    assert result["main_pid_before"] == result["main_pid_after"] == 100


def test_first_start_enables_starts_socket_first_and_nothing_more_is_due():
    systemd = FakeSystemd(**{SERVICE: stopped("disabled"), SOCKET: stopped("disabled")})
    result = ServiceApply(systemd).apply(SERVICE, SOCKET, actions=["restart"], daemon_reload=True)
    assert systemd.calls == [["daemon-reload"], ["enable", SOCKET, SERVICE], ["start", SOCKET], ["start", SERVICE]]
    assert result["started"] is True and result["action"] == "start" and result["due"] == "restart"
    assert result["enabled"] == [SOCKET, SERVICE] and result["daemon_reloaded"]
    assert result["main_pid_before"] == 0 and result["main_pid_after"] > 0


@pytest.mark.parametrize("actions, calls", [
    (["reload"], [["reload", SERVICE]]),
    (["reload", "restart"], [["restart", SERVICE]]),
    (["restart", "recreate_socket", "reload"], [["stop", SERVICE], ["restart", SOCKET], ["start", SERVICE]]),
])
def test_running_service_gets_the_strongest_due_action(actions, calls):
    systemd = FakeSystemd(**{SERVICE: running(), SOCKET: running(0)})
    result = ServiceApply(systemd).apply(SERVICE, SOCKET, actions=actions)
    assert systemd.calls == calls and result["changed"]
    assert result["action"] == strongest(actions)


def test_restart_changes_the_main_pid_reload_keeps_it():
    systemd = FakeSystemd(**{SERVICE: running(100)})
    assert ServiceApply(systemd).apply(SERVICE, actions=["reload"])["main_pid_after"] == 100
    restarted = ServiceApply(systemd).apply(SERVICE, actions=["restart"])
    assert restarted["main_pid_before"] == 100 and restarted["main_pid_after"] not in (0, 100)


def test_recreate_socket_without_socket_is_a_restart():
    systemd = FakeSystemd(**{SERVICE: running()})
    result = ServiceApply(systemd).apply(SERVICE, actions=["recreate_socket"])
    assert systemd.calls == [["restart", SERVICE]] and result["action"] == "restart"


def test_stopped_socket_is_started_even_when_service_runs():
    systemd = FakeSystemd(**{SERVICE: running(), SOCKET: stopped()})
    ServiceApply(systemd).apply(SERVICE, SOCKET)
    assert systemd.calls == [["start", SOCKET]]


def test_retire_stops_disables_and_removes_before_starting(tmp_path):
    old_service, old_socket = "uvicorn-app.service", "uvicorn-app.socket"
    (tmp_path / old_service).write_text("[Service]\n")
    (tmp_path / old_socket).write_text("[Socket]\n")
    systemd = FakeSystemd(**{SERVICE: stopped("disabled"), SOCKET: stopped("disabled"),
                             old_service: running(77), old_socket: running(0)})
    result = ServiceApply(systemd, unit_dir=str(tmp_path)).apply(
        SERVICE, SOCKET, retire=[old_service, old_socket], retire_remove=True)
    assert systemd.calls[:5] == [["stop", old_service], ["disable", old_service], ["stop", old_socket],
                                 ["disable", old_socket], ["daemon-reload"]]
    assert systemd.calls[-1] == ["start", SERVICE]
    assert result["retired"] == [old_service, old_socket] and result["daemon_reloaded"]
    assert not (tmp_path / old_service).exists() and not (tmp_path / old_socket).exists()


def test_retire_of_absent_units_does_nothing(tmp_path):
    systemd = FakeSystemd(**{SERVICE: running()})
    result = ServiceApply(systemd, unit_dir=str(tmp_path)).apply(SERVICE, retire=["gone.service"], retire_remove=True)
    assert systemd.calls == [] and result["retired"] == [] and not result["changed"]


def test_check_mode_reports_without_changing():
    systemd = FakeSystemd(**{SERVICE: running(), SOCKET: running(0)})
    result = ServiceApply(systemd, check_mode=True).apply(SERVICE, SOCKET, actions=["recreate_socket"])
    assert systemd.calls == [] and result["changed"] and result["action"] == "recreate_socket"
    assert result["commands"] == [["systemctl", "stop", SERVICE], ["systemctl", "restart", SOCKET],
                                  ["systemctl", "start", SERVICE]]
    assert systemd.units[SERVICE]["MainPID"] == "100"


def test_missing_unit_is_an_error_naming_it():
    systemd = FakeSystemd()
    with pytest.raises(ServiceApplyError) as err:
        ServiceApply(systemd).apply(SERVICE)
    assert SERVICE in err.value.msg


def test_failed_action_raises_with_output():
    systemd = FakeSystemd(**{SERVICE: running()})
    systemd.fail.add("reload")
    with pytest.raises(ServiceApplyError) as err:
        ServiceApply(systemd).apply(SERVICE, actions=["reload"])
    assert "reload" in err.value.msg and err.value.rc == 1


# ---- switch: a new release of the app's code ---------------------------------------------------------------
VENV_REAL = "/srv/app/venvs/v-1"
LINKS = {"/srv/app/current/venv": VENV_REAL, "/srv/app/current": "/srv/app/releases/r2"}


def resolve(path):
    """os.path.realpath over a fake tree of symbolic links (LINKS)."""
    for link, target in sorted(LINKS.items(), key=lambda item: -len(item[0])):
        if path == link or path.startswith(link + "/"):
            return resolve(target + path[len(link):])
    return path


class Workers:
    """The main process's children: the old ones exit after `exit_after` polls (never, when None)."""

    def __init__(self, old, new, exit_after=2):
        self.old, self.new, self.exit_after, self.polls = set(old), set(new), exit_after, 0

    def __call__(self, pid):
        assert pid == 100
        self.polls += 1
        if self.polls == 1:
            return set(self.old)
        if self.exit_after is not None and self.polls > self.exit_after:
            return set(self.new)
        return self.old | self.new


def switcher(systemd, argv0, workers, clock=None):
    clock = clock or [0.0]
    return ServiceApply(systemd, cmdline=lambda pid: [argv0, "/srv/app/current/venv/bin/gunicorn", "--config", "x"],
                        children=workers, realpath=resolve, sleep=lambda s: clock.__setitem__(0, clock[0] + s),
                        monotonic=lambda: clock[0])


@pytest.mark.parametrize("cmdline, venv", [
    (["/srv/app/venvs/v-1/bin/python3", "/srv/app/current/venv/bin/gunicorn"], VENV_REAL),
    (["/srv/app/venvs/v-1/bin/python3.11"], VENV_REAL),
    # Through a link: what it pointed to when the process started is unknown.
    (["/srv/app/current/venv/bin/python3"], None),
    (["gunicorn: master [app]"], None),  # setproctitle
    (["python3", "-m", "gunicorn"], None),
    (["/usr/bin/python3"], "/usr"),
    (["/srv/app/venvs/v-1/bin/gunicorn"], None),
    ([], None),
])
def test_running_venv_is_read_from_argv0_without_links(cmdline, venv):
    assert running_venv(cmdline, resolve) == venv


def test_switch_with_the_same_venv_reloads_and_returns_once_the_old_workers_exited():
    systemd = FakeSystemd(**{SERVICE: running(100), SOCKET: running(0)})
    workers = Workers(old={201, 202}, new={301, 302}, exit_after=3)
    result = switcher(systemd, "/srv/app/venvs/v-1/bin/python3", workers).apply(
        SERVICE, SOCKET, actions=["switch"], venv="/srv/app/current/venv")
    assert systemd.calls == [["reload", SERVICE]]
    assert result["action"] == "reload" and result["main_pid_after"] == 100
    assert workers.polls == 4  # before, then until none of the old ones is left
    assert "2 old workers exited" in result["switch"]


def test_switch_to_another_venv_restarts():
    systemd = FakeSystemd(**{SERVICE: running(100)})
    LINKS["/srv/app/current/venv"] = "/srv/app/venvs/v-2"
    try:
        result = switcher(systemd, "/srv/app/venvs/v-1/bin/python3", Workers({201}, {301})).apply(
            SERVICE, actions=["switch"], venv="/srv/app/current/venv")
    finally:
        LINKS["/srv/app/current/venv"] = VENV_REAL
    assert systemd.calls == [["restart", SERVICE]] and result["action"] == "restart"
    assert "/srv/app/venvs/v-1" in result["switch"] and "/srv/app/venvs/v-2" in result["switch"]


@pytest.mark.parametrize("argv0, venv", [
    ("/srv/app/current/venv/bin/python3", "/srv/app/current/venv"),  # started through the link
    ("gunicorn: master [app]", "/srv/app/current/venv"),
    ("/srv/app/venvs/v-1/bin/python3", None),
])
def test_switch_restarts_when_the_running_venv_cannot_be_told_or_none_is_given(argv0, venv):
    systemd = FakeSystemd(**{SERVICE: running(100)})
    result = switcher(systemd, argv0, Workers({201}, {301})).apply(SERVICE, actions=["switch"], venv=venv)
    assert systemd.calls == [["restart", SERVICE]] and result["action"] == "restart"


def test_switch_restarts_when_old_workers_outlive_the_timeout():
    systemd = FakeSystemd(**{SERVICE: running(100)})
    clock = [0.0]
    result = switcher(systemd, "/srv/app/venvs/v-1/bin/python3", Workers({201}, {301}, exit_after=None), clock).apply(
        SERVICE, actions=["switch"], venv="/srv/app/current/venv", switch_timeout=5)
    assert systemd.calls == [["reload", SERVICE], ["restart", SERVICE]]
    assert result["action"] == "restart" and "still ran 5 s" in result["switch"]
    assert 5.0 <= clock[0] < 5.5


def test_switch_of_a_stopped_service_starts_it():
    systemd = FakeSystemd(**{SERVICE: stopped()})
    result = switcher(systemd, "", Workers(set(), set())).apply(SERVICE, actions=["switch"], venv="/srv/app/current/venv")
    assert systemd.calls == [["start", SERVICE]] and result["action"] == "start" and "switch" not in result


def test_switch_in_check_mode_waits_for_nothing():
    systemd = FakeSystemd(**{SERVICE: running(100)})
    applier = switcher(systemd, "/srv/app/venvs/v-1/bin/python3", Workers({201}, {301}, exit_after=None))
    applier.check_mode = True
    result = applier.apply(SERVICE, actions=["switch"], venv="/srv/app/current/venv")
    assert systemd.calls == [] and result["action"] == "reload" and result["commands"] == [["systemctl", "reload", SERVICE]]


def test_proc_readers_on_this_process():
    assert proc_cmdline(os.getpid())[0]
    assert os.getpid() in proc_children(os.getppid())
    assert proc_cmdline(2 ** 22 + 7) == []
