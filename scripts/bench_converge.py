#!/usr/bin/env python3
"""Converge benchmark (issue 13): how long the collection's playbooks take, not how fast the app serves.

    scripts/bench_converge.sh [--layouts single,three] [--runs 3] [--ssh] [--keep] [--controller-nice N] [--timeline]
                              [--split-cpus] [--priority-ab PAIRS]

For each layout, `runs` times, on fresh containers built from the local Debian image:
  cold     site.yml on new containers (image, apt and pip caches present)
  no-op    site.yml again (nothing to change; must report changed=0)
  deploy   deploy.yml with a new release of the demo (its VERSION bumped), with no other load
  deploy under load
           deploy.yml with the next release, under a bounded load
           through nginx on the web host's loopback: its failed requests are reported, and its p99
           latency against the p99 of the same load for STEADY_S seconds just before the deploy
           (the ratio of one run, on the same containers). The load is a closed loop of 4
           connections: it takes all the CPU the serving side can get, so every CPU-second the
           deploy takes shows in its latency
  deploy under paced load
           the same with the next release, under an open-loop load at PACED_SHARE of the rate the
           closed loop reached in its steady window (requests due on an even schedule, each one's
           latency counted from when it was due), against the same paced load's steady p99: live
           traffic with CPU to spare, as a site runs, rather than a saturated one (--paced-share sets
           the share; in the three-tier layout a rolling deploy drains one of the two app hosts, so
           at 0.5 the host left serving gets all the load the two shared: use 0.25 to keep it at half)
Each row: wall time, task results (ok+changed+skipped+failed+rescued+ignored summed over hosts,
from the play recap) and changed count. With --ssh the no-op converge of the single box is also
measured over SSH (sshd in the container, published on 127.0.0.1 only) with and without
pipelining and ControlPersist: the figures of README "Running it fast". With --timeline the load
generator records every response and the deploy under load runs with profile_tasks: a second
table shows which deploy steps the slow requests (over twice the steady p99) fell in. With
--split-cpus the containers run on the last CPU and ansible-playbook with the docker CLI on the
others: the hosts then bear only what a deploy runs on them, as with a controller of its own, while
on shared CPUs the controller's work (and the docker connection's) also slows the requests.
With --priority-ab PAIRS, each layout's last containers then alternate PAIRS times between the
serving processes at nice -5 (gunicorn_nice and nginx_worker_priority) and at the roles' default,
the normal priority (0), each applied by site.yml and measured by a deploy under each load: the p99 ratios
of both, side by side on the same containers. The containers get CAP_SYS_NICE, as systemd has on a host.
Prints a markdown table and keeps it under .cache/bench-reports/. Reports; never asserts on time.
"""
import argparse
import bisect
import datetime
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
COLLECTION = ROOT / "ansible_collections/pydeploy/django_stack"
DEMO = COLLECTION / "roles/python_app/files/demo_project"
CACHE = pathlib.Path(os.environ.get("PYDEPLOY_CACHE_DIR", pathlib.Path.home() / ".cache/pydeploy"))
PREFIX = os.environ.get("PYDEPLOY_INSTANCE_PREFIX", "pydeploy") + "-bc"
RELEASE = os.environ.get("PYDEPLOY_DEBIAN", "12")
IMAGE = f"{os.environ.get('PYDEPLOY_IMAGE_PREFIX', 'pydeploy/debian-systemd')}:{RELEASE}"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)"
                   r"\s+rescued=(\d+)\s+ignored=(\d+)", re.M)


def sh(*cmd, check=True, capture=False, **kw):
    return subprocess.run(cmd, check=check, text=True, capture_output=capture, **kw)


HOST_CPUS = None  # --split-cpus: the CPUs of the containers (the hosts), as docker's --cpuset-cpus


