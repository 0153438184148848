"""The harness itself: it stops a run before anything after validation runs, and notices when one gets there."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness
from conftest import Job

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "selftest.yml"


def _job(fatal, bad_host):
    def build(workdir):
        marker = Path(workdir) / "marker"
        hosts = harness.LAYOUTS["three"]["hosts"]
        host_vars = {name: {"selftest_value": 0 if name == bad_host else 1} for name in hosts}
        inventory = harness.build_inventory(workdir, "three", host_vars=host_vars,
                                            group_vars={"selftest_marker": str(marker)})
        run = harness.run_playbook(str(PLAYBOOK), inventory, workdir,
                                   env={"ANSIBLE_ANY_ERRORS_FATAL": "1" if fatal else "0"})
        run.marker_written = marker.exists()
        return run

    return Job(f"selftest-fatal{fatal}-{bad_host}", build)


BAD = "app1.example.com"


@pytest.mark.parametrize("job", [_job(False, BAD)], ids=["without-any_errors_fatal"])
def test_a_task_after_validation_is_seen_and_never_runs(job, runs):
    run = runs.get(job)
    assert run.rc == harness.REACHED_RC, run.summary()
    assert run.reached is not None and run.reached["task"] == "Change | write the marker file", run.summary()
    assert [f["host"] for f in run.failures] == [BAD]
    assert not run.marker_written, "the harness let a task after the validation play change the host"


@pytest.mark.parametrize("job", [_job(True, BAD)], ids=["with-any_errors_fatal"])
def test_a_failed_validation_stops_every_host(job, runs):
    run = runs.get(job)
    assert run.rc == 2, run.summary()
    assert run.reached is None, run.summary()
    assert [f["host"] for f in run.failures] == [BAD]
    assert BAD in run.messages(BAD)[0]
    assert not run.marker_written


@pytest.mark.parametrize("job", [_job(True, "nobody")], ids=["good-values"])
def test_good_values_reach_the_next_play_with_cached_facts(job, runs):
    run = runs.get(job)
    assert run.failures == [], run.summary()
    assert run.reached is not None, run.summary()
    assert not run.marker_written

