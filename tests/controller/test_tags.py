"""--tags never skips the checks: a run limited to one role's tags still validates every variable of
every tier first (the validation play is tagged always) and sets the exports the later plays need."""

from __future__ import annotations

import pytest

import harness
from conftest import Job


def _job(name, group_vars, tags):
    def build(workdir):
        inventory = harness.build_inventory(workdir, "single", group_vars=group_vars)
        return harness.run_playbook("site", inventory, workdir, extra_args=["--tags", tags])

    return Job(f"tags-{name}", build)


BAD = _job("bad-gunicorn-workers", {"gunicorn_workers": "many"}, "nginx")
GOOD = _job("good", {}, "gunicorn")


@pytest.mark.parametrize("job", [pytest.param(BAD, id="tags-nginx-bad-gunicorn-value")])
def test_a_bad_value_of_another_role_stops_a_tagged_run(job, runs):
    run = runs.get(job)
    assert run.reached is None, run.summary()
    assert any("gunicorn_workers" in m for m in run.messages()), run.summary()


@pytest.mark.parametrize("job", [pytest.param(GOOD, id="tags-gunicorn-good")])
def test_a_tagged_run_is_validated_and_gets_past_the_checks(job, runs):
    run = runs.get(job)
    assert not run.failures and run.reached is not None, run.summary()
    started = [r["task"] for r in run.task_starts()]
    assert any("Validate | app tier, python_app" in t for t in started), started