def container(name, network, ports=()):
    sh("docker", "rm", "-f", name, check=False, capture=True)
    args = ["docker", "run", "-d", "--name", name, "--hostname", name.rsplit("-", 1)[-1], "--network", network,
            *(["--cpuset-cpus", HOST_CPUS] if HOST_CPUS else []),
            # SYS_NICE: systemd and nginx may raise the serving processes' priority, as on a host.
            "--cap-add", "SYS_ADMIN", "--cap-add", "SYS_NICE",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
            "-v", f"{CACHE}/apt-{RELEASE}:/var/cache/apt/archives:rw", "-v", f"{CACHE}/pip:/root/.cache/pip:rw"]
    for port in ports:
        args += ["-p", f"127.0.0.1::{port}"]  # a free host port, on loopback only
    sh(*args, IMAGE, capture=True)
    for _ in range(60):
        state = sh("docker", "exec", name, "systemctl", "is-system-running", "--wait", check=False, capture=True).stdout
        if state.strip() in ("running", "degraded"):
            return
        time.sleep(1)
    raise SystemExit(f"systemd in {name} did not come up")


def extra_ca_b64():
    out = sh("bash", "-c", f"source {ROOT}/scripts/lib.sh && host_extra_ca_b64", capture=True, check=False)
    return out.stdout.strip()


def inventory(layout, workdir, source, conn="docker", ssh_port=None, extra=None):
    hosts = {"single": {"box": ["db", "app", "web"]},
             "three": {"web": ["web"], "app1": ["app"], "app2": ["app"], "db": ["db"]}}[layout]
    groups = {"db": {}, "app": {}, "web": {}}
    for host, member_of in hosts.items():
        entry = {"ansible_host": f"{PREFIX}-{layout}-{host}"}
        if conn == "ssh":
            entry = {"ansible_host": "127.0.0.1", "ansible_port": ssh_port, "ansible_user": "root",
                     "ansible_ssh_private_key_file": str(workdir / "id_ed25519"),
                     "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"}
        for group in member_of:
            groups[group][host] = entry
    common = {
        "ansible_connection": "community.docker.docker" if conn == "docker" else "ssh",
        "pydeploy_test_extra_ca": extra_ca_b64(),
        "python_app_ca_certificates": "{{ [pydeploy_test_extra_ca | b64decode] if pydeploy_test_extra_ca | length > 0 else [] }}",
        "python_app_pip_cert": "{{ '/etc/ssl/certs/ca-certificates.crt' if pydeploy_test_extra_ca | length > 0 else '' }}",
        "python_app_source_type": "path",
        "python_app_source_path": str(source),
        "python_app_allowed_hosts": ["localhost", "127.0.0.1"],
        "python_app_secret_key": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789",
        "python_app_database": {"engine": "postgresql", "name": "demo", "user": "demo",
                                "host": "/var/run/postgresql" if layout == "single" else f"{PREFIX}-three-db",
                                "port": 5432},
        "python_app_database_password": "bench-only-db-password",
        "gunicorn_private_users": False,
        "nginx_sites": [{"name": "demo", "server_names": ["localhost", "127.0.0.1"]}],
        "nginx_rate_limit": {},
    }
    if layout == "three":
        common["gunicorn_bind_tcp"] = ["{{ ansible_facts['default_ipv4']['address'] }}:8000"]
        common["postgres_listen_addresses"] = ["localhost", "{{ ansible_facts['default_ipv4']['address'] }}"]
    common.update(extra or {})
    inv = {"all": {"children": {g: {"hosts": h} for g, h in groups.items()}, "vars": common}}
    suffix = "".join(f"-{key}{value}" for key, value in sorted((extra or {}).items()))
    path = workdir / f"inventory-{layout}-{conn}{suffix}.json"
    path.write_text(json.dumps(inv, indent=1))
    return path


