#!/usr/bin/env python3
"""Bounded HTTP load generator for the test suite (stdlib only; runs inside a test container).

Sends GET requests to one target from N threads (at most --rate per second, evenly spaced, if
given) until --duration seconds pass, --requests are sent, or --stop-file appears, whichever comes
first; then prints one JSON summary. With --rate a request's latency runs from its place in the
schedule, not from when a thread got round to sending it: a stall that holds every thread shows in
the requests it delayed (an open loop), instead of thinning the load while it lasts. The summary:
sent, ok, failed, statuses, errors, versions (from JSON bodies), the bodies of the first kinds of
failed answers (failed_bodies, shortened), latency percentiles, and with
--tally FIELD how many responses carried each value of that JSON field (e.g. the worker pid).
With --timeline FILE it also writes each response's end time and latency, to line up with other
logs (scripts/bench_converge.py --timeline: which deploy steps the slow requests fall in).
Targets are loopback only: a unix socket, or http(s)://127.0.0.1 / localhost / [::1].
"""
import argparse
import http.client
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def connection_factory(args):
    if args.unix:
        return lambda: UnixHTTPConnection(args.unix, args.timeout)
    url = urllib.parse.urlsplit(args.url)
    if url.hostname not in LOOPBACK:
        raise SystemExit(f"refusing non-loopback target {url.hostname!r}")
    if url.scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return lambda: http.client.HTTPSConnection(url.hostname, url.port or 443, timeout=args.timeout, context=ctx)
    return lambda: http.client.HTTPConnection(url.hostname, url.port or 80, timeout=args.timeout)


def main():
    parser = argparse.ArgumentParser()
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--unix", help="unix socket path")
    target.add_argument("--url", help="http(s)://127.0.0.1[:port] (loopback only)")
    parser.add_argument("--path", default="/health/")
    parser.add_argument("--host-header", default="localhost")
    parser.add_argument("--header", action="append", default=[], help="extra 'Name: value' header")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30.0, help="hard limit in seconds (max 600)")
    parser.add_argument("--requests", type=int, default=50000, help="hard limit on requests sent")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="at most this many requests per second, evenly spaced (0: as fast as the threads go)")
    parser.add_argument("--stop-file", help="stop as soon as this file exists")
    parser.add_argument("--started-file", help="touched once the first response arrived")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--keepalive", action="store_true", help="reuse connections")
    parser.add_argument("--tally", help="count the values of this top-level field of JSON bodies")
    parser.add_argument("--timeline", help="write one line per response: its end (epoch seconds) and its latency in ms")
    args = parser.parse_args()
    duration = min(args.duration, 600.0)
    factory = connection_factory(args)
    headers = {"Host": args.host_header}
    for item in args.header:
        name, _, value = item.partition(":")
        headers[name.strip()] = value.strip()

    lock = threading.Lock()
    state = {"sent": 0, "ok": 0, "failed": 0, "statuses": {}, "errors": {}, "versions": {}, "lat": [],
             "last_version": None, "tally": {}, "ends": [], "bodies": {}}
    deadline = time.monotonic() + duration
    started = threading.Event()

    def next_request():
        """None once the load is over, else the time the next request is due: its place in an even
        schedule with --rate (never sent ahead of it, never a burst), else now."""
        if time.monotonic() >= deadline:
            return None
        if args.stop_file and os.path.exists(args.stop_file):
            return None
        with lock:
            if state["sent"] >= args.requests:
                return None
            slot = state["sent"]
            state["sent"] += 1
        if args.rate <= 0:
            return time.monotonic()
        due = t_start + slot / args.rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        return due

    def worker():
        conn = None
        while (t0 := next_request()) is not None:
            try:
                if conn is None:
                    conn = factory()
                conn.request("GET", args.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
                if not args.keepalive or resp.will_close:
                    conn.close()
                    conn = None
                version = tallied = None
                if body[:1] == b"{":
                    try:
                        parsed = json.loads(body)
                    except ValueError:
                        parsed = {}
                    version = parsed.get("version")
                    if args.tally and args.tally in parsed:
                        tallied = str(parsed[args.tally])
                t1 = time.monotonic()
                with lock:
                    state["lat"].append(t1 - t0)
                    if args.timeline:  # the end of each answer, in the order of "lat"
                        state["ends"].append(t1)
                    state["statuses"][str(status)] = state["statuses"].get(str(status), 0) + 1
                    if version:
                        state["versions"][version] = state["versions"].get(version, 0) + 1
                        state["last_version"] = version
                    if tallied is not None:
                        state["tally"][tallied] = state["tally"].get(tallied, 0) + 1
                    if 200 <= status < 400:
                        state["ok"] += 1
                    else:
                        state["failed"] += 1
                        # what a failed answer said (the first ones, shortened): why, not only how many
                        snippet = f"{status} {body[:160].decode('utf-8', 'replace')}"
                        if snippet in state["bodies"] or len(state["bodies"]) < 5:
                            state["bodies"][snippet] = state["bodies"].get(snippet, 0) + 1
            except Exception as exc:  # noqa: BLE001 - every error is a failed request
                if conn is not None:
                    conn.close()
                    conn = None
                with lock:
                    state["failed"] += 1
                    name = type(exc).__name__
                    state["errors"][name] = state["errors"].get(name, 0) + 1
            if not started.is_set():
                started.set()
                if args.started_file:
                    open(args.started_file, "w").close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + args.timeout + 5)
    elapsed = time.monotonic() - t_start
    if args.timeline:  # monotonic to wall clock, to line up with other logs (ansible's task times)
        offset = time.time() - time.monotonic()
        with open(args.timeline, "w", encoding="ascii") as out:
            out.writelines(f"{end + offset:.3f} {latency * 1000:.1f}\n" for end, latency in zip(state["ends"], state["lat"]))
    lat = sorted(state["lat"])

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else None

    print(json.dumps({
        "sent": state["ok"] + state["failed"], "ok": state["ok"], "failed": state["failed"],
        "statuses": state["statuses"], "errors": state["errors"], "versions": state["versions"],
        "last_version": state["last_version"], **({"tally": state["tally"]} if args.tally else {}),
        **({"failed_bodies": state["bodies"]} if state["bodies"] else {}),
        "elapsed_s": round(elapsed, 2),
        "rps": round((state["ok"] + state["failed"]) / elapsed, 1) if elapsed else 0,
        "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": pct(1.0),
    }))


if __name__ == "__main__":
    main()
