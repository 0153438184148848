"""The repository's ansible.cfg (README "Running it fast") and the Molecule scenarios' settings pipe
modules for every connection plugin, not only ssh: a module run is one round trip to the host.

Before this was checked, pipelining sat under [ssh_connection] only, so the docker connection (and
local, paramiko, ...) copied every module to a temporary file and ran it from there: five or six
round trips per task, 35 s instead of 27 s for a no-op converge of the single box.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

import harness

ROOT = harness.ROOT


def _ansible(*args, env=None, cwd=None):
    binary = Path(sys.executable).with_name(args[0])
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    environment.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "0"})
    environment.update(env or {})
    return subprocess.run([str(binary) if binary.exists() else args[0], *args[1:]], env=environment, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_repository_config_pipes_modules_over_a_connection_other_than_ssh(tmp_path):
    """A module run over the local connection with the repository's ansible.cfg: with pipelining the
    verbose log shows the module started from stdin, no file put on the host first."""
    result = _ansible("ansible", "localhost", "-c", "local", "-m", "ansible.builtin.ping", "-vvv",
                      env={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "l"),
                           "ANSIBLE_REMOTE_TEMP": str(tmp_path / "r")},
                      cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pong" in result.stdout
    puts = [line for line in result.stdout.splitlines() if " PUT " in line]
    assert puts == [], "the module was copied to the host, not piped: " + "\n".join(puts)


def test_without_the_connection_section_the_module_is_copied(tmp_path):
    """The check above can fail: with pipelining set for ssh only, the same run copies the module."""
    config = tmp_path / "ansible.cfg"
    config.write_text("[ssh_connection]\npipelining = True\n")
    result = _ansible("ansible", "localhost", "-c", "local", "-m", "ansible.builtin.ping", "-vvv",
                      env={"ANSIBLE_CONFIG": str(config), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "l"),
                           "ANSIBLE_REMOTE_TEMP": str(tmp_path / "r")},
                      cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(" PUT " in line for line in result.stdout.splitlines()), result.stdout[-3000:]


def test_the_molecule_scenarios_pipe_modules_over_the_docker_connection():
    config = yaml.safe_load((ROOT / ".config/molecule/config.yml").read_text())
    options = config["provisioner"]["config_options"]
    assert options.get("connection", {}).get("pipelining") is True, options