def playbook(name, inv, env=None, extra=(), output=None):
    """Run one of the collection's playbooks; with output (a list), append its stdout there."""
    cmd = [shutil.which("ansible-playbook") or "ansible-playbook", "-i", str(inv), f"pydeploy.django_stack.{name}", *extra]
    start = time.monotonic()
    proc = subprocess.run(cmd, text=True, capture_output=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    if output is not None:
        output.append(proc.stdout)
    wall = time.monotonic() - start
    recap = RECAP.findall(proc.stdout)
    tasks = sum(int(ok) + int(sk) + int(fa) + int(re_) + int(ig) for _, ok, _, _, fa, sk, re_, ig in recap)
    changed = sum(int(c) for _, _, c, *_ in recap)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise SystemExit(f"ansible-playbook {name} failed ({proc.returncode}):\n{tail}\n{proc.stderr[-2000:]}")
    return {"wall": wall, "tasks": tasks, "changed": changed}


def bump(source, version):
    (source / "VERSION").write_text(f"{version}\n")


STEADY_S = 20
PACED_SHARE = 0.5
PACED_CONCURRENCY = 16  # enough threads that a stall delays requests rather than the schedule


def load_cmd(concurrency=4, rate=None):
    """The load generator's command line on the web host: a closed loop of `concurrency` connections,
    or with `rate` an open loop at that many requests per second."""
    return (f"python3 /usr/local/bin/pydeploy-loadgen.py --url https://127.0.0.1 --path /health/ "
            f"--concurrency {concurrency} --requests 200000" + (f" --rate {rate:.0f}" if rate else ""))


LOAD = load_cmd()


def load_steady(web, load=LOAD):
    """`load` for STEADY_S seconds with nothing else running: the baseline of a deploy under it.
    Puts the load generator on the web host for load_start too."""
    sh("docker", "cp", str(ROOT / "tests/tools/loadgen.py"), f"{web}:/usr/local/bin/pydeploy-loadgen.py", capture=True)
    out = sh("docker", "exec", web, "bash", "-c", f"{load} --duration {STEADY_S}", capture=True, check=False).stdout
    return json.loads(out) if out.strip().startswith("{") else {}


def load_start(web, timeline=False, load=LOAD):
    record = " --timeline /tmp/bench-deploy.tl" if timeline else ""
    cmd = (f"nohup {load} --duration 600 --stop-file /tmp/bench.stop{record} > /tmp/bench-load.json "
           "2>/tmp/bench-load.err < /dev/null &")
    sh("docker", "exec", web, "bash", "-c", f"rm -f /tmp/bench.stop /tmp/bench-load.json; {cmd}")


def read_timeline(web):
    """[(end, latency_ms)] of the load generator's --timeline file on the web host."""
    out = sh("docker", "exec", web, "cat", "/tmp/bench-deploy.tl", check=False, capture=True).stdout
    return [(float(end), float(ms)) for end, ms in (line.split() for line in out.splitlines() if line.strip())]


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else 0.0


TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(.*)\]")
STAMP = re.compile(r"(\d{1,2}) (\w+) (\d{4})\s+(\d\d:\d\d:\d\d) ([+-]\d{4})")


def task_starts(stdout):
    """[(epoch second, task name)] from ansible.posix.profile_tasks output (each task header is followed
    by a line with the local time it started and its UTC offset)."""
    lines, starts = stdout.splitlines(), []
    for line, following in zip(lines, lines[1:]):
        task, stamp = TASK.match(line), STAMP.search(following)
        if task and stamp:
            when = datetime.datetime.strptime(" ".join(stamp.groups()), "%d %B %Y %H:%M:%S %z")
            starts.append((when.timestamp(), task.group(1)))
    return starts


def attribute(starts, timeline, steady_p99, end):
    """Per task of the deploy: its seconds, the requests that started while it ran, and how many of
    them were slow (over twice the steady p99). Whole seconds: profile_tasks prints no finer."""
    bounds = [start for start, _ in starts] + [end]
    rows = {}
    for finished, ms in timeline:
        begun = finished - ms / 1000
        index = bisect.bisect_right(bounds, begun) - 1
        if 0 <= index < len(starts):
            row = rows.setdefault(index, {"requests": 0, "slow": 0, "latencies": []})
            row["requests"] += 1
            row["slow"] += ms > 2 * steady_p99
            row["latencies"].append(ms)
    out = []
    for index, row in rows.items():
        out.append({"task": starts[index][1], "seconds": bounds[index + 1] - bounds[index], "requests": row["requests"],
                    "slow": row["slow"], "p99_ms": percentile(row["latencies"], 0.99)})
    return sorted(out, key=lambda r: r["slow"], reverse=True)


def load_stop(web):
    sh("docker", "exec", web, "touch", "/tmp/bench.stop")
    for _ in range(120):
        out = sh("docker", "exec", web, "cat", "/tmp/bench-load.json", check=False, capture=True).stdout
        if out.strip().startswith("{"):
            return json.loads(out)
        time.sleep(1)
    return {}


