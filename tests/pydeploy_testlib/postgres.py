"""Helpers for the PostgreSQL tests: SQL as the superuser, logins as an app role, the server's
start time and log, playbook runs limited to some of the role's tags.

Passwords never appear in a command line or in test output: app logins read the password
from the app's environment file on the host (the file python_app writes, 0640 root:<app>).
"""
import json
import os
import shlex
import subprocess


class Cluster:
    """The one cluster on the host, as pg_lsclusters reports it."""

    def __init__(self, host):
        fields = host.check_output("pg_lsclusters --no-header").split()
        self.version, self.name, self.port, self.status = fields[0], fields[1], int(fields[2]), fields[3]
        self.unit = f"postgresql@{self.version}-{self.name}.service"
        self.conf_dir = f"/etc/postgresql/{self.version}/{self.name}"
        self.log_file = f"/var/log/postgresql/postgresql-{self.version}-{self.name}.log"


def sql(host, query, db="postgres"):
    """Run SQL as postgres over the socket (peer); returns stdout, raises on any error."""
    cmd = f"cd / && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d {shlex.quote(db)} -c {shlex.quote(query)}"
    result = host.run(cmd)
    assert result.rc == 0, f"{query!r}: {result.stderr}"
    return result.stdout.strip()


def app_psql(host, conninfo, query="SELECT current_user", env_file="/etc/demo/env", password=True):
    """psql as the app role; the password comes from the app's env file on the host, by reference.
    password=False connects with no password at all (-w: never prompt)."""
    if password:
        prefix = f"set -a && . {shlex.quote(env_file)} && set +a && PGPASSWORD=\"$DJANGO_DB_PASSWORD\" "
    else:
        prefix = "unset PGPASSWORD; "
    return host.run(f"{prefix}psql -XAtqw {shlex.quote(conninfo)} -c {shlex.quote(query)}")


def postmaster_start(host):
    return sql(host, "SELECT pg_postmaster_start_time()")


def log_count(host, cluster, text):
    """Lines of the server log containing text (the log is only appended to in a test run)."""
    out = host.run(f"grep -cF {shlex.quote(text)} {shlex.quote(cluster.log_file)}").stdout.strip()
    return int(out or 0)


def run_tags(playbook, tags, extra_vars=None, timeout=900):
    """ansible-playbook on the scenario's inventory limited to some tags (faster than a full run;
    facts and handlers still run)."""
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], playbook, "--tags", ",".join(tags)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                          check=False)
