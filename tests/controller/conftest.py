"""Controller-side tests: the collection's playbooks against generated inventories, no containers.

Every test declares the playbook run it needs as a `Job`; once collection is done, the runs of the
selected tests are started together, PYDEPLOY_CONTROLLER_JOBS at a time (default: twice the CPUs,
since a run waits on its worker processes part of the time), and each test then checks its own.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  pylint: disable=wrong-import-position


class Job:
    """A playbook run a test needs: `build(workdir) -> harness.Run`, identified by `key`.

    A job with a `batch` key ((playbook, layout)) and a `member` ({group_vars, host_vars}) may instead
    run together with other jobs of the same key, in one ansible-playbook run (harness.run_batch);
    PYDEPLOY_CONTROLLER_BATCH sets how many at most (default 8; 1 runs every job alone)."""

    def __init__(self, key, build, batch=None, member=None):
        self.key = key
        self.build = build
        self.batch = batch
        self.member = member

    def __repr__(self):
        return self.key


class Runner:
    def __init__(self, base, jobs):
        self.base = base
        self.jobs = jobs
        self.results = {}
        self.errors = {}
        self.lock = threading.Lock()
        self.started = False
        self.seconds = 0.0
        self.playbook_runs = 0
        self.cpu = 0.0  # CPU seconds of every playbook run (harness.Run.cpu)

    def _record(self, job, run):
        with self.lock:
            self.results[job.key] = run
            if isinstance(run, harness.Run) and os.environ.get("PYDEPLOY_CONTROLLER_REPORT"):  # one line per run
                with open(os.environ["PYDEPLOY_CONTROLLER_REPORT"], "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({
                        "job": job.key, "rc": run.rc, "seconds": round(run.seconds, 1), "cpu": round(run.cpu, 1),
                        "reached": run.reached and run.reached["task"],
                        "failures": [{"host": f.get("host"), "task": f.get("task"), "msg": (f.get("msg") or "")[:600]}
                                     for f in run.failures]}) + "\n")

    def _one(self, job):
        workdir = harness.new_workdir(self.base, job.key)
        try:
            run = job.build(workdir)
            self._record(job, run)
            with self.lock:
                self.cpu += getattr(run, "cpu", 0.0)
            if getattr(run, "rc", 0) in (0, harness.REACHED_RC) or os.environ.get("PYDEPLOY_CONTROLLER_KEEP") != "1":
                shutil.rmtree(workdir, ignore_errors=True)
        except Exception as err:  # pylint: disable=broad-except
            with self.lock:
                self.errors[job.key] = err

    def _batch(self, jobs):
        playbook, layout = jobs[0].batch
        workdir = harness.new_workdir(self.base, f"batch-{playbook}-{layout}-{jobs[0].key}")
        try:
            runs = harness.run_batch(playbook, layout, [job.member for job in jobs], workdir)
            for job, run in zip(jobs, runs):
                self._record(job, run)
            with self.lock:
                self.cpu += runs[0].cpu if runs else 0.0
            if os.environ.get("PYDEPLOY_CONTROLLER_KEEP") != "1":
                shutil.rmtree(workdir, ignore_errors=True)
        except Exception as err:  # pylint: disable=broad-except
            with self.lock:
                for job in jobs:
                    self.errors[job.key] = err

    def _units(self):
        """The runs to make: batches of batchable jobs (largest first), then every other job alone."""
        size = int(os.environ.get("PYDEPLOY_CONTROLLER_BATCH", "8"))
        groups, alone = {}, []
        for job in self.jobs.values():
            if job.batch is not None and size > 1:
                groups.setdefault(job.batch, []).append(job)
            else:
                alone.append(job)
        batches = []
        for jobs in groups.values():
            count = -(-len(jobs) // size)  # as many runs as needed, of even sizes
            batches.extend(jobs[i::count] for i in range(count))
        batches.sort(key=len, reverse=True)
        return [(self._batch, jobs) if len(jobs) > 1 else (self._one, jobs[0]) for jobs in batches] + \
            [(self._one, job) for job in alone]

    def run_all(self):
        if self.started:
            return
        self.started = True
        start = time.monotonic()
        workers = int(os.environ.get("PYDEPLOY_CONTROLLER_JOBS", str(max(2, 2 * (os.cpu_count() or 1)))))
        units = self._units()
        self.playbook_runs = len(units)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda unit: unit[0](unit[1]), units))
        self.seconds = time.monotonic() - start

    def get(self, job):
        if job.key not in self.jobs:  # a job of a test selected after collection (should not happen)
            self.jobs[job.key] = job
            self._one(job)
        self.run_all()
        if job.key in self.errors:
            raise self.errors[job.key]
        return self.results[job.key]


_RUNNER: dict = {}


def pytest_collection_finish(session):
    jobs = {}
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for value in params.values():
            if isinstance(value, Job):
                jobs[value.key] = value
            elif hasattr(value, "job") and isinstance(getattr(value, "job"), Job):
                jobs[value.job.key] = value.job
    base = tempfile.mkdtemp(prefix="pydeploy-controller-")
    _RUNNER["runner"] = Runner(base, jobs)


def pytest_sessionfinish(session, exitstatus):
    runner = _RUNNER.get("runner")
    if runner is None:
        return
    if runner.results:
        slowest = max(getattr(r, "seconds", 0.0) for r in runner.results.values())
        sys.stderr.write(f"\ncontroller runs: {len(runner.results)} cases in {runner.playbook_runs} playbook runs in "
                         f"{runner.seconds:.1f}s (slowest {slowest:.1f}s), {runner.cpu:.0f} CPU-s\n")
    if os.environ.get("PYDEPLOY_CONTROLLER_KEEP") != "1":
        shutil.rmtree(runner.base, ignore_errors=True)


@pytest.fixture(scope="session")
def runs():
    return _RUNNER["runner"]
