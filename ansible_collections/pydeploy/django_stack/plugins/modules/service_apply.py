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
    C(restart) (new main process; with socket activation systemd holds the listening socket, connections wait in
    its backlog); C(recreate_socket) (stop the service, restart the socket unit so that a changed C(.socket) unit
    takes effect, start the service; the one action that refuses connections for a moment).
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
    choices: [none, reload, restart, recreate_socket]
    default: []
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

from ansible.module_utils.basic import AnsibleModule

ACTIONS = ("none", "reload", "restart", "recreate_socket")
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


class ServiceApply:
    """The logic, with the command runner injected: run(argv) -> (rc, stdout, stderr)."""

    PROPERTIES = "Id,LoadState,ActiveState,UnitFileState,MainPID,FragmentPath"

    def __init__(self, run, check_mode=False, unit_dir="/etc/systemd/system", exists=os.path.exists,
                 remove=os.unlink):
        self.run = run
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

    def apply(self, service, socket=None, actions=(), daemon_reload=False, enabled=True, retire=(),
              retire_remove=False):
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
                               retire=params["retire"], retire_remove=params["retire_remove"])
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
