#!/usr/bin/python
# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Bring a (socket-activated) systemd service to what is due, in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
module: service_apply
author: pydeploy maintainers (@pydeploy)
version_added: 0.2.0
short_description: Enable a systemd service (and its socket), start it, or apply the strongest due action
description:
  - One call does what a service needs after its configuration, units or code changed, in the order that keeps a
    socket-activated service serving - optional C(daemon-reload); stop, disable (and optionally delete) units that
    another layout left behind (O(retire)); enable the socket and the service; start the socket; then either start
    the service when it is not running (it then runs everything that is new, so nothing more is due) or do the
    strongest of the due actions O(action).
  - The actions, weakest first - C(none); C(reload) (C(systemctl reload), e.g. Gunicorn's HUP, same main process);
    C(switch) (new code of the app, see below); C(restart) (new main process; with socket activation systemd holds
    the listening socket, connections wait in its backlog); C(recreate_socket) (stop the service, restart the
    socket unit so that a changed C(.socket) unit takes effect, start the service; the one action that refuses
    connections for a moment).
  - C(switch) is a reload when the main process already runs the interpreter of O(venv) (a new release that kept
    its virtualenv, whose new workers load the new code while the old ones serve), and the module returns only
    once every worker process the main process had before the reload has exited, so that no old code serves after
    it. It is a restart when the main process runs another virtualenv (or one it names through a symbolic link,
    which may have changed since it started), when O(venv) is not given, or when old workers are still there
    after O(switch_timeout) seconds.
  - Returns what it did and the main PID before and after.
  - The handler pattern the collection's roles use with it - config tasks notify topics; one handler per topic
    records the due action for the instance in a fact (a dict instance -> list of actions); one handler calls this
    module with that list (the strongest wins) unless the service was started fresh earlier in the play; a last
    handler clears the record and the fresh mark (a later flush in the same run acts again).
options:
  service:
    description: The service unit, e.g. C(gunicorn-app.service).
    type: str
    required: true
  socket:
    description: Its socket unit, when socket-activated (enabled and started before the service).
    type: str
  action:
    description:
      - Due actions; the strongest is applied when the service is running already. A string is one action.
    type: list
    elements: str
    choices: [none, reload, switch, restart, recreate_socket]
    default: []
  venv:
    description:
      - The virtualenv of the code the service is to run (e.g. the C(venv) link of the app's current release), for
        the action C(switch).
    type: path
  switch_timeout:
    description:
      - How long a C(switch) waits for the old workers to exit after the reload before it restarts instead.
    type: int
    default: 90
  daemon_reload:
    description: Run C(systemctl daemon-reload) first (unit files changed).
    type: bool
    default: false
  enabled:
    description: Enable the socket and the service (C(systemctl enable)).
    type: bool
    default: true
  retire:
    description:
      - Units to stop and disable when present, before the service is started (e.g. the units of another mode of
        the same app, which may hold the same TCP port).
    type: list
    elements: str
    default: []
  retire_remove:
    description: Also delete the retired units' files from O(unit_dir) (then systemd is reloaded).
    type: bool
    default: false
  unit_dir:
    description: Directory of the unit files O(retire_remove) deletes.
    type: path
    default: /etc/systemd/system
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
notes:
  - Needs systemd as the init system of the host.
"""

EXAMPLES = r"""
# In the role's tasks: enable and start (register it: a fresh start makes the handlers' work moot).
- name: Service | enabled and running
  pydeploy.django_stack.service_apply:
    service: gunicorn-app.service
    socket: gunicorn-app.socket
    daemon_reload: "{{ units is changed }}"
  register: started
  notify: gunicorn started

# In the handlers: apply what the recording handlers collected for this instance.
- name: Gunicorn apply
  pydeploy.django_stack.service_apply:
    service: gunicorn-app.service
    socket: gunicorn-app.socket
    action: "{{ gunicorn_due['app'] }}"
  listen: [gunicorn reload, gunicorn restart, gunicorn units changed]
"""

RETURN = r"""
action:
  description: What was done to the service - C(none), C(start), C(reload), C(restart) or C(recreate_socket).
  returned: always
  type: str
switch:
  description: Why a due C(switch) became the reload or the restart it did.
  returned: when a switch was due and the service was running
  type: str
due:
  description: The strongest due action that was asked for.
  returned: always
  type: str
started:
  description: The service was not running and was started (every due action is then moot).
  returned: always
  type: bool
enabled:
  description: Units that were enabled by this call.
  returned: always
  type: list
  elements: str
retired:
  description: Units that were stopped, disabled or deleted by this call.
  returned: always
  type: list
  elements: str
daemon_reloaded:
  description: systemd was reloaded.
  returned: always
  type: bool
main_pid_before:
  description: MainPID of the service before (0 when not running).
  returned: always
  type: int
main_pid_after:
  description: MainPID of the service after (0 in check mode when it would be started).
  returned: always
  type: int
commands:
  description: The systemctl commands that were run (or would run, in check mode) to change something.
  returned: always
  type: list
  elements: list
journal:
  description: The service's last journal lines, when an action failed.
  returned: failure
  type: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

ACTIONS = ("none", "reload", "switch", "restart", "recreate_socket")
RUNNING = frozenset({"active", "activating", "reloading", "refreshing"})
ENABLED = frozenset({"enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "linked", "linked-runtime"})


class ServiceApplyError(Exception):
    def __init__(self, msg, rc=None, stdout="", stderr=""):
        super().__init__(msg)
        self.msg, self.rc, self.stdout, self.stderr = msg, rc, stdout, stderr


def strongest(actions):
    """The strongest of the due actions ('none' for none)."""
    if isinstance(actions, str):
        actions = [actions]
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise ServiceApplyError(f"unknown action(s) {', '.join(map(str, unknown))}; known: {', '.join(ACTIONS)}")
    return max(actions, key=ACTIONS.index, default="none")


def parse_show(text):
    """`systemctl show -p ... unit...` output -> {Id: {property: value}} (blocks separated by blank lines)."""
    units, current = {}, {}
    for line in text.splitlines() + [""]:
        if not line.strip():
            if current.get("Id"):
                units[current["Id"]] = current
            current = {}
            continue
        key, value = line.split("=", 1) if "=" in line else (line, "")
        current[key] = value
    return units


def running_venv(cmdline, realpath=os.path.realpath):
    """The virtualenv whose interpreter a process runs, from its command line (argv[0] '<venv>/bin/python3', as
    the shebang of a venv's script gives it), or None: argv[0] is not such a path, or the venv's path goes through
    a symbolic link (it may point elsewhere now than when the process started)."""
    argv0 = cmdline[0] if cmdline else ""
    bindir = os.path.dirname(argv0)
    if not os.path.isabs(argv0) or os.path.basename(bindir) != "bin" or not os.path.basename(argv0).startswith("python"):
        return None
    venv = os.path.normpath(os.path.dirname(bindir))
    return venv if realpath(venv) == venv else None


def proc_cmdline(pid, proc="/proc"):
    """A process's command line as a list ([] when it is gone or unreadable)."""
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [arg.decode("utf-8", "surrogateescape") for arg in raw.split(b"\0") if arg]


def proc_children(pid, proc="/proc"):
    """The PIDs of the live processes whose parent is `pid`."""
    out = set()
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc, name, "stat"), encoding="utf-8", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[0] != "Z" and fields[1] == str(pid):
            out.add(int(name))
    return out


class ServiceApply:
    """The logic, with the command runner injected: run(argv) -> (rc, stdout, stderr); and, for a switch, how to
    read a process's command line and children, resolve a path, sleep and tell the time."""

    PROPERTIES = "Id,LoadState,ActiveState,UnitFileState,MainPID,FragmentPath"

    def __init__(self, run, check_mode=False, unit_dir="/etc/systemd/system", exists=os.path.exists,
                 remove=os.unlink, cmdline=proc_cmdline, children=proc_children, realpath=os.path.realpath,
                 sleep=time.sleep, monotonic=time.monotonic):
        self.run = run
        self.cmdline, self.children, self.realpath = cmdline, children, realpath
        self.sleep, self.monotonic = sleep, monotonic
        self.check_mode = check_mode
        self.unit_dir = unit_dir
        self.exists = exists
        self.remove = remove
        self.commands = []

    def systemctl(self, *args, change=True):
        argv = ["systemctl", *args]
        if change:
            self.commands.append(argv)
            if self.check_mode:
                return ""
        rc, out, err = self.run(argv)
        if rc != 0:
            raise ServiceApplyError(f"{' '.join(argv)} failed (rc={rc}): {(err or out).strip()}", rc, out, err)
        return out

    def state(self, units):
        # Names as given: systemctl show reports the unit's Id, which for an alias may differ.
        out = self.systemctl("show", "-p", self.PROPERTIES, "--", *units, change=False)
        blocks = [b for b in out.split("\n\n") if b.strip()]
        by_name = {}
        for unit, block in zip(units, blocks):
            props = parse_show(block)
            by_name[unit] = next(iter(props.values()), {})
        for unit in units:
            by_name.setdefault(unit, {})
        return by_name

    def switch(self, service, pid, venv, timeout):
        """A switch of a running service: (action done, why)."""
        running = running_venv(self.cmdline(pid), self.realpath)
        wanted = self.realpath(venv) if venv else None
        if running is None or running != wanted:
            self.systemctl("restart", service)
            return "restart", (f"restart: the main process runs {running or 'no virtualenv named without a link'}, "
                               f"the new code {wanted or 'no venv given'}")
        before = self.children(pid)
        self.systemctl("reload", service)
        if self.check_mode:
            return "reload", f"reload: the main process runs {running} already"
        deadline = self.monotonic() + timeout
        while before & self.children(pid):
            if self.monotonic() >= deadline:
                self.systemctl("restart", service)
                return "restart", f"restart: old workers still ran {timeout} s after the reload"
            self.sleep(0.2)
        return "reload", f"reload: the main process runs {running} already; its {len(before)} old workers exited"

    def apply(self, service, socket=None, actions=(), daemon_reload=False, enabled=True, retire=(),
              retire_remove=False, venv=None, switch_timeout=90):
        due = strongest(list(actions))
        result = {"changed": False, "action": "none", "due": due, "started": False, "enabled": [], "retired": [],
                  "daemon_reloaded": False}
        units = [u for u in (socket, service) if u]
        retire = [u for u in retire if u and u not in units]

        if retire:
            retire_state = self.state(retire)
            removed = False
            for unit in retire:
                props = retire_state[unit]
                touched = False
                if props.get("ActiveState") in RUNNING:
                    self.systemctl("stop", unit)
                    touched = True
                elif props.get("ActiveState") == "failed":
                    self.systemctl("reset-failed", unit)
                    touched = True
                if props.get("UnitFileState") in ("enabled", "enabled-runtime", "linked", "linked-runtime"):
                    self.systemctl("disable", unit)
                    touched = True
                path = os.path.join(self.unit_dir, unit)
                if retire_remove and self.exists(path):
                    self.commands.append(["rm", path])
                    if not self.check_mode:
                        self.remove(path)
                    removed = touched = True
                if touched:
                    result["retired"].append(unit)
            daemon_reload = daemon_reload or removed

        if daemon_reload:
            self.systemctl("daemon-reload")
            result["daemon_reloaded"] = True

        state = self.state(units)
        result["main_pid_before"] = int(state[service].get("MainPID") or 0)
        for unit in units:
            if state[unit].get("LoadState") == "not-found" and not self.check_mode:
                raise ServiceApplyError(f"unit {unit} not found (is its file installed, and systemd reloaded?)")

        if enabled:
            to_enable = [u for u in units if state[u].get("UnitFileState") not in ENABLED]
            if to_enable:
                self.systemctl("enable", *to_enable)
                result["enabled"] = to_enable

        if socket and state[socket].get("ActiveState") not in RUNNING:
            self.systemctl("start", socket)

        if state[service].get("ActiveState") not in RUNNING:
            self.systemctl("start", service)
            result.update(action="start", started=True)
        elif due == "reload":
            self.systemctl("reload", service)
            result["action"] = "reload"
        elif due == "switch":
            result["action"], result["switch"] = self.switch(service, result["main_pid_before"], venv, switch_timeout)
        elif due == "restart" or (due == "recreate_socket" and not socket):
            self.systemctl("restart", service)
            result["action"] = "restart"
        elif due == "recreate_socket":
            self.systemctl("stop", service)
            self.systemctl("restart", socket)
            self.systemctl("start", service)
            result["action"] = "recreate_socket"

        if self.check_mode:
            result["main_pid_after"] = 0 if result["started"] else result["main_pid_before"]
        else:
            after = self.state([service])
            result["main_pid_after"] = int(after[service].get("MainPID") or 0)
        result["commands"] = self.commands
        result["changed"] = bool(self.commands)
        return result


def main():
    module = AnsibleModule(
        argument_spec={
            "service": {"type": "str", "required": True},
            "socket": {"type": "str"},
            "action": {"type": "list", "elements": "str", "default": [], "choices": list(ACTIONS)},
            "daemon_reload": {"type": "bool", "default": False},
            "enabled": {"type": "bool", "default": True},
            "retire": {"type": "list", "elements": "str", "default": []},
            "retire_remove": {"type": "bool", "default": False},
            "unit_dir": {"type": "path", "default": "/etc/systemd/system"},
            "venv": {"type": "path"},
            "switch_timeout": {"type": "int", "default": 90},
        },
        supports_check_mode=True,
    )
    params = module.params
    systemctl = module.get_bin_path("systemctl", required=True)

    def run(argv):
        if argv[0] == "systemctl":
            argv = [systemctl, *argv[1:]]
        return module.run_command(argv)

    applier = ServiceApply(run, check_mode=module.check_mode, unit_dir=params["unit_dir"])
    try:
        result = applier.apply(params["service"], socket=params["socket"], actions=params["action"],
                               daemon_reload=params["daemon_reload"], enabled=params["enabled"],
                               retire=params["retire"], retire_remove=params["retire_remove"], venv=params["venv"],
                               switch_timeout=params["switch_timeout"])
    except ServiceApplyError as exc:
        journal = ""
        journalctl = module.get_bin_path("journalctl")
        if journalctl:
            journal = module.run_command([journalctl, "-u", params["service"], "-n", "30", "--no-pager"])[1]
        module.fail_json(msg=exc.msg, rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr, journal=journal,
                         commands=applier.commands)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
