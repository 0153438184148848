# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Check a staged PostgreSQL configuration the way the server will read it, before it goes live.

Run as root by pydeploy.django_stack.config_set (the validator of the postgres role's set):

    python3 pg_check_config.py --bin /usr/lib/postgresql/15/bin --live /etc/postgresql/15/main \
        --stage <stage>/conf --scratch /var/lib/pydeploy/postgres-check/15

1. A check directory (owned by the server's user, mode 0700) gets the live configuration files
   (postgresql.conf, pg_ident.conf, ..., conf.d/*.conf), and the staged files laid over them.
2. `postgres -D <check> -C data_directory` reads postgresql.conf and every include as a server
   start would: syntax, setting names, values and units of every setting, whatever its context.
3. pg_hba.conf: the server parses it in single-user mode (`postgres --single`) against a scratch
   data directory made once with initdb (the live one is locked by the running server), with the
   staged configuration; pg_hba_file_rules lists every line the server would reject or never
   match (an unknown method, a bad address or option, hostssl while ssl is off...). This is
   PostgreSQL's own parser, reading the staged files: nothing is put live to be checked.

Exit status 0 when PostgreSQL accepts everything; 1 with PostgreSQL's verdict on stderr otherwise.
"""

import argparse
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

HBA_QUERY = ("COPY (SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL "
             "ORDER BY line_number) TO STDOUT;\n")
# Single-user mode allocates the staged shared memory; these keep the check small whatever the
# staged sizes (their values were already parsed by `postgres -C`).
SINGLE_USER_OVERRIDES = ("shared_buffers=8MB", "huge_pages=off", "max_wal_senders=0", "max_replication_slots=0")
HBA_ROW = re.compile(r"^(?:backend> )*(\d+)\t(.*)$")
TIMEOUT = 300


class Rejected(Exception):
    """PostgreSQL refused the staged configuration; str() is its verdict."""


def conf_files(directory):
    """Configuration files of a cluster directory, relative: top-level regular files ending in
    .conf (postgresql.conf, pg_hba.conf, pg_ident.conf, pg_ctl.conf, start.conf...) and
    conf.d/*.conf. Certificates and keys are never copied."""
    found = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.endswith(".conf") and os.path.isfile(path) and not os.path.islink(path):
            found.append(name)
    dropins = os.path.join(directory, "conf.d")
    if os.path.isdir(dropins):
        for name in sorted(os.listdir(dropins)):
            if name.endswith(".conf") and os.path.isfile(os.path.join(dropins, name)):
                found.append(os.path.join("conf.d", name))
    return found


def staged_files(stage):
    found = []
    for root, _dirs, names in os.walk(stage):
        for name in names:
            found.append(os.path.relpath(os.path.join(root, name), stage))
    return sorted(found)


def assemble(live, stage, check, uid, gid):
    """The live configuration with the staged files over it, in `check` (owned by uid:gid)."""
    for relative in conf_files(live):
        _copy(os.path.join(live, relative), os.path.join(check, relative), uid, gid)
    for relative in staged_files(stage):
        _copy(os.path.join(stage, relative), os.path.join(check, relative), uid, gid)


def _copy(src, dest, uid, gid):
    os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
    os.chown(os.path.dirname(dest), uid, gid)
    shutil.copyfile(src, dest)
    os.chmod(dest, 0o600)
    os.chown(dest, uid, gid)


def file_overrides(check):
    """hba_file and ident_file of the live postgresql.conf are absolute paths: point them at the check copies."""
    return [f"hba_file={os.path.join(check, 'pg_hba.conf')}", f"ident_file={os.path.join(check, 'pg_ident.conf')}"]


def config_argv(bindir, check):
    argv = [os.path.join(bindir, "postgres"), "-D", check, "-C", "data_directory"]
    for setting in file_overrides(check):
        argv += ["-c", setting]
    return argv


def initdb_argv(bindir, scratch):
    # A throwaway cluster: nobody can log in (no server ever runs on it), 1 MB WAL segments.
    return [os.path.join(bindir, "initdb"), "-D", scratch, "--no-sync", "--auth=reject", "--encoding=UTF8",
            "--locale=C", "--wal-segsize=1", "--username=postgres"]


def single_user_argv(bindir, check, scratch):
    argv = [os.path.join(bindir, "postgres"), "--single", "-D", check, "-c", f"data_directory={scratch}"]
    for setting in file_overrides(check) + list(SINGLE_USER_OVERRIDES):
        argv += ["-c", setting]
    return argv + ["postgres"]


def hba_errors(stdout):
    """(line, error) rows of the single-user backend's output (its prompts and notices around them)."""
    rows = []
    for line in stdout.splitlines():
        found = HBA_ROW.match(line)
        if found:
            rows.append((int(found.group(1)), found.group(2)))
    return rows


def verdict(what, stderr, stdout=""):
    lines = [line for line in (stderr or stdout).splitlines() if line.strip()]
    interesting = [line for line in lines if re.search(r"(FATAL|ERROR|LOG|DETAIL|HINT):", line)] or lines
    return f"PostgreSQL rejected the new configuration ({what}): " + " | ".join(interesting[-8:])


class Checker:
    """The checks, with the command runner injected: run(argv, input_text) -> (rc, stdout, stderr)."""

    def __init__(self, run, bindir, scratch):
        self.run = run
        self.bindir = bindir
        self.scratch = scratch

    def settings(self, check):
        rc, out, err = self.run(config_argv(self.bindir, check), None)
        if rc != 0:
            raise Rejected(verdict("postgres -C", err, out))
        return out.strip()

    def ensure_scratch(self):
        if os.path.exists(os.path.join(self.scratch, "PG_VERSION")):
            return False
        if os.path.isdir(self.scratch):
            shutil.rmtree(self.scratch)  # a half-made one
        rc, out, err = self.run(initdb_argv(self.bindir, self.scratch), None)
        if rc != 0:
            raise RuntimeError(f"initdb of the scratch cluster {self.scratch} failed: {(err or out).strip()[-2000:]}")
        return True

    def hba(self, check):
        self.ensure_scratch()
        rc, out, err = self.run(single_user_argv(self.bindir, check, self.scratch), HBA_QUERY)
        if rc != 0:
            raise Rejected(verdict("postgres --single", err, out))
        rows = hba_errors(out)
        if rows:
            detail = "; ".join(f"pg_hba.conf line {line}: {error}" for line, error in rows)
            raise Rejected(f"PostgreSQL rejected the new configuration (pg_hba.conf): {detail}")
        return rows

    def check(self, check, hba=True):
        self.settings(check)
        if hba:
            self.hba(check)


def _runner(user):
    entry = pwd.getpwnam(user)

    def run(argv, input_text):
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": entry.pw_dir}
        proc = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=TIMEOUT, check=False,
                              cwd="/", env=env, user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        return proc.returncode, proc.stdout, proc.stderr
    return run, entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--bin", required=True, help="the server's bin directory")
    parser.add_argument("--live", required=True, help="the cluster's live configuration directory")
    parser.add_argument("--stage", required=True, help="the staged files, laid out as in the configuration directory")
    parser.add_argument("--scratch", required=True, help="data directory of the scratch cluster (made when missing)")
    parser.add_argument("--user", default="postgres", help="the server's user")
    parser.add_argument("--work", default=None, help="where the check directory is made (default: the system's)")
    args = parser.parse_args(argv)

    run, entry = _runner(args.user)
    parent = os.path.dirname(os.path.normpath(args.scratch))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    os.chown(parent, entry.pw_uid, entry.pw_gid)
    check = tempfile.mkdtemp(prefix="pg-check-", dir=args.work)
    try:
        os.chown(check, entry.pw_uid, entry.pw_gid)
        assemble(args.live, args.stage, check, entry.pw_uid, entry.pw_gid)
        Checker(run, args.bin, args.scratch).check(check)
    except Rejected as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(check, ignore_errors=True)
    print("PostgreSQL accepts the staged configuration (postgres -C, pg_hba_file_rules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
