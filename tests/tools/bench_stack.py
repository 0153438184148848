#!/usr/bin/env python3
"""Benchmark of the whole stack on one host (issue 7): the measuring side, run inside the container.

scripts/bench.sh converges the stack with the collection's roles in a local container, once per
variant, and calls this tool between converges. Every measurement is wrk -t2 -c50 against
127.0.0.1 (loopback only), bounded by wrk's -d; results are appended to a JSON-lines file and
`report` prints one table. Python 3 standard library only; needs wrk (Debian package).

  bench_stack.py setup                        bench-only nginx server (ceiling + static over HTTP)
  bench_stack.py rows VARIANT:ROW...          steady measurements, in turns: ceiling static-http static-https
                                              direct tls (variant guide: the second app "guide")
  bench_stack.py op VARIANT OP                load through nginx+TLS around an operation:
                                              steady reload restart recycle deploy
  bench_stack.py report                       the table, ratios and targets

Failed requests are wrk's non-2xx/3xx responses plus its socket errors (connect, read, write,
timeout). Lost log lines: requests wrk completed minus the lines that reached the log that should
hold them (nginx's access log file; the guide variant's Gunicorn access log in journald, where
journald's "Suppressed N messages" is reported as well).
"""
import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

STATE = "/var/lib/pydeploy-bench"
RESULTS = os.path.join(STATE, "results.jsonl")
RUN = "/run/pydeploy-bench"
BENCH_PORT = 8081
BENCH_SITE = "/etc/nginx/conf.d/pydeploy-bench.conf"
STATIC_FILE = "pydeploy-bench/10k.txt"
ACCESS_LOG = "/var/log/nginx/access.log"
VIEW = "/sync/"
# The guide variant runs next to the demo as a second app ("guide", its own Gunicorn, TCP port and
# nginx site), so that both are measured in turns in the same minutes; every other variant is the
# demo app re-converged with other variables.
INSTANCES = {"guide": {"app": "guide", "port": 8001, "host": "guide.bench"}}
DEFAULT_INSTANCE = {"app": "demo", "port": 8000, "host": "127.0.0.1"}
OPS = ("steady", "reload", "restart", "recycle", "deploy")

ROW_LABELS = {
    "ceiling": "nginx `return 200` (ceiling)",
    "static-http": "static 10 KB via nginx, HTTP",
    "static-https": "static 10 KB via nginx, HTTPS",
    "direct": f"Django view {VIEW}, Gunicorn direct",
    "tls": f"Django view {VIEW} via nginx, HTTPS",
    "steady": "under load: steady",
    "reload": "under load: systemctl reload",
    "restart": "under load: systemctl restart",
    "recycle": "under load: worker recycling",
    "deploy": "under load: release deploy",
}


def sh(*cmd, check=True, timeout=120):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=check,
                          timeout=timeout).stdout


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- wrk