def deploy_under(web, inv, env, load, layout, run, timeline=None):
    """deploy.yml under `load`, after STEADY_S seconds of the same load alone: (the playbook's result
    with p99_ratio, the steady summary, the summary during the deploy). With timeline (a list), the
    slow requests' attribution to deploy steps is appended to it."""
    steady = load_steady(web, load)
    load_start(web, timeline is not None, load)
    output = []
    deploy_env = {**env, "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"} if timeline is not None else env
    try:
        result = playbook("deploy", inv, deploy_env, output=output)
    finally:
        during = load_stop(web)
    if timeline is not None and steady.get("p99_ms"):
        timeline.append({"layout": layout, "run": run, "steady_p99_ms": steady["p99_ms"],
                         "tasks": attribute(task_starts(output[0]), read_timeline(web), steady["p99_ms"], time.time())})
    result["p99_ratio"] = (during["p99_ms"] / steady["p99_ms"]) if during.get("p99_ms") and steady.get("p99_ms") else None
    return result, steady, during


def load_note(during, steady, ratio):
    return (f"{during.get('sent', '?')} sent, {during.get('failed', '?')} failed; p99 {during.get('p99_ms', '?')} ms"
            f" vs steady {steady.get('p99_ms', '?')} ms" + (f" = {ratio:.1f}x" if ratio else ""))


def priority_ab(layout, pairs, workdir, source, web, env, rows, version):
    """On the converged containers of `layout`: `pairs` times, the serving processes at nice -5
    (gunicorn_nice and nginx_worker_priority) and at the roles' default, the normal priority (0), in alternating order,
    each applied by site.yml and then measured with a release deployed under the closed loop and another
    under the paced load (each against its own steady window, as above)."""
    variants = {-5: {"gunicorn_nice": -5, "nginx_worker_priority": -5}, 0: None}
    for pair in range(pairs):
        for nice in ((-5, 0) if pair % 2 == 0 else (0, -5)):
            inv = inventory(layout, workdir, source, extra=variants[nice])
            playbook("site", inv, env)
            label = f"serving at nice {nice}"
            for kind in ("closed loop", "paced load"):
                version += 1
                bump(source, f"{version}.0.0-bench")
                if kind == "closed loop":
                    result, steady, load = deploy_under(web, inv, env, LOAD, layout, pair)
                    rate = steady.get("rps", 0) * PACED_SHARE
                    note = f"load: {load_note(load, steady, result['p99_ratio'])}"
                elif rate:
                    result, steady, load = deploy_under(web, inv, env, load_cmd(PACED_CONCURRENCY, rate), layout, pair)
                    note = f"{rate:.0f} req/s due: {load_note(load, steady, result['p99_ratio'])}; max {load.get('max_ms', '?')} ms"
                else:
                    continue
                rows.append({"layout": layout, "run": pair + 1, "step": f"deploy.yml under the {kind}, {label}",
                             "note": note, **result})
                print(f"{layout} pair {pair + 1} {label} {kind}: {result} {note}", flush=True)


