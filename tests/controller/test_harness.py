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



def _batch_job():
    def build(workdir):
        marker = Path(workdir) / "marker"
        good = {"selftest_value": 1, "selftest_marker": str(marker)}
        members = [
            {"group_vars": good, "host_vars": {BAD: {"selftest_value": 0}}},
            {"group_vars": good},
            # web1 fails the first task (its address is not its facts'), app1 would fail the second one: with
            # any_errors_fatal the run ends after the first, so only web1's failure counts
            {"group_vars": good, "host_vars": {"web1.example.com": {"ansible_host": "192.0.2.250"},
                                               BAD: {"selftest_value": 0}}},
        ]
        runs = harness.run_batch(str(PLAYBOOK), "three", members, workdir)
        for run in runs:
            run.marker_written = marker.exists()
        return runs

    return Job("selftest-batch", build)


@pytest.mark.parametrize("job", [_batch_job()], ids=["batch"])
def test_a_batch_of_cases_reports_each_as_if_it_ran_alone(job, runs):
    bad, good, first_task = runs.get(job)
    assert bad.rc == 2 and bad.reached is None, bad.summary()
    assert [f["host"] for f in bad.failures] == [BAD], bad.summary()
    assert f"selftest_value on {BAD} must be positive" in bad.messages(BAD)[0]  # the host as the case names it
    assert good.failures == [] and good.reached is not None, good.summary()
    assert [f["host"] for f in first_task.failures] == ["web1.example.com"], first_task.summary()
    assert first_task.reached is None
    assert not any(run.marker_written for run in (bad, good, first_task))


def test_cases_that_feed_checks_across_hosts_run_alone():
    assert harness.batchable("single", group_vars={"nginx_worker_processes": 2})
    assert not harness.batchable("single", group_vars={"python_app_database_password": "x"})
    assert not harness.batchable("single", group_vars={"vault_postgres_demo_password": "x"})
    assert not harness.batchable("three", host_vars={"app1.example.com": {"python_app_database_password": "x"}})
    assert not harness.batchable("single", group_vars={"pydeploy_app_hosts": "app"})
    assert not harness.batchable("single", extra_vars={"nginx_worker_processes": 2})