def _ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url, duration, host=None, connections=50, threads=2):
    """One bounded wrk run; returns requests, req/s, p99 (ms), failed and the raw counts."""
    extra = ["-H", f"Host: {host}"] if host and host != "127.0.0.1" else []
    out = sh("wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s", *extra,
             url, check=False, timeout=duration + 60)
    res = {"requests": 0, "seconds": float(duration), "rps": 0.0, "p99_ms": None, "non2xx": 0,
           "socket_errors": 0}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if not m:
        raise SystemExit(f"wrk printed no summary for {url}:\n{out}")
    res["requests"] = int(m.group(1))
    res["seconds"] = _ms(m.group(2), m.group(3)) / 1000
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)", out, re.M)
    if m:
        res["p99_ms"] = round(_ms(m.group(1), m.group(2)), 1)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = sum(int(x) for x in m.groups())
        res["socket_detail"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    res["failed"] = res["non2xx"] + res["socket_errors"]
    res["rps"] = round(res["requests"] / res["seconds"], 1) if res["seconds"] else 0.0
    return res


def merge(chunks):
    """Consecutive wrk runs as one measurement; p99 is the worst chunk's (a stall shows, not averaged away)."""
    total = {"requests": sum(c["requests"] for c in chunks), "seconds": sum(c["seconds"] for c in chunks),
             "failed": sum(c["failed"] for c in chunks), "non2xx": sum(c["non2xx"] for c in chunks),
             "socket_errors": sum(c["socket_errors"] for c in chunks),
             "p99_ms": max((c["p99_ms"] or 0.0) for c in chunks) if chunks else None,
             "chunk_p99_ms": [c["p99_ms"] for c in chunks], "chunks": len(chunks)}
    total["rps"] = round(total["requests"] / total["seconds"], 1) if total["seconds"] else 0.0
    return total


# ------------------------------------------------------------------------------------ logging

def nginx_log_lines():
    try:
        with open(ACCESS_LOG, "rb") as fh:
            return fh.read().count(b"\n")
    except FileNotFoundError:
        return 0


def count_nginx_view_lines(start_offset, host):
    """Lines for the view and host appended to nginx's access log since start_offset (bytes).
    The host comes from the role's default log format (`host=$host` at the end)."""
    with open(ACCESS_LOG, "rb") as fh:
        fh.seek(start_offset)
        data = fh.read()
    request, tag = f"GET {VIEW}".encode(), f"host={host}".encode()
    return sum(1 for line in data.splitlines() if request in line and line.rstrip().endswith(tag))


def journal_cursor():
    out = sh("journalctl", "-n", "0", "--show-cursor", "--no-pager", check=False)
    m = re.search(r"-- cursor: (\S+)", out)
    return m.group(1) if m else None


def journal_since(cursor, *args):
    cmd = ["journalctl", "--no-pager", "-o", "cat", *args]
    if cursor:
        cmd.append(f"--after-cursor={cursor}")
    return sh(*cmd, check=False, timeout=120)


class LogCheck:
    """Counts, around one measurement, the log lines that should hold its requests."""

    def __init__(self, inst, nginx, journal):
        self.app, self.host, self.nginx, self.journal = inst["app"], inst["host"], nginx, journal

    def __enter__(self):
        self.offset = os.path.getsize(ACCESS_LOG) if self.nginx and os.path.exists(ACCESS_LOG) else 0
        self.cursor = journal_cursor() if self.journal else None
        return self

    def result(self, completed):
        out = {}
        if self.nginx:
            time.sleep(0.5)
            lines = count_nginx_view_lines(self.offset, self.host)
            out["nginx_lines"] = lines
            out["nginx_lost"] = max(0, completed - lines)
        if self.journal:
            time.sleep(2)  # journald reads the stream asynchronously
            unit = f"gunicorn-{self.app}.service"
            lines = journal_since(self.cursor, "-u", unit).count(f'"GET {VIEW}')
            suppressed = 0
            for m in re.finditer(r"Suppressed (\d+) messages from " + re.escape(unit),
                                 journal_since(self.cursor, "-u", "systemd-journald.service")):
                suppressed += int(m.group(1))
            out.update(journal_lines=lines, journal_lost=max(0, completed - lines), journal_suppressed=suppressed)
        out["log_lost"] = out.get("nginx_lost", 0) + out.get("journal_lost", 0) if out else None
        return out

    def __exit__(self, *exc):
        return False


# ------------------------------------------------------------------------------ the app server

def service(app):
    return f"gunicorn-{app}.service"


def main_pid(app):
    return int(sh("systemctl", "show", "-p", "MainPID", "--value", service(app)).strip() or 0)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return {int(x) for x in fh.read().split()}
    except OSError:
        return set()


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    log(f"warning: {what} not reached within {seconds} s")
    return False


def settle(app, workers):
    """Wait (at most 120 s) until the master has its configured number of workers, unchanged for 3 s:
    a converge that just reloaded or restarted Gunicorn is not measured while workers still start."""
    deadline, stable_since, last = time.monotonic() + 120, None, None
    while time.monotonic() < deadline:
        now = children(main_pid(app))
        if len(now) == workers and now == last:
            if stable_since and time.monotonic() - stable_since >= 3:
                return
            stable_since = stable_since or time.monotonic()
        else:
            stable_since = None
        last = now
        time.sleep(0.5)
    log(f"warning: {app}: workers not settled at {workers} within 120 s")


def worker_config(app):
    """worker class, workers, max_requests and access log of the live gunicorn.conf.py."""
    conf = {}
    try:
        with open(f"/etc/gunicorn/{app}.conf.py") as fh:
            text = fh.read()
    except OSError:
        return conf
    for key in ("worker_class", "workers", "threads", "max_requests", "max_requests_jitter", "accesslog"):
        m = re.search(rf"^{key} = (.+)$", text, re.M)
        if m:
            conf[key] = m.group(1).strip().strip('"')
    return conf


def app_version(host):
    """The release's VERSION, as /health/ reports it through nginx."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request("https://127.0.0.1/health/", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=10) as resp:
            return json.loads(resp.read()).get("version")
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------- commands

def record(row):
    os.makedirs(STATE, exist_ok=True)
    with open(RESULTS, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def cmd_setup(args):
    """A bench-only nginx server on 127.0.0.1:8081: `return 200`, and the static root over plain HTTP
    with the role's static settings (the role's own port 80 only redirects to HTTPS)."""
    os.makedirs(os.path.dirname(os.path.join(args.static_root, STATIC_FILE)), exist_ok=True)
    with open(os.path.join(args.static_root, STATIC_FILE), "w") as fh:
        fh.write(("0123456789abcdef" * 64 + "\n")[:1024] * 10)
    site = (
        "# pydeploy benchmark only (scripts/bench.sh); not part of the roles.\n"
        "server {\n"
        f"    listen 127.0.0.1:{BENCH_PORT};\n"
        "    access_log off;\n"
        "    location = /ceiling { return 200 \"ok\\n\"; }\n"
        "    location ^~ /static/ {\n"
        f"        alias {args.static_root.rstrip('/')}/;\n"
        "        expires 30d;\n"
        "        gzip on;\n"
        "    }\n"
        "}\n")
    with open(BENCH_SITE, "w") as fh:
        fh.write(site)
    sh("nginx", "-t", "-q")
    sh("systemctl", "reload", "nginx")
    time.sleep(1)
    log(f"bench nginx server on 127.0.0.1:{BENCH_PORT}, static file {STATIC_FILE} (10240 bytes)")
    return 0


def instance(variant):
    return INSTANCES.get(variant, DEFAULT_INSTANCE)


def cmd_rows(args):
    """ITEMs are VARIANT:ROW, taken in turns, --rounds times: a neighbour's burst of CPU on a shared
    machine then weighs on every row alike, and the ratios between rows hold better than the
    absolute numbers."""
    urls = {
        "ceiling": f"http://127.0.0.1:{BENCH_PORT}/ceiling",
        "static-http": f"http://127.0.0.1:{BENCH_PORT}/static/{STATIC_FILE}",
        "static-https": f"https://127.0.0.1:443/static/{STATIC_FILE}",
        "direct": "http://127.0.0.1:{port}" + VIEW,
        "tls": "https://127.0.0.1:443" + VIEW,
    }
    items = []
    for item in args.items:
        variant, _, name = item.rpartition(":")
        if name not in urls or not variant:
            raise SystemExit(f"bad item {item}: VARIANT:ROW with ROW one of {', '.join(urls)}")
        inst = instance(variant)
        conf = worker_config(inst["app"])
        if name in ("direct", "tls"):
            settle(inst["app"], int(conf.get("workers", 1)))
        items.append({"variant": variant, "row": name, "inst": inst, "conf": conf,
                      "url": urls[name].format(port=inst["port"]), "runs": []})
    for round_no in range(args.rounds):
        for it in items:
            name, inst, url = it["row"], it["inst"], it["url"]
            host = inst["host"] if name in ("direct", "tls") else None
            log(f"{it['variant']}: {ROW_LABELS[name]} ({round_no + 1}/{args.rounds}): "
                f"wrk -t2 -c50 -d{args.duration}s {url}" + (f" (Host: {host})" if host else ""))
            if round_no == 0:
                wrk(url, 2, host)  # warm-up: workers loaded, caches and TLS sessions warm
            through_nginx = name == "tls"
            app_logged = name in ("direct", "tls") and it["conf"].get("accesslog") == "-"
            with LogCheck(inst, through_nginx, app_logged) as check:
                res = wrk(url, args.duration, host)
                res.update(check.result(res["requests"]) if (through_nginx or app_logged) else {})
            it["runs"].append(res)
            log(f"  {res['rps']:.0f} req/s, p99 {res['p99_ms']} ms, failed {res['failed']}"
                + (f", log lost {res['log_lost']}" if res.get("log_lost") is not None else "")
                + (f", journald suppressed {res['journal_suppressed']}" if res.get("journal_suppressed") else ""))
    for it in items:
        runs = it["runs"]
        res = merge(runs)
        for key in ("nginx_lines", "nginx_lost", "journal_lines", "journal_lost", "journal_suppressed", "log_lost"):
            if key in runs[0]:
                res[key] = sum(r[key] for r in runs)
        res.update(variant=it["variant"], row=it["row"], url=it["url"], config=it["conf"], time=time.time(),
                   run_seconds=args.duration, runs=len(runs), run_rps=[r["rps"] for r in runs])
        record(res)
    return 0


def cmd_op(args):
    """wrk through nginx+TLS in consecutive chunks around one operation on the app server."""
    url = f"https://127.0.0.1:443{VIEW}"
    inst = instance(args.variant)
    app, host = inst["app"], inst["host"]
    conf = worker_config(app)
    settle(app, int(conf.get("workers", 1)))
    os.makedirs(RUN, exist_ok=True)
    started = os.path.join(RUN, "load.started")
    if os.path.exists(started):
        os.unlink(started)
    chunks, stop = [], threading.Event()
    deadline = time.monotonic() + args.max_seconds

    def load():
        while not stop.is_set() and time.monotonic() < deadline:
            chunks.append(wrk(url, args.chunk, host))
            if len(chunks) == 1:
                open(started, "w").close()

    wrk(url, 2, host)  # warm-up
    before = {"version": app_version(host), "master": main_pid(app)}
    log(f"{args.variant}: {ROW_LABELS[args.op]}: wrk -t2 -c50 in {args.chunk} s chunks, {url}")
    with LogCheck(inst, True, conf.get("accesslog") == "-") as check:
        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(args.chunk / 2)  # the operation starts inside the first chunk
        t0 = time.monotonic()
        note = ""
        if args.op == "steady":
            time.sleep(args.chunk * 2)
        elif args.op == "reload":
            master, old = before["master"], children(before["master"])
            sh("systemctl", "reload", service(app))
            wait_for(lambda: not children(master) & old and len(children(master)) >= len(old), 120,
                     "old workers replaced")
            note = f"master kept: {main_pid(app) == master}"
        elif args.op == "restart":
            sh("systemctl", "restart", service(app), timeout=300)
            note = f"new master: {main_pid(app) != before['master']}"
        elif args.op == "recycle":
            time.sleep(args.recycle_seconds)
            note = f"max_requests {conf.get('max_requests')} + jitter {conf.get('max_requests_jitter')}"
        elif args.op == "deploy":
            wait_for(lambda: os.path.exists(args.until_file), args.max_seconds - args.chunk, "deploy done")
        op_seconds = time.monotonic() - t0
        time.sleep(args.chunk)  # one more chunk after the operation
        stop.set()
        loader.join(args.chunk + 70)
        res = merge(chunks)
        res.update(check.result(res["requests"]))
    after = {"version": app_version(host), "master": main_pid(app)}
    if args.op == "deploy":
        note = f"version {before['version']} -> {after['version']}"
    res.update(variant=args.variant, row=args.op, url=url, config=conf, op_seconds=round(op_seconds, 1),
               note=note, time=time.time())
    record(res)
    log(f"  {res['rps']:.0f} req/s, worst-chunk p99 {res['p99_ms']} ms (chunks {res['chunk_p99_ms']}), "
        f"failed {res['failed']}, log lost {res.get('log_lost')}, op {op_seconds:.1f} s {note}")
    return 0


def fmt(value, spec="{:.0f}"):
    return "-" if value is None else spec.format(value)


def cmd_report(args):
    rows = []
    if os.path.exists(RESULTS):
        with open(RESULTS) as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    if not rows:
        print("no results")
        return 1
    ceiling = next((r["rps"] for r in rows if r["row"] == "ceiling"), None)
    print(f"wrk -t2 -c50 on 127.0.0.1 inside the container, {os.cpu_count()} CPUs shared by wrk, nginx and the "
          f"app; view {VIEW}. Steady rows: wrk runs taken in turns (req/s of each run in the note); operations: "
          "consecutive 5 s wrk runs from before the operation to 5 s after it. p99 is the worst run's (a stall "
          "shows instead of being averaged away).\n")
    print("| variant | workers | measurement | req/s | p99 ms | failed | vs ceiling | log lines lost | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = r.get("config", {})
        workers = "-" if r["row"] in ("ceiling", "static-http", "static-https") else (
            f"{c.get('workers', '?')} {c.get('worker_class', '?').split('.')[-1].replace('UvicornWorker', 'uvicorn')}"
            + (f" x{c['threads']}" if c.get("worker_class") == "gthread" else ""))
        lost = r.get("log_lost")
        note = r.get("note", "")
        if r.get("run_rps") and len(r["run_rps"]) > 1:
            note = "runs " + " / ".join(f"{x:.0f}" for x in r["run_rps"])
        if r.get("journal_suppressed"):
            note = (note + "; " if note else "") + f"journald suppressed {r['journal_suppressed']}"
        if r.get("socket_errors"):
            note = (note + "; " if note else "") + f"socket errors {r.get('socket_detail', r['socket_errors'])}"
        print(f"| {r['variant']} | {workers} | {ROW_LABELS.get(r['row'], r['row'])} | {r['rps']:.0f} | "
              f"{fmt(r['p99_ms'])} | {r['failed']} | {fmt(r['rps'] / ceiling if ceiling else None, '{:.3f}')} | "
              f"{fmt(lost)} | {note} |")

    def get(variant, row):
        return next((r for r in reversed(rows) if r["variant"] == variant and r["row"] == row), None)

    print()
    d_tls, g_tls, d_direct = get("defaults", "tls"), get("guide", "tls"), get("defaults", "direct")
    checks = []
    if d_tls and g_tls:
        ratio = d_tls["rps"] / g_tls["rps"]
        checks.append((f"defaults via nginx+TLS / guide via nginx+TLS = {ratio:.2f}", ratio >= 1.5, ">= 1.5"))
    if d_tls and d_direct:
        ratio = d_tls["rps"] / d_direct["rps"]
        checks.append((f"defaults via nginx+TLS / defaults Gunicorn direct (access log off) = {ratio:.2f}",
                       ratio >= 0.85, ">= 0.85"))
    for variant in sorted({r["variant"] for r in rows}):
        steady = get(variant, "steady") or get(variant.split("-")[0], "steady")
        for op in ("reload", "restart", "recycle", "deploy"):
            r = get(variant, op)
            if r is None:
                continue
            if steady and steady["p99_ms"] and r["p99_ms"] is not None:
                ratio = r["p99_ms"] / steady["p99_ms"]
                checks.append((f"{variant} {op}: p99 {r['p99_ms']:.0f} ms / steady {steady['p99_ms']:.0f} ms = "
                               f"{ratio:.1f}", ratio <= 3.0, "<= 3"))
            checks.append((f"{variant} {op}: failed {r['failed']}, log lines lost {fmt(r.get('log_lost'))}",
                           r["failed"] == 0 and not r.get("log_lost"), "0 and 0"))
    for r in rows:
        if r["row"] in ("direct", "tls", "steady") and (r["failed"] or r.get("log_lost")):
            checks.append((f"{r['variant']} {r['row']}: failed {r['failed']}, log lines lost {fmt(r.get('log_lost'))}",
                           False, "0 and 0"))
    for text, ok, target in checks:
        print(f"- {'PASS' if ok else 'MISS'} {text} (target {target})")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per steady wrk run (max 60)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--static-root", default="/srv/demo/shared/static")
    p = sub.add_parser("rows")
    p.add_argument("items", nargs="+", metavar="VARIANT:ROW")
    p.add_argument("--rounds", type=int, default=2, help="times each row is measured, in turns (max 5)")
    p = sub.add_parser("op")
    p.add_argument("variant")
    p.add_argument("op", choices=OPS)
    p.add_argument("--chunk", type=int, default=5, help="seconds per wrk run while the operation goes on")
    p.add_argument("--recycle-seconds", type=int, default=15)
    p.add_argument("--until-file", default=os.path.join(RUN, "deploy.done"), help="deploy: stop once it exists")
    p.add_argument("--max-seconds", type=int, default=600, help="hard limit of the load (max 900)")
    sub.add_parser("report")
    sub.add_parser("reset")
    args = parser.parse_args()
    args.duration = max(1, min(args.duration, 60))
    if args.command == "rows":
        args.rounds = max(1, min(args.rounds, 5))
    if args.command == "op":
        args.max_seconds = max(args.chunk * 4, min(args.max_seconds, 900))
    if args.command == "reset":
        if os.path.exists(RESULTS):
            os.unlink(RESULTS)
        return 0
    return {"setup": cmd_setup, "rows": cmd_rows, "op": cmd_op, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
