"""Every bad input of cases/bad_inputs.yml is rejected before anything changes, naming the variable and host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import harness
from conftest import Job

HERE = Path(__file__).resolve().parent
CASES = yaml.safe_load((HERE / "cases" / "bad_inputs.yml").read_text())
PENDING = yaml.safe_load((HERE / "cases" / "pending.yml").read_text()) or {}
CLASSES = {1: "multi-host", 2: "types", 3: "injection", 4: "known before any change", 5: "messages", 6: "typos"}


class Case:
    def __init__(self, data):
        self.data = data
        self.id = data["id"]
        self.expect = data["expect"]
        batch = None
        if data.get("class") != 1 and harness.batchable(data.get("layout", "single"), data.get("group_vars"),
                                                         data.get("host_vars"), data.get("extra_vars")):
            batch = (data["playbook"], data.get("layout", "single"))
        self.job = Job(f"bad-{self.id}", self.build, batch=batch,
                       member={"group_vars": data.get("group_vars"), "host_vars": data.get("host_vars")})

    def build(self, workdir):
        inventory = harness.build_inventory(workdir, self.data.get("layout", "single"),
                                            group_vars=self.data.get("group_vars"),
                                            host_vars=self.data.get("host_vars"))
        return harness.run_playbook(self.data["playbook"], inventory, workdir, extra_vars=self.data.get("extra_vars"))


def _params():
    out = []
    for data in CASES:
        marks = []
        if data["id"] in PENDING:
            marks.append(pytest.mark.xfail(strict=True, reason=f"pending ({data.get('owner')}): {PENDING[data['id']]}"))
        out.append(pytest.param(Case(data), id=data["id"], marks=marks))
    return out


def test_the_table_covers_every_class_role_playbook_and_layout():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CASES) >= 80
    by_class = {k: [c for c in CASES if c["class"] == k] for k in CLASSES}
    assert all(len(v) >= 8 for v in by_class.values()), {k: len(v) for k, v in by_class.items()}
    assert {c["playbook"] for c in CASES} == set(harness.PLAYBOOKS)
    text = json.dumps(CASES)
    for prefix in ("python_app_", "gunicorn_", "uvicorn_worker_", "nginx_", "postgres_", "pydeploy_"):
        assert prefix in text
    assert {"single", "three", "prod"} <= {c.get("layout", "single") for c in CASES}
    for case in by_class[1]:
        assert case.get("host_vars") and case.get("layout") in ("three", "prod"), case["id"]
    other_tests = ("typo-", "scenario-", "inventory-")  # pending tests of test_typos.py and test_good_inputs.py
    unknown = {k for k in PENDING if k not in ids and not k.startswith(other_tests)}
    assert not unknown, f"pending.yml names cases that do not exist: {unknown}"


@pytest.mark.parametrize("case", _params())
def test_bad_input_is_rejected_before_anything_changes(case, runs):
    run = runs.get(case.job)
    host = case.expect["host"]
    variable = case.expect["variable"]
    detail = run.summary()
    assert run.reached is None, f"a task after the validation play started (nothing may run after a bad input):\n{detail}"
    assert run.rc != 0, f"the run was accepted:\n{detail}"
    assert run.failures, f"the run failed without a failed task (a syntax or inventory error?):\n{detail}"
    validation_plays = {r["play_index"] for r in run.records if r["event"] == "play_start" and r.get("validation")}
    assert {f["play_index"] for f in run.failures} <= validation_plays, f"failed outside the validation play:\n{detail}"
    messages = "\n".join(run.messages(host))
    assert messages, f"no failure on {host}:\n{detail}"
    assert variable in messages, f"the message on {host} does not name {variable!r}:\n{messages}"
    assert host in messages, f"the message does not name the host {host}:\n{messages}"
    for text in case.expect.get("text", []):
        assert text in messages, f"the message does not say {text!r}:\n{messages}"
    output = run.stdout + run.stderr + json.dumps(run.records)
    for secret in case.expect.get("hidden", []):
        assert secret not in output, f"the secret {secret!r} appears in the output"
