#!/usr/bin/env python3
"""Remote round trips per role (and task) in the output of `ansible-playbook -vvv`.

A round trip is one command the connection plugin runs on a host (EXEC) or one file it moves
(PUT/FETCH). A module run is an EXEC that starts Python: with pipelining it is the module call's
only round trip; without, Ansible adds a temporary directory, a PUT and a chmod around it (about
4 round trips per module). Prints, per host and role, the round trips and the module runs, then
the totals; with --tasks, every task that made any.

  ansible-playbook -vvv ... > run.log; python3 scripts/roundtrips.py run.log [--role gunicorn] [--tasks]
  scripts/measure_noop.sh SCENARIO  (converge, then a measured no-op converge; prints this table)
"""
import argparse
import collections
import re
import sys

TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<name>.*)\] \*+")
CALL = re.compile(r"^<(?P<host>[^>]+)> (?P<kind>EXEC|PUT|FETCH) ")
ROLE = re.compile(r"^(?:[\w]+\.[\w]+\.)?(?P<role>[\w]+) : ")
DURATION = re.compile(r"^Playbook run took (?:(\d+) days, )?(\d+) hours, (\d+) minutes, (\d+) seconds")


def parse(lines):
    calls = collections.Counter()
    tasks = collections.Counter()
    per_task = collections.Counter()
    task, role, seconds = "(none)", "(play)", None
    for line in lines:
        match = TASK.match(line)
        if match:
            task = match.group("name")
            role_match = ROLE.match(task)
            role = role_match.group("role") if role_match else "(play)"
            continue
        match = CALL.match(line)
        if match:
            key = (match.group("host"), role)
            calls[key] += 1
            if match.group("kind") == "EXEC" and "python" in line:
                tasks[key] += 1
            per_task[(match.group("host"), task)] += 1
            continue
        match = DURATION.match(line)
        if match:
            d, h, m, s = (int(g or 0) for g in match.groups())
            seconds = ((d * 24 + h) * 60 + m) * 60 + s
    return calls, tasks, per_task, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log")
    parser.add_argument("--role", action="append", help="only these roles")
    parser.add_argument("--tasks", action="store_true", help="list the tasks that made round trips")
    args = parser.parse_args()
    with open(args.log, encoding="utf-8", errors="replace") as fh:
        calls, tasks, per_task, seconds = parse(fh)
    rows = sorted(k for k in calls if not args.role or k[1] in args.role)
    print(f"{'host':<28} {'role':<16} {'round trips':>11} {'module runs':>12}")
    for host, role in rows:
        print(f"{host:<28} {role:<16} {calls[(host, role)]:>11} {tasks[(host, role)]:>12}")
    print(f"{'total':<45} {sum(calls[k] for k in rows):>11} {sum(tasks[k] for k in rows):>12}")
    if seconds is not None:
        print(f"wall time (profile_tasks): {seconds} s")
    if args.tasks:
        for (host, task), n in sorted(per_task.items()):
            role_match = ROLE.match(task)
            if args.role and (not role_match or role_match.group("role") not in args.role):
                continue
            print(f"  {n:>3}  {host}  {task}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
