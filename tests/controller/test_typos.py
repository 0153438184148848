"""Typos in role-prefixed variable names: a warning with the closest name (the run goes on) unless strict.

With pydeploy_strict_vars: true they are errors (cases class 6 of bad_inputs.yml).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import harness
from conftest import Job

HERE = Path(__file__).resolve().parent
PENDING = yaml.safe_load((HERE / "cases" / "pending.yml").read_text()) or {}

TYPOS = [
    # (test id, playbook, group_vars, the typo, the name it should suggest)
    ("typo-gunicorn", "app", {"gunicorn_worker": 4}, "gunicorn_worker", "gunicorn_workers"),
    ("typo-uvicorn_worker", "app", {"pydeploy_app_server": "uvicorn_worker", "uvicorn_worker_worker": 2},
     "uvicorn_worker_worker", "uvicorn_worker_workers"),
    ("typo-python_app", "site", {"python_app_allowed_host": ["box.example.com"]}, "python_app_allowed_host",
     "python_app_allowed_hosts"),
    ("typo-nginx", "web", {"nginx_client_max_body_sise": "20m"}, "nginx_client_max_body_sise",
     "nginx_client_max_body_size"),
    ("typo-postgres", "db", {"postgres_max_conections": 50}, "postgres_max_conections", "postgres_max_connections"),
    ("typo-pydeploy", "site", {"pydeploy_app_sever": "gunicorn"}, "pydeploy_app_sever", "pydeploy_app_server"),
]


def _job(test_id, playbook, group_vars):
    def build(workdir):
        inventory = harness.build_inventory(workdir, "single", group_vars=group_vars)
        return harness.run_playbook(playbook, inventory, workdir)

    return Job(test_id, build)


def _params():
    out = []
    for test_id, playbook, group_vars, typo, closest in TYPOS:
        marks = [pytest.mark.xfail(strict=True, reason=f"pending: {PENDING[test_id]}")] if test_id in PENDING else []
        out.append(pytest.param(_job(test_id, playbook, group_vars), typo, closest, id=test_id, marks=marks))
    return out


@pytest.mark.parametrize("job,typo,closest", _params())
def test_typo_is_warned_with_the_closest_name(job, typo, closest, runs):
    run = runs.get(job)
    assert not run.failures and run.reached is not None, f"a typo alone must not stop the run:\n{run.summary()}"
    text = "\n".join(run.warnings) + run.stderr + run.stdout
    assert typo in text and closest in text and "box.example.com" in text, \
        f"no warning naming {typo} and {closest}:\n{run.warnings}\n{run.stderr[-2000:]}"
