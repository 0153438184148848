"""The tests' load generator (tests/tools/loadgen.py) against a local server that stalls once: a
closed loop (no --rate) records the stall in the one request that met it; an open loop (--rate)
also in every request that fell due while it lasted, since their latency runs from when they were
due. The benchmarks' paced figures (scripts/bench_converge.py) rest on the second. The bounds below
come from the server's own sleep, not from how fast this machine is."""
import http.server
import json
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

LOADGEN = Path(__file__).resolve().parents[2] / "tests/tools/loadgen.py"
STALL_S = 1.0


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def _serve_with_one_stall():
    """A loopback server whose 10th request sleeps STALL_S seconds; every other one answers at once."""
    count = {"n": 0}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            with lock:
                count["n"] += 1
                mine = count["n"]
            if mine == 10:
                time.sleep(STALL_S)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _run(tmp_path, *extra):
    server = _serve_with_one_stall()
    timeline = tmp_path / "timeline"
    try:
        out = subprocess.run([sys.executable, str(LOADGEN), "--url", f"http://127.0.0.1:{server.server_address[1]}",
                              "--concurrency", "1", "--requests", "60", "--duration", "30",
                              "--timeline", str(timeline), *extra],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    finally:
        server.shutdown()
        server.server_close()
    latencies = [float(line.split()[1]) for line in timeline.read_text().splitlines()]
    return json.loads(out), latencies


def test_closed_loop_counts_the_stall_in_the_request_that_met_it(tmp_path):
    summary, latencies = _run(tmp_path)
    assert summary["sent"] == summary["ok"] == 60 and summary["failed"] == 0
    assert max(latencies) >= STALL_S * 1000
    assert sum(ms >= STALL_S * 1000 for ms in latencies) == 1


def test_open_loop_counts_the_stall_in_every_request_that_fell_due_during_it(tmp_path):
    summary, latencies = _run(tmp_path, "--rate", "20")
    assert summary["sent"] == summary["ok"] == 60 and summary["failed"] == 0
    # 20 per second, one every 50 ms: the requests due in the first half of the stall waited at least
    # half of it (the one thread was held), from when they were due.
    assert sum(ms >= STALL_S * 1000 / 2 for ms in latencies) >= 9
    assert summary["max_ms"] >= STALL_S * 1000