def run_layout(layout, runs, workdir, rows, ssh=False, timeline=None, ab_pairs=0):
    """timeline: a list to which the slow-request attribution of each deploy under load is appended;
    ab_pairs: pairs of priority_ab runs on the last run's containers."""
    names = {"single": ["box"], "three": ["web", "app1", "app2", "db"]}[layout]
    network = f"{PREFIX}-net"
    sh("docker", "network", "create", network, check=False, capture=True)
    for run in range(1, runs + 1):
        source = workdir / f"src-{layout}-{run}"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(DEMO, source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for host in names:
            container(f"{PREFIX}-{layout}-{host}", network, ports=("22",) if ssh and layout == "single" else ())
        inv = inventory(layout, workdir, source)
        env = {"ANSIBLE_COLLECTIONS_PATH": os.environ.get("PYDEPLOY_COLLECTIONS_PATH", "")}
        for step in ("cold", "no-op"):
            result = playbook("site", inv, env)
            rows.append({"layout": layout, "run": run, "step": f"site.yml {step}", **result})
            print(f"{layout} run {run} {step}: {result}", flush=True)
        bump(source, f"1.{run}.0-bench")
        result = playbook("deploy", inv, env)
        rows.append({"layout": layout, "run": run, "step": "deploy.yml (new release)", **result})
        print(f"{layout} run {run} deploy: {result}", flush=True)
        web = f"{PREFIX}-{layout}-{'web' if layout == 'three' else 'box'}"
        bump(source, f"1.{run}.1-bench")
        result, steady, load = deploy_under(web, inv, env, LOAD, layout, run, timeline)
        note = f"load: {load_note(load, steady, result['p99_ratio'])}"
        rows.append({"layout": layout, "run": run, "step": "deploy.yml (new release) under load", "note": note, **result})
        print(f"{layout} run {run} deploy under load: {result} {note}", flush=True)
        if steady.get("rps"):
            rate = steady["rps"] * PACED_SHARE
            bump(source, f"1.{run}.2-bench")
            result, paced_steady, load = deploy_under(web, inv, env, load_cmd(PACED_CONCURRENCY, rate), layout, run)
            note = (f"{rate:.0f} req/s due ({PACED_SHARE:.0%} of the closed loop's {steady['rps']:.0f}): "
                    f"{load_note(load, paced_steady, result['p99_ratio'])}; max {load.get('max_ms', '?')} ms")
            rows.append({"layout": layout, "run": run, "step": "deploy.yml (new release) under paced load", "note": note,
                         **result})
            print(f"{layout} run {run} deploy under paced load: {result} {note}", flush=True)
    if ab_pairs:
        priority_ab(layout, ab_pairs, workdir, source, web, env, rows, 10 * runs)
    return names


def ssh_rows(workdir, rows):
    name = f"{PREFIX}-single-box"
    key = workdir / "id_ed25519"
    if not key.exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    port = sh("docker", "port", name, "22", check=False, capture=True).stdout.strip().rsplit(":", 1)[-1]
    sh("docker", "exec", name, "bash", "-c",
       "apt-get install -y -qq openssh-server >/dev/null && mkdir -p /root/.ssh && systemctl start ssh")
    sh("docker", "exec", "-i", name, "bash", "-c", "cat > /root/.ssh/authorized_keys",
       input=(workdir / "id_ed25519.pub").read_text())
    inv = inventory("single", workdir, workdir / "src-single-1", conn="ssh", ssh_port=int(port))
    variants = [
        ("SSH, no pipelining, no ControlPersist", {"ANSIBLE_PIPELINING": "False", "ANSIBLE_SSH_ARGS": "-o ControlMaster=no"}),
        ("SSH, ControlPersist only", {"ANSIBLE_PIPELINING": "False"}),
        ("SSH, pipelining + ControlPersist (ansible.cfg)", {}),
    ]
    for label, env in variants:
        env = {"ANSIBLE_COLLECTIONS_PATH": os.environ.get("PYDEPLOY_COLLECTIONS_PATH", ""), **env}
        result = playbook("site", inv, env)
        rows.append({"layout": "single", "run": 1, "step": f"site.yml no-op, {label}", **result})
        print(f"ssh {label}: {result}", flush=True)


def table(rows):
    out = ["| layout | step | runs | median s | min s | max s | task results | changed | note |",
           "|---|---|---|---|---|---|---|---|---|"]
    seen = []
    for row in rows:
        key = (row["layout"], row["step"])
        if key not in seen:
            seen.append(key)
    for layout, step in seen:
        group = [r for r in rows if (r["layout"], r["step"]) == (layout, step)]
        walls = [r["wall"] for r in group]
        notes = " / ".join(r["note"] for r in group if r.get("note"))
        ratios = [r["p99_ratio"] for r in group if r.get("p99_ratio")]
        if ratios:
            notes += f" (p99 during / steady, median {statistics.median(ratios):.1f}x)"
        out.append(f"| {layout} | {step} | {len(group)} | {statistics.median(walls):.0f} | {min(walls):.0f} | "
                   f"{max(walls):.0f} | {group[-1]['tasks']} | {'/'.join(str(r['changed']) for r in group)} | {notes} |")
    return "\n".join(out)


def timeline_table(timelines, top=12):
    out = []
    for entry in timelines:
        tasks = entry["tasks"]
        total = sum(t["slow"] for t in tasks)
        out += [f"\n{entry['layout']}, run {entry['run']}: {total} slow requests (over twice the steady p99 of "
                f"{entry['steady_p99_ms']:.1f} ms), by the deploy step they started in ({top} steps with the most)\n",
                "| step | s | requests | slow | p99 ms |", "|---|---|---|---|---|"]
        out += [f"| {t['task']} | {t['seconds']:.0f} | {t['requests']} | {t['slow']} | {t['p99_ms']:.1f} |"
                for t in tasks[:top]]
    return "\n".join(out)


def main():
    global PACED_SHARE  # pylint: disable=global-statement
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layouts", default="single,three")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ssh", action="store_true")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--timeline", action="store_true",
                        help="record every response of the deploy under load and show the deploy steps the slow ones fell in")
    parser.add_argument("--controller-nice", type=int, default=0, choices=range(0, 20), metavar="0-19",
                        help="run ansible-playbook at this nice level: on this one machine the controller shares the "
                             "CPUs with the hosts it deploys to, where a real one does not (the modules on the hosts "
                             "are started by the container runtime and keep the normal priority)")
    parser.add_argument("--paced-share", type=float, default=PACED_SHARE, metavar="SHARE",
                        help="the paced load's rate as a share (0-1] of the rate the closed loop reached "
                             f"(default {PACED_SHARE})")
    parser.add_argument("--priority-ab", type=int, default=0, metavar="PAIRS",
                        help="then, on each layout's last containers, PAIRS times (alternating order) the serving "
                             "processes at nice -5 (gunicorn_nice, nginx_worker_priority) and at the default 0, each "
                             "measured by a deploy under the closed loop and one under the paced load")
    parser.add_argument("--split-cpus", action="store_true",
                        help="run the containers on the last CPU and ansible-playbook (with the docker CLI) on the "
                             "others, as if the controller were another machine; Docker's daemons are not moved")
    args = parser.parse_args()
    if not 0 < args.paced_share <= 1:
        parser.error("--paced-share must be in (0, 1]")
    PACED_SHARE = args.paced_share
    if args.split_cpus:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            parser.error("--split-cpus needs two CPUs or more")
        global HOST_CPUS  # pylint: disable=global-statement
        HOST_CPUS = str(cpus[-1])
        os.sched_setaffinity(0, cpus[:-1])
    # Inherited by ansible-playbook and the docker CLI; the modules on the hosts, started by the
    # container runtime, keep the normal priority.
    os.nice(args.controller_nice)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="pydeploy-bench-converge-"))
    rows, names = [], []
    timelines = [] if args.timeline else None
    started = time.monotonic()
    try:
        for layout in args.layouts.split(","):
            names += [f"{PREFIX}-{layout}-{n}" for n in run_layout(layout, args.runs, workdir, rows, args.ssh, timelines,
                                                                       args.priority_ab)]
        if args.ssh and "single" in args.layouts:
            ssh_rows(workdir, rows)
    finally:
        report = (f"Converge benchmark {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
                  f"Debian {RELEASE} containers, docker connection unless noted, load average at the end "
                  f"{open('/proc/loadavg').read().split()[:3]}, total {(time.monotonic() - started) / 60:.0f} min"
                  + (f", ansible-playbook at nice {args.controller_nice}" if args.controller_nice else "")
                  + (f", the containers on CPU {HOST_CPUS} and ansible-playbook on the others" if HOST_CPUS else "")
                  + "\n\n"
                  + table(rows) + "\n" + (timeline_table(timelines) + "\n" if timelines else ""))
        print("\n" + report)
        reports = ROOT / ".cache/bench-reports"
        reports.mkdir(parents=True, exist_ok=True)
        (reports / f"converge-{time.strftime('%Y%m%dT%H%M')}.md").write_text(report)
        if not args.keep:
            for name in names:
                sh("docker", "rm", "-f", name, check=False, capture=True)
            sh("docker", "network", "rm", f"{PREFIX}-net", check=False, capture=True)
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
