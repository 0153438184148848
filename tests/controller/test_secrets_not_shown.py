"""A passing validation run shows no secret, even verbose: the checked values (stack inputs carry the
app's exports, the database password among them) are redacted before a result is displayed."""

from __future__ import annotations

import pytest

import harness
from conftest import Job


def _verbose_job(layout):
    def build(workdir):
        inventory = harness.build_inventory(workdir, layout)
        return harness.run_playbook("site", inventory, workdir, extra_args=["-vvv"])

    return Job(f"verbose-{layout}-site", build)


@pytest.mark.parametrize("job", [pytest.param(_verbose_job(layout), id=f"verbose-{layout}") for layout in ("prod", "single")])
def test_no_secret_in_a_verbose_validation(job, runs):
    run = runs.get(job)
    assert not run.failures and run.reached is not None, run.summary()
    output = run.stdout + run.stderr
    # The run really was verbose (results are shown), so the absence below means something.
    assert "python_app_exports" in output or "normalized" in output, output[-2000:]
    for name, secret in harness.DUMMY_VAULT.items():
        assert secret not in output, f"{name}'s value is shown in a -vvv run of site.yml's validation"
