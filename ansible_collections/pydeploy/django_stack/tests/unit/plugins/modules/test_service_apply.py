"""service_apply (plugins/modules/service_apply.py): the decisions, with a fake systemctl."""
import pytest

from ansible_collections.pydeploy.django_stack.plugins.modules.service_apply import (ServiceApply, ServiceApplyError,
                                                                                     strongest)

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
