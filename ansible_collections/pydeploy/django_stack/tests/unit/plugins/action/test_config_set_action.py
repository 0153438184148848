"""config_set's action side (plugins/action/config_set.py), run by ansible-playbook on the local host:
templates of the role rendered with the task's variables, role files, content, one module call."""
import json
import os
import pathlib
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap

import pytest

COLLECTIONS_ROOT = pathlib.Path(__file__).resolve().parents[7]  # the directory holding ansible_collections/


def playbook(tmp_path, tasks, extra_vars=None, check=False):
    role = tmp_path / "roles" / "r"
    (role / "tasks").mkdir(parents=True, exist_ok=True)
    (role / "tasks" / "main.yml").write_text(textwrap.dedent(tasks))
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  roles: [r]\n")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT), "ANSIBLE_ROLES_PATH": str(tmp_path / "roles"),
           "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    cmd = ["ansible-playbook", "-c", "local", "-i", "localhost,", str(play),
           "-e", json.dumps({"ansible_python_interpreter": sys.executable, **(extra_vars or {})})]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=tmp_path)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    results = [t["hosts"]["localhost"] for p in out["plays"] for t in p["tasks"]]
    return proc.returncode, results


@pytest.fixture(name="role")
def fixture_role(tmp_path):
    role = tmp_path / "roles" / "r"
    (role / "templates").mkdir(parents=True)
    (role / "files").mkdir()
    (role / "templates" / "app.conf.j2").write_text(
        "# {{ ansible_managed }}\nworkers = {{ workers }}\n{% if tls %}\ncertfile = '/etc/x.pem'\n{% endif %}\n")
    (role / "files" / "helper.py").write_text("print('helper')\n")
    return role


TASKS = """\
- name: The set
  pydeploy.django_stack.config_set:
    directories:
      - path: "{{ out }}"
        mode: "0750"
    files:
      - dest: "{{ out }}/app.conf"
        template: app.conf.j2
        mode: 0640
      - dest: "{{ out }}/helper.py"
        src: helper.py
      - dest: "{{ out }}/note.txt"
        content: "workers={{ workers }}\\n"
    validate: [grep, -q, "workers = {{ workers }}", "%{stage}/app.conf"]
    stage_root: "{{ stage }}"
"""


def test_renders_template_src_and_content_then_goes_live(tmp_path, role):
    out = tmp_path / "out"
    variables = {"out": str(out), "stage": str(tmp_path / "stage"), "workers": 3, "tls": True}
    rc, results = playbook(tmp_path, TASKS, variables)
    assert rc == 0, results
    assert results[0]["changed"] and results[0]["validated"]
    assert "invocation" not in results[0]  # the rendered content is not echoed back
    text = (out / "app.conf").read_text()
    assert text.startswith("# Ansible managed") and "workers = 3\ncertfile = '/etc/x.pem'\n" in text
    assert text.endswith("\n")  # trailing newline kept, as the template module does
    assert stat.S_IMODE((out / "app.conf").stat().st_mode) == 0o640  # YAML 0640 (an int) is the mode 0640
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert (out / "helper.py").read_text() == "print('helper')\n"
    assert (out / "note.txt").read_text() == "workers=3\n"

    rc, results = playbook(tmp_path, TASKS, variables)
    assert rc == 0 and not results[0]["changed"] and not results[0]["validated"]


def test_validation_failure_keeps_live_set(tmp_path, role):
    out = tmp_path / "out"
    variables = {"out": str(out), "stage": str(tmp_path / "stage"), "workers": 3, "tls": False}
    assert playbook(tmp_path, TASKS, variables)[0] == 0
    before = (out / "app.conf").read_text()
    bad = TASKS.replace('"workers = {{ workers }}"', '"workers = 99"')
    rc, results = playbook(tmp_path, bad, {**variables, "workers": 4})
    assert rc != 0 and "nothing went live" in results[0]["msg"]
    assert (out / "app.conf").read_text() == before and (out / "note.txt").read_text() == "workers=3\n"


def test_check_mode_reports_the_change_only(tmp_path, role):
    out = tmp_path / "out"
    variables = {"out": str(out), "stage": str(tmp_path / "stage"), "workers": 3, "tls": False}
    assert playbook(tmp_path, TASKS, variables)[0] == 0
    rc, results = playbook(tmp_path, TASKS, {**variables, "workers": 5}, check=True)
    assert rc == 0 and results[0]["changed"]
    assert results[0]["content_changed"] == [str(out / "app.conf"), str(out / "note.txt")]
    assert "workers = 3" in (out / "app.conf").read_text()


BAD_SPECS = [
    ("{dest: /tmp/x, template: app.conf.j2, content: x}", "exactly one of"),
    ("{dest: /tmp/x}", "exactly one of"),
    ("{dest: /tmp/x, template: missing.j2}", "missing.j2"),
    ("{dest: /tmp/x, content: x, bogus: 1}", "unknown key"),
    ("{dest: /tmp/x, state: absent, content: x}", "state=absent"),
]


def test_bad_file_specs(tmp_path, role):
    tasks = "".join(f"- name: Bad {i}\n  pydeploy.django_stack.config_set:\n    files:\n      - {spec}\n"
                    "  ignore_errors: true\n" for i, (spec, _reason) in enumerate(BAD_SPECS))
    _rc, results = playbook(tmp_path, tasks, {"workers": 1, "tls": False})
    assert len(results) == len(BAD_SPECS)
    for result, (spec, message) in zip(results, BAD_SPECS):
        assert result.get("failed") and message in result["msg"], (spec, result)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_validate_user_runs_the_validator_unprivileged(tmp_path, role):
    """validate_user/validate_group reach the module: the set's validator runs as nobody."""
    nobody = pwd.getpwnam("nobody")
    stage_parent = tempfile.mkdtemp(prefix="pydeploy-action-", dir="/tmp")  # tmp_path's parents are 0700
    os.chmod(stage_parent, 0o711)
    try:
        tasks = TASKS.replace('    validate: [grep, -q, "workers = {{ workers }}", "%{stage}/app.conf"]\n',
                              '    validate: [id, -u]\n    validate_user: nobody\n'
                              f'    validate_group: "{nobody.pw_gid}"\n')
        variables = {"out": str(tmp_path / "out"), "stage": f"{stage_parent}/stage", "workers": 3, "tls": False}
        rc, results = playbook(tmp_path, tasks, variables)
    finally:
        shutil.rmtree(stage_parent, ignore_errors=True)
    assert rc == 0, results
    assert results[0]["validated"] and results[0]["validator_stdout"].strip() == str(nobody.pw_uid)
