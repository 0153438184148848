"""Helpers for the PostgreSQL tests: SQL as the superuser, logins as an app role, the server's
start time and log, playbook runs limited to some of the role's tags.

Passwords never appear in a command line or in test output: app logins read the password
from the app's environment file on the host (the file python_app writes, 0640 root:<app>).
"""
import json
import os
import shlex
import subprocess
import tempfile


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


# The role's steps, by tag (tasks/main.yml).
ROLE_TAGS = ("postgres_install", "postgres_tls", "postgres_configure", "postgres_service", "postgres_databases",
             "postgres_backup")


def run_tags(playbook, tags, extra_vars=None, timeout=900):
    """ansible-playbook on the scenario's inventory running only some steps of the role (faster than
    a full run): the other steps are skipped by tag, so that everything untagged still runs (the
    playbook's validation play, which computes the roles' inputs; facts; handlers). Extra variables
    go through a 0600 file, never the command line (they may hold a password)."""
    skip = [tag for tag in ROLE_TAGS if tag not in tags]
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], playbook, "--skip-tags", ",".join(skip)]
    with tempfile.TemporaryDirectory() as tmp:
        if extra_vars:
            path = os.path.join(tmp, "extra_vars.json")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as handle:
                json.dump(extra_vars, handle)
            cmd += ["-e", "@" + path]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              check=False)


def scenario_password(name="demo-db-password"):
    """A password the scenario generated on the controller (ansible's password lookup file in
    Molecule's ephemeral directory)."""
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], name)
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip().split(" salt=")[0]


# Actions that run on the controller only: no round trip to the host.
LOCAL_ACTIONS = {"set_fact", "assert", "meta", "debug", "fail", "include_tasks", "import_tasks", "include_role",
                 "validate_argument_spec",
                 "include_vars", "validate_vars"}


def run_json(playbook, extra_vars=None, timeout=1500):
    """ansible-playbook with the JSON callback (ansible.posix.json): (returncode, parsed output)."""
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], playbook]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                          check=False, env=env)
    return proc.returncode, parse_json_output(proc.stdout)


def parse_json_output(text):
    """The JSON document of the json callback, among what other callbacks print around it
    (profile_tasks' task banners before it, its recap after it)."""
    start = text.find("\n{")
    start = 0 if text.startswith("{") else start + 1
    if start < 0 or not text[start:].startswith("{"):
        raise AssertionError(f"no JSON document in the output: {text[-2000:]}")
    doc, _ = json.JSONDecoder().raw_decode(text[start:])
    return doc


def role_tasks(doc, role="pydeploy.django_stack.postgres"):
    """Per task of the role that ran (not skipped): (name, action, round trips, changed). A loop's
    round trips are its items that ran; controller-only actions make none."""
    rows = []
    for play in doc["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"]
            if not name.startswith(role + " : "):
                continue
            for result in task["hosts"].values():
                action = str(result.get("action", "")).rsplit(".", 1)[-1]
                items = result.get("results")
                if items is not None:
                    ran = [i for i in items if not i.get("skipped")]
                    trips = 0 if action in LOCAL_ACTIONS else len(ran)
                    changed = any(i.get("changed") for i in ran)
                    if not ran:
                        continue
                elif result.get("skipped"):
                    continue
                else:
                    trips = 0 if action in LOCAL_ACTIONS else 1
                    changed = bool(result.get("changed"))
                rows.append((name[len(role) + 3:], action, trips, changed))
    return rows
