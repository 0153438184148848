"""Helpers for ASGI tests: the WebSocket client (tests/tools/wsclient.py) run inside the container.

The client is standard library only; the tests run it with a release's interpreter
(`venv_python`), the one the app itself runs with, or with the system's python3.
"""
import json
import shlex
import uuid

from pydeploy_testlib import TOOLS, wait_for


def venv_python(app):
    return f"/srv/{app}/current/venv/bin/python"


def _cmd(python, mode, target, *args):
    return [python, f"{TOOLS}/wsclient.py", mode, *target, *[str(a) for a in args]]


def ws_run(host, python, mode, target, *args, timeout=120):
    """Run one wsclient mode to completion; returns its JSON result."""
    cmd = _cmd(python, mode, target, *args, "--timeout", timeout)
    result = host.run(" ".join(shlex.quote(c) for c in cmd))
    assert result.stdout.strip().startswith("{"), f"rc={result.rc} {result.stdout[-500:]} {result.stderr[-1500:]}"
    return json.loads(result.stdout)


class WsHold:
    """`with WsHold(host, python, target, connections=10) as hold:` sockets open before the body runs;
    `hold.pids_before` are the workers that answered; after the block `hold.result` tells how
    the server closed them and who served the reconnect."""

    def __init__(self, host, python, target, connections=10, timeout=120):
        self.host = host
        tag = uuid.uuid4().hex[:8]
        self.ready = f"/tmp/wshold-{tag}.ready"
        self.out = f"/tmp/wshold-{tag}.json"
        self.cmd = _cmd(python, "hold", target, "--connections", connections, "--ready-file", self.ready,
                        "--timeout", timeout)
        self.timeout = timeout
        self.pids_before = None
        self.result = None

    def __enter__(self):
        line = " ".join(shlex.quote(c) for c in self.cmd)
        self.host.run(f"nohup {line} > {self.out} 2> {self.out}.err < /dev/null &")
        wait_for(lambda: self.host.file(self.ready).exists, 60, "WebSockets held open")
        self.pids_before = json.loads(self.host.file(self.ready).content_string)
        return self

    def __exit__(self, *exc):
        wait_for(lambda: self.host.run(f"test -s {self.out}").rc == 0, self.timeout + 30, "WebSocket hold result")
        self.result = json.loads(self.host.file(self.out).content_string)
        return False


def worker_pids(host, master):
    """Child processes of a server's main process that serve requests (not multiprocessing helpers)."""
    out = host.run(f"pgrep -P {master} -a").stdout.splitlines()
    return sorted(int(line.split()[0]) for line in out if "resource_tracker" not in line)
