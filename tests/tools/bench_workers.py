#!/usr/bin/env python3
"""Benchmark: Gunicorn sync, gthread and Uvicorn workers at the same worker count (not a test).

Runs inside a test container where the uvicorn_worker scenario deployed the demo (its release
has Gunicorn, Uvicorn and uvicorn-worker). For each worker kind it starts a temporary Gunicorn
of that release (as the app user, with the app's environment file, on a unix socket under
/run/pydeploy-bench), loads two views with the suite's bounded load generator, stops it, and
prints a table of requests/s and p95 latency:

  async I/O view  /async/?n=10&ms=50   an async view awaiting 10 sleeps of 50 ms at once
  sync view       /sync/?ms=50         a sync view blocking 50 ms (I/O it cannot overlap)

Bounded: --duration seconds per measurement (at most 60), six measurements, loopback only.
  docker exec pydeploy-uvicorn_worker-deb12 python3 /usr/local/lib/pydeploy-tests/bench_workers.py
"""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_DIR = "/run/pydeploy-bench"
VIEWS = [("async I/O view", "/async/?n=10&ms=50"), ("sync view", "/sync/?ms=50")]


def read_env(path):
    """The app's environment file (KEY='value' lines, as python_app writes it)."""
    env = {}
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def kinds(args):
    return [
        ("sync", ["--worker-class", "sync"], "wsgi"),
        (f"gthread ({args.threads} threads)", ["--worker-class", "gthread", "--threads", str(args.threads)], "wsgi"),
        ("uvicorn", ["--worker-class", "pydeploy_uvicorn_worker.UvicornWorker",
                     "--pythonpath", "/usr/local/lib/pydeploy-uvicorn"], "asgi"),
    ]


def start(args, name, extra, interface, env):
    sock = os.path.join(RUN_DIR, name.split()[0] + ".sock")
    if os.path.exists(sock):
        os.unlink(sock)
    release = os.path.realpath(f"/srv/{args.app}/current")
    cmd = ["runuser", "-u", args.app, "--", f"{release}/venv/bin/gunicorn", f"{args.project}.{interface}:application",
           "--chdir", f"{release}/src", "--bind", f"unix:{sock}", "--workers", str(args.workers),
           "--no-control-socket", "--worker-tmp-dir", "/dev/shm", "--log-level", "warning", *extra]
    proc = subprocess.Popen(cmd, env={**env, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = load(args, sock, "/health/", duration=1, concurrency=1, requests=1)
        if probe and probe["ok"] == 1:
            return proc, sock
        if proc.poll() is not None:
            raise SystemExit(f"{name}: gunicorn exited: {proc.stderr.read()[-2000:]}")
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"{name}: not serving after 60 s")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load(args, sock, path, duration, concurrency, requests=10_000_000):
    cmd = [sys.executable, os.path.join(HERE, "loadgen.py"), "--unix", sock, "--path", path,
           "--concurrency", str(concurrency), "--duration", str(duration), "--requests", str(requests),
           "--timeout", "30"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=duration + 90, check=False).stdout
    return json.loads(out) if out.strip().startswith("{") else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default="demo", help="python_app name (/srv/APP, /etc/APP/env)")
    parser.add_argument("--project", default="demo", help="Django project package")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--concurrency", type=int, default=32, help="simultaneous clients")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (max 60)")
    args = parser.parse_args()
    args.duration = min(args.duration, 60.0)
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)
    subprocess.run(["chown", args.app, RUN_DIR], check=True)
    env = read_env(f"/etc/{args.app}/env")

    rows = []
    for name, extra, interface in kinds(args):
        proc, sock = start(args, name, extra, interface, env)
        try:
            row = [name]
            for _, path in VIEWS:
                load(args, sock, path, duration=1, concurrency=args.concurrency)  # warm-up
                result = load(args, sock, path, duration=args.duration, concurrency=args.concurrency)
                row += [f"{result['rps']:.0f}", f"{result['p95_ms']:.0f}",
                        str(result["failed"]) if result["failed"] else "0"]
                print(f"# {name} {path}: {json.dumps(result)}", file=sys.stderr)
            rows.append(row)
        finally:
            stop(proc)

    print(f"\n{args.workers} workers each, {args.concurrency} concurrent clients without keep-alive over a unix "
          f"socket, {args.duration:.0f} s per cell, {os.cpu_count()} CPUs shared with the load generator.\n")
    header = ["worker class"]
    for label, path in VIEWS:
        header += [f"{label} req/s", "p95 ms", "errors"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nviews: " + ", ".join(f"{label} {path}" for label, path in VIEWS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
