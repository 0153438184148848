#!/usr/bin/env python3
"""pip against uv building a release virtualenv, as python_app builds it (prints a table).

    python3 bench_installer.py --requirements FILE --uv /opt/pydeploy/uv-X/bin/uv [--python /usr/bin/python3]
        [--runs 3] [--extra gunicorn==27.0.1 ...]

Per installer and run: a new virtualenv (`python -m venv` / `uv venv`) and one install of the
requirements plus the extra packages, first with an empty cache ("cold", every download), then
with the cache the cold run left ("warm": what a host that built a release before sees). Wall
times in seconds; median over the runs. Needs the package index the host uses (PIP_INDEX_URL,
proxies and CA as in the environment).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time


def timed(cmd, env):
    start = time.monotonic()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - start


def build(installer, args, work, cache, env):
    venv = tempfile.mkdtemp(dir=work)
    env = dict(env, PIP_CACHE_DIR=cache, UV_CACHE_DIR=cache, UV_LINK_MODE="copy", UV_NO_PROGRESS="1")
    if installer == "pip":
        total = timed([args.python, "-m", "venv", venv], env)
        total += timed([f"{venv}/bin/pip", "install", "--no-input", "--disable-pip-version-check", "-r",
                        args.requirements, *args.extra], env)
    else:
        total = timed([args.uv, "venv", "--allow-existing", "--python", args.python, venv], env)
        total += timed([args.uv, "pip", "install", "--python", f"{venv}/bin/python", "-r", args.requirements,
                        *args.extra], env)
    shutil.rmtree(venv)
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requirements", required=True)
    parser.add_argument("--uv", required=True)
    parser.add_argument("--python", default="/usr/bin/python3")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--extra", nargs="*", default=[])
    parser.add_argument("--workdir", default="/var/tmp", help="where the virtualenvs go (not a noexec /tmp)")
    args = parser.parse_args()
    args.runs = max(1, min(args.runs, 5))
    env = dict(os.environ)
    if env.get("PIP_INDEX_URL"):
        env.setdefault("UV_INDEX_URL", env["PIP_INDEX_URL"])
    if env.get("PIP_CERT"):
        env.setdefault("SSL_CERT_FILE", env["PIP_CERT"])
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-installer-", dir=args.workdir) as work:
        for installer in ("pip", "uv"):
            cold, warm = [], []
            for _ in range(args.runs):
                cache = tempfile.mkdtemp(dir=work)
                cold.append(build(installer, args, work, cache, env))
                warm.append(build(installer, args, work, cache, env))
                shutil.rmtree(cache)
            results[installer] = (statistics.median(cold), statistics.median(warm))
    print(f"requirements: {args.requirements} (+ {' '.join(args.extra) or 'nothing'}), {args.runs} run(s), median")
    print(f"{'installer':<10} {'cold cache (s)':>15} {'warm cache (s)':>15}")
    for installer, (cold, warm) in results.items():
        print(f"{installer:<10} {cold:>15.1f} {warm:>15.1f}")


if __name__ == "__main__":
    main()
