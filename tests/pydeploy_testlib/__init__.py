"""Helpers shared by every scenario's testinfra tests.

Tests run on the controller; HTTP traffic and load are generated inside the test container
against its own loopback or unix sockets (tests/tools/, installed by molecule/shared/prepare.yml).
"""
import json
import os
import shlex
import subprocess
import time
import uuid

TOOLS = "/usr/local/lib/pydeploy-tests"

# The request rate of the load that runs through a whole deploy (a minute or two): every reload,
# restart and drain in it is crossed by a request every 10 ms on average, so a moment in which the
# socket refuses or resets connections fails requests. Unpaced, four clients reached 1,100
# requests/s on the app's socket: the load generator and the workers then took both CPUs of the
# test machine, for as long as the deploy ran, from the deploy under test and from the scenarios
# that run beside it. The short reload and restart tests still send as fast as they can.
DEPLOY_LOAD_RATE = 100


def http_get(host, path, unix=None, url=None, host_header="localhost", headers=None, timeout=15):
    """GET through curl inside the container; returns (status, headers_text, body)."""
    marker = "\n__PYDEPLOY_STATUS__:"
    cmd = ["curl", "-sS", "-k", "--max-time", str(timeout), "-D", "/dev/stderr", "-o", "-",
           "-w", marker + "%{http_code}", "-H", f"Host: {host_header}"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    if unix:
        cmd += ["--unix-socket", unix, f"http://localhost{path}"]
    else:
        cmd += [url.rstrip("/") + path]
    result = host.run(" ".join(shlex.quote(c) for c in cmd))
    body, _, status = result.stdout.rpartition(marker)
    return int(status or 0), result.stderr, body


def http_json(host, path, **kwargs):
    status, _, body = http_get(host, path, **kwargs)
    return status, json.loads(body) if body.strip().startswith("{") else {}


class Load:
    """A bounded load run in the container: `with Load(host, unix=...) as load: ...; load.result`."""

    def __init__(self, host, unix=None, url=None, path="/health/", concurrency=4, duration=120,
                 requests=50000, extra=(), rate=None):
        self.host = host
        tag = uuid.uuid4().hex[:8]
        self.stop_file = f"/tmp/loadgen-{tag}.stop"
        self.started_file = f"/tmp/loadgen-{tag}.started"
        self.out = f"/tmp/loadgen-{tag}.json"
        self.cmd = loadgen_cmd(unix, url, path, concurrency, duration, requests,
                               "--stop-file", self.stop_file, "--started-file", self.started_file, *extra,
                               *(("--rate", rate) if rate else ()))
        self.duration = duration
        self.result = None

    def __enter__(self):
        line = " ".join(shlex.quote(c) for c in self.cmd)
        self.host.run(f"nohup {line} > {self.out} 2> {self.out}.err < /dev/null &")
        wait_for(lambda: self.host.file(self.started_file).exists, 30, "load generator start")
        return self

    def __exit__(self, *exc):
        time.sleep(1)
        self.host.run(f"touch {self.stop_file}")
        wait_for(lambda: self.host.run(f"test -s {self.out}").rc == 0, self.duration + 60, "load result")
        self.result = json.loads(self.host.file(self.out).content_string)
        return False


def loadgen_cmd(unix, url, path, concurrency, duration, requests, *extra):
    target = ["--unix", unix] if unix else ["--url", url]
    return ["python3", f"{TOOLS}/loadgen.py", *target, "--path", path, "--concurrency", str(concurrency),
            "--duration", str(duration), "--requests", str(requests), *[str(e) for e in extra]]


def run_load(host, unix=None, url=None, path="/health/", concurrency=4, requests=1000, duration=300, extra=()):
    """A bounded load run to its end (`requests` sent, or `duration` seconds, whichever comes first);
    returns loadgen's JSON summary. Every request is counted: sent == requests unless time ran out."""
    line = " ".join(shlex.quote(c) for c in loadgen_cmd(unix, url, path, concurrency, duration, requests, *extra))
    result = host.run(line)
    assert result.rc == 0 and result.stdout.strip().startswith("{"), (result.rc, result.stderr[-1500:])
    return json.loads(result.stdout)


def journal_cursor(host, unit=None):
    """The journal's current position (of one unit, or of the whole journal)."""
    unit_arg = f"-u {shlex.quote(unit)} " if unit else ""
    out = host.run(f"journalctl {unit_arg}-n 0 --show-cursor --no-pager").stdout
    return out.strip().rpartition("-- cursor: ")[2]


def journal_lines(host, cursor, unit=None, grep=None, identifier=None):
    """Messages after the cursor (of one unit, or all), optionally only those containing `grep`.

    `identifier` keeps the messages logged under that syslog identifier (`logger -t`). It is
    filtered here, not by a journalctl match: systemd 252's journalctl prints nothing for
    `-t X --after-cursor=C` when the entry at C is not one of X's (a cursor of the whole journal).
    """
    unit_arg = f"-u {shlex.quote(unit)} " if unit else ""
    if identifier is not None:
        out = host.run(f"journalctl {unit_arg}--after-cursor={shlex.quote(cursor)} --no-pager -o json").stdout
        lines = []
        for line in out.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            message = entry.get("MESSAGE")
            if entry.get("SYSLOG_IDENTIFIER") == identifier and isinstance(message, str):
                lines.append(message)
        return [line for line in lines if grep is None or grep in line]
    cmd = f"journalctl {unit_arg}--after-cursor={shlex.quote(cursor)} --no-pager -o cat"
    if grep is not None:
        cmd += f" | grep -F -- {shlex.quote(grep)}"
    return host.run(cmd).stdout.splitlines()


def journal_suppressed(host, cursor):
    """journald's own "Suppressed N messages from <unit>" reports since the cursor: lines it dropped
    (rate limit). They are journald's messages, not the unit's: searched in the whole journal."""
    return journal_lines(host, cursor, grep="Suppressed ")


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def main_pid(host, unit):
    return int(host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip())


def child_pids(host, pid):
    out = host.run(f"pgrep -P {pid}").stdout.split()
    return sorted(int(p) for p in out)


def run_playbook(playbook, extra_vars=None, limit=None, timeout=1500, inventory=None, tags=None):
    """ansible-playbook against the scenario's inventory (molecule exports the paths).

    inventory: the inventory to use instead of Molecule's file of instances, e.g. its whole
    inventory directory (with the scenario's own hosts, group_vars and host_vars).
    tags: run only the tasks with these tags (--tags), as run_tagged."""
    scenario_dir = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
    path = playbook if "." in os.path.basename(playbook) and "/" in playbook else os.path.join(scenario_dir, playbook)
    if not os.path.exists(path):
        path = playbook  # an FQCN playbook from the installed collection
    cmd = ["ansible-playbook", "-i", inventory or os.environ["MOLECULE_INVENTORY_FILE"], path]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if limit:
        cmd += ["--limit", limit]
    if tags:
        cmd += ["--tags", ",".join(tags)]
    # stderr folded into stdout: failure messages go to either, depending on the callback.
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                          check=False)


def run_tagged(playbook, tags, extra_vars=None, timeout=900):
    """ansible-playbook with --tags against the scenario's inventory: the steps a config change
    needs (e.g. the server roles), without redeploying the app."""
    return run_playbook(playbook, extra_vars, timeout=timeout, tags=tags)


def recap_changed(output):
    """Sum of changed= over the PLAY RECAP lines."""
    total = 0
    for line in output.splitlines():
        if " changed=" in line and " ok=" in line:
            total += int(line.split(" changed=")[1].split()[0])
    return total
