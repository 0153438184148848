"""The repository's ansible.cfg (README "Running it fast") and the Molecule scenarios' settings pipe
modules for every connection plugin, not only ssh: a module run is one round trip to the host.

Before this was checked, pipelining sat under [ssh_connection] only, so the docker connection (and
local, paramiko, ...) copied every module to a temporary file and ran it from there: five or six
round trips per task, 35 s instead of 27 s for a no-op converge of the single box.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

import harness

ROOT = harness.ROOT


def _run(command, config, tmp_path):
    """An ansible command line with only this config file (no ANSIBLE_* of the caller's environment)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    environment.update({"ANSIBLE_CONFIG": str(config), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "0",
                        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "l"), "ANSIBLE_REMOTE_TEMP": str(tmp_path / "r")})
    binary = Path(sys.executable).with_name(command[0])
    result = subprocess.run([str(binary) if binary.exists() else command[0], *command[1:]], env=environment,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _puts_of_a_local_ping(config, tmp_path):
    """The PUT lines of a -vvv module run over the local connection: none when the module is piped."""
    out = _run(["ansible", "localhost", "-c", "local", "-m", "ansible.builtin.ping", "-vvv"], config, tmp_path)
    assert "pong" in out
    return [line for line in out.splitlines() if " PUT " in line]


def test_the_repository_config_pipes_modules_over_a_connection_other_than_ssh(tmp_path):
    puts = _puts_of_a_local_ping(ROOT / "ansible.cfg", tmp_path)
    assert puts == [], "the module was copied to the host, not piped: " + "\n".join(puts)


def test_without_the_connection_section_the_module_is_copied(tmp_path):
    """The check above can fail: with pipelining set for ssh only, the same run copies the module."""
    config = tmp_path / "ansible.cfg"
    config.write_text("[ssh_connection]\npipelining = True\n")
    assert _puts_of_a_local_ping(config, tmp_path)


def test_the_repository_config_pipes_modules_over_ssh_too(tmp_path):
    """[connection] alone is enough for ssh as well (the config sets it once)."""
    plugins = json.loads(_run(["ansible-config", "dump", "-t", "connection", "--format", "json"],
                              ROOT / "ansible.cfg", tmp_path))
    ssh = next(options for entry in plugins for name, options in entry.items() if name == "ssh")
    assert {"name": "pipelining", "origin": str(ROOT / "ansible.cfg"), "value": True} in ssh, ssh


def test_the_molecule_scenarios_pipe_modules_over_the_docker_connection():
    config = yaml.safe_load((ROOT / ".config/molecule/config.yml").read_text())
    options = config["provisioner"]["config_options"]
    assert options.get("connection", {}).get("pipelining") is True, options
