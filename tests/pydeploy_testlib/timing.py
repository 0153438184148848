"""pytest plugin (pytest.ini: -p pydeploy_testlib.timing): the controller CPU each test costs.

On two CPUs shared by several scenarios, the suite's wall time follows the CPU its steps use, and
most of it is spent on the controller (ansible-playbook and its forks, the ssh client), not in the
containers. Each test gets the user + system CPU seconds of pytest itself and of every process it
waited for (resource.RUSAGE_CHILDREN) as the JUnit property `controller_cpu_s`, beside its wall
time; the terminal summary lists the costliest. It measures; nothing passes or fails on it.
"""
import resource
import time

import pytest

SHOWN = 12
_START = pytest.StashKey[tuple]()


def _cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pytest_configure(config):
    config.pydeploy_costs = []


def pytest_runtest_setup(item):
    item.stash[_START] = (_cpu(), time.monotonic())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # On the item before the teardown report is made: JUnit XML takes the properties from that one.
    if call.when == "teardown" and _START in item.stash:
        cpu, wall = item.stash[_START]
        cost = (_cpu() - cpu, time.monotonic() - wall, item.nodeid)
        item.config.pydeploy_costs.append(cost)
        item.user_properties.append(("controller_cpu_s", f"{cost[0]:.1f}"))
    yield


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # pylint: disable=unused-argument
    costs = getattr(config, "pydeploy_costs", [])
    if not costs:
        return
    total_cpu = sum(c[0] for c in costs)
    total_wall = sum(c[1] for c in costs)
    terminalreporter.write_sep("-", f"controller CPU of the tests: {total_cpu:.0f} s in {total_wall:.0f} s")
    for cpu, wall, nodeid in sorted(costs, reverse=True)[:SHOWN]:
        terminalreporter.write_line(f"{cpu:7.1f} s CPU {wall:7.1f} s wall  {nodeid}")
