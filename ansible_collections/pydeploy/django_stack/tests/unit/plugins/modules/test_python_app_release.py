"""Module python_app_release on a scratch root: layout, secret, seal, switch, prune, rollback."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[4] / "plugins/modules/python_app_release.py"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module sets owners (runs as root in CI)")


def run(**args):
    stdin = json.dumps({"ANSIBLE_MODULE_ARGS": {"group": "root", **args}})
    done = subprocess.run([sys.executable, str(MODULE)], input=stdin, capture_output=True, text=True, check=False)
    return json.loads(done.stdout)


def build(root, release, venv="v1"):
    result = run(state="inspect", root=str(root), release=release, venv_key=venv, build_user="root", prepare=True,
                 directories=[{"path": str(root / d), "mode": "0755"} for d in ("", "releases", "venvs")])
    (root / "releases" / release / "src" / "app.py").write_text("print('hi')\n")
    (root / "releases" / release / "src" / "secret.env").write_text("KEY=1\n")
    os.chmod(root / "releases" / release / "src" / "secret.env", 0o664)
    (root / "venvs" / venv / "bin").mkdir(exist_ok=True)
    (root / "venvs" / venv / "bin" / "python").write_text("")
    os.chmod(root / "venvs" / venv / "bin" / "python", 0o755)
    sealed = run(state="sealed", root=str(root), release=release, venv_key=venv)
    return result, sealed


def test_layout_secret_and_state(tmp_path):
    secret = tmp_path / "secret_key"
    first = run(state="inspect", root=str(tmp_path / "app"), secret_file=str(secret),
                directories=[{"path": str(tmp_path / "app"), "mode": "0750"}])
    assert first["changed"] and len(first["secret"]) == 64 and oct(secret.stat().st_mode & 0o777) == "0o640"
    again = run(state="inspect", root=str(tmp_path / "app"), secret_file=str(secret),
                directories=[{"path": str(tmp_path / "app"), "mode": "0750"}])
    assert not again["changed"] and again["secret"] == first["secret"]
    assert again["current"] == "" and again["previous"] == "" and not again["built"]


def test_seal_switch_prune_and_rollback(tmp_path):
    root = tmp_path / "app"
    state, sealed = build(root, "r1")
    assert not state["built"] and sealed["built"]
    src = root / "releases/r1/src/secret.env"
    assert src.stat().st_mode & 0o777 == 0o640  # nothing for other users
    assert (root / "releases/r1/venv").resolve() == (root / "venvs/v1").resolve()
    assert (root / "venvs/v1/bin/python").stat().st_mode & 0o777 == 0o750
    world = [str(p) for p in root.rglob("*") if not p.is_symlink() and p.stat().st_mode & 0o007
             and p.parent.name not in ("", root.name)]
    assert world == []  # nothing in a release or a virtualenv for other users (releases/ and venvs/ are 0755)

    nothing = run(state="rollback", root=str(root))
    assert nothing["failed"] and "nothing to roll back to" in nothing["msg"]

    first = run(state="current", root=str(root), release="r1", venv_key="v1", keep=2)
    assert first["changed"] and first["current"] == "r1" and first["previous"] == ""
    assert not run(state="current", root=str(root), release="r1", venv_key="v1", keep=2)["changed"]

    build(root, "r2")  # same virtualenv key: reused
    second = run(state="current", root=str(root), release="r2", venv_key="v1", keep=2)
    assert second["current"] == "r2" and second["previous"] == "r1"

    build(root, "r3", venv="v3")
    (root / "releases/failed-build/src").mkdir(parents=True)  # a build that never finished
    third = run(state="current", root=str(root), release="r3", venv_key="v3", keep=2)
    assert third["previous"] == "r2" and str(root / "releases/r1") in third["removed"]
    assert str(root / "releases/failed-build") in third["removed"]
    assert (root / "venvs/v1").exists()  # r2 still uses it

    back = run(state="rollback", root=str(root))
    assert back["current"] == "r2" and back["previous"] == "r3"
    assert os.readlink(root / "current") == "releases/r2"
