"""PostgreSQL (role postgres) with the Django app on one live host: authentication, tuning,
reload versus restart, the app's database path, backups and restores, bad input."""
import json
import os
import re
import secrets
import shlex
import uuid

import pytest
from pydeploy_testlib import child_pids, http_json, main_pid, recap_changed, run_playbook, wait_for
from pydeploy_testlib.postgres import (Cluster, app_psql, log_count, postmaster_start, role_tasks, run_json, run_tags,
                                       scenario_password, sql)

APP_SOCKET = "/run/gunicorn/demo.sock"
GUNICORN = "gunicorn-demo.service"
READY = "database system is ready to accept connections"
DB_PLAYBOOK = "pydeploy.django_stack.db"
# The scenario's inputs (molecule.yml): 3 Gunicorn workers on the one app host, 1024 MB for PostgreSQL.
WORKERS, MEMORY_MB, RESERVED = 3, 1024, 20
# A digest of the stored verifier: compared, never printed (a verifier can be attacked offline).
VERIFIER_DIGEST = "SELECT encode(sha256(rolpassword::bytea), 'hex') FROM pg_authid WHERE rolname = 'demo'"


@pytest.fixture(scope="module")
def cluster(host):
    return Cluster(host)


def stack(**changes):
    """postgres_stack as the playbooks compute it for this scenario (the app's database, role and
    password; 3 Gunicorn workers of 1 thread; no other app host), with changes."""
    value = {"app_databases": [{"name": "demo", "user": "demo", "password": scenario_password()}],
             "app_connections": WORKERS, "app_networks": []}
    value.update(changes)
    return value


def host_address(host):
    return host.check_output("hostname -I").split()[0]


def test_server_active_and_enabled(host, cluster):
    assert cluster.status == "online"
    assert host.service(cluster.unit).is_running
    assert host.service(cluster.unit).is_enabled
    assert host.service("postgresql.service").is_enabled
    assert host.file(f"{cluster.conf_dir}/start.conf").content_string.split()[-1] == "auto"
    assert sql(host, "SELECT 1") == "1"


def test_cluster_is_utf8_with_checksums(host):
    assert sql(host, "SHOW server_encoding") == "UTF8"
    assert sql(host, "SHOW data_checksums") == "on"
    row = sql(host, "SELECT pg_encoding_to_char(encoding), datcollate, datctype, pg_get_userbyid(datdba)"
                    " FROM pg_database WHERE datname = 'demo'")
    assert row == "UTF8|C.UTF-8|C.UTF-8|demo"
    assert sql(host, "SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'", db="demo") == "pg_trgm"


def test_app_role_has_least_privilege(host):
    row = sql(host, "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"
                    " FROM pg_roles WHERE rolname = 'demo'")
    assert row == "t|f|f|f|f|f"
    # Only the owner may connect to its database: PUBLIC lost CONNECT and TEMPORARY.
    assert sql(host, "SELECT has_database_privilege('public', 'demo', 'CONNECT')") == "f"
    assert sql(host, "SELECT has_database_privilege('demo', 'demo', 'CONNECT')") == "t"


def test_password_stored_as_scram(host):
    assert sql(host, "SHOW password_encryption") == "scram-sha-256"
    assert sql(host, "SELECT rolpassword LIKE 'SCRAM-SHA-256$4096:%' FROM pg_authid WHERE rolname = 'demo'") == "t"


def test_app_role_logs_in_over_the_socket_with_its_password(host):
    result = app_psql(host, "host=/var/run/postgresql dbname=demo user=demo")
    assert result.rc == 0 and result.stdout.strip() == "demo", result.stderr


def test_app_role_logs_in_over_tcp_from_an_allowed_address_with_tls(host):
    result = app_psql(host, "host=127.0.0.1 dbname=demo user=demo sslmode=require",
                      "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert result.rc == 0 and result.stdout.strip() == "demo|t", result.stderr
    # TCP entries are hostssl: the same login without TLS is refused.
    result = app_psql(host, "host=127.0.0.1 dbname=demo user=demo sslmode=disable")
    assert result.rc != 0 and "no pg_hba.conf entry" in result.stderr


def test_login_without_or_with_a_wrong_password_fails(host):
    for conninfo in ("host=/var/run/postgresql dbname=demo user=demo", "host=127.0.0.1 dbname=demo user=demo"):
        result = app_psql(host, conninfo, password=False)
        assert result.rc != 0 and "no password supplied" in result.stderr, (conninfo, result.stderr)
    result = host.run("PGPASSWORD=not-the-password psql -XAtqw 'host=127.0.0.1 dbname=demo user=demo' -c 'SELECT 1'")
    assert result.rc != 0 and 'password authentication failed for user "demo"' in result.stderr


def test_tcp_from_an_unlisted_address_is_refused(host, cluster):
    # The server listens on the container's address too (postgres_listen_addresses), but that
    # network is not in postgres_hba_app_networks.
    address = host_address(host)
    assert host.socket(f"tcp://{address}:{cluster.port}").is_listening
    result = app_psql(host, f"host={address} dbname=demo user=demo")
    assert result.rc != 0 and f'no pg_hba.conf entry for host "{address}"' in result.stderr


def test_app_role_reaches_only_its_own_database(host):
    result = app_psql(host, "host=/var/run/postgresql dbname=postgres user=demo")
    assert result.rc != 0 and "no pg_hba.conf entry" in result.stderr


def test_pg_hba_has_no_trust_and_starts_with_peer_for_postgres(host):
    rules = sql(host, "SELECT type, array_to_string(database, ','), array_to_string(user_name, ','), auth_method,"
                      " coalesce(error, '') FROM pg_hba_file_rules ORDER BY line_number").splitlines()
    assert rules[0] == "local|all|postgres|peer|"
    assert all(rule.split("|")[4] == "" for rule in rules), rules  # no parse error on any line
    assert not [rule for rule in rules if rule.split("|")[3] in ("trust", "password")], rules
    assert "local|demo|demo|scram-sha-256|" in rules
    assert "hostssl|demo|demo|scram-sha-256|" in rules


def test_settings_sized_from_memory_and_app_workers(host, cluster):
    max_connections = WORKERS * 1 * 2 + RESERVED
    shared_buffers = MEMORY_MB // 4
    work_mem = max(4, (MEMORY_MB - shared_buffers) // (max_connections * 3))
    expected = {
        "max_connections": str(max_connections),
        "shared_buffers": f"{shared_buffers}MB",
        "effective_cache_size": f"{MEMORY_MB * 3 // 4}MB",
        "work_mem": f"{work_mem}MB",
        "maintenance_work_mem": "64MB",
        "checkpoint_timeout": "15min",
        "max_wal_size": "4GB",
        "password_encryption": "scram-sha-256",
    }
    for name, value in expected.items():
        assert sql(host, f"SHOW {name}") == value, name
    # From the role's drop-in, as the running server reports it, with nothing left to apply.
    source = sql(host, "SELECT sourcefile FROM pg_settings WHERE name = 'shared_buffers'")
    assert source == f"{cluster.conf_dir}/conf.d/50-pydeploy.conf"
    assert sql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"


def test_django_migrated_against_postgresql(host):
    applied = sql(host, "SELECT name FROM django_migrations WHERE app = 'demo' ORDER BY name", db="demo")
    assert "0001_initial" in applied.splitlines()
    assert sql(host, "SELECT tableowner FROM pg_tables WHERE tablename = 'demo_note'", db="demo") == "demo"
    env = host.file("/etc/demo/env").content_string
    assert "DJANGO_DB_ENGINE='postgresql'" in env and "DJANGO_DB_HOST='/var/run/postgresql'" in env


def test_health_reports_the_database(host):
    status, body = http_json(host, "/health/", unix=APP_SOCKET)
    assert status == 200 and body["db"] == "ok" and body["db_vendor"] == "postgresql", body
    # The app's persistent connections (CONN_MAX_AGE) are there, as the app role.
    assert int(sql(host, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'demo'")) >= 1


def test_health_follows_a_database_outage_without_restarting_gunicorn(host, cluster):
    master = main_pid(host, GUNICORN)
    workers = child_pids(host, master)
    try:
        assert host.run(f"systemctl stop {cluster.unit}").rc == 0
        statuses = [http_json(host, "/health/", unix=APP_SOCKET) for _ in range(3 * WORKERS)]
        assert {status for status, _ in statuses} == {503}, statuses
        assert {body["db"] for _, body in statuses} == {"error"}
    finally:
        assert host.run(f"systemctl start {cluster.unit}").rc == 0
    wait_for(lambda: http_json(host, "/health/", unix=APP_SOCKET)[0] == 200, 60, "/health/ back to 200")
    # Every worker reconnects by itself (CONN_HEALTH_CHECKS): no 503 once the server is back.
    statuses = {http_json(host, "/health/", unix=APP_SOCKET)[0] for _ in range(6 * WORKERS)}
    assert statuses == {200}
    assert main_pid(host, GUNICORN) == master
    assert child_pids(host, master) == workers


def test_reload_only_changes_apply_without_a_restart(host, cluster):
    started = postmaster_start(host)
    ready = log_count(host, cluster, READY)
    verifier = sql(host, VERIFIER_DIGEST)
    address = host_address(host)
    # A reload-only setting, and one extra pg_hba.conf entry given without restating the defaults.
    extra = {"postgres_work_mem": "12MB",
             "postgres_hba_entries": [{"type": "hostssl", "database": "demo", "user": "demo",
                                       "address": f"{address}/32", "method": "scram-sha-256"}]}
    result = run_tags(DB_PLAYBOOK, ["postgres_configure", "postgres_service", "postgres_databases"], extra)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "RUNNING HANDLER [pydeploy.django_stack.postgres : Postgres reload]" in result.stdout
    assert "Postgres restart" not in result.stdout
    assert sql(host, "SHOW work_mem") == "12MB"
    # The new entry admits the app role from that address; the defaults still apply.
    result = app_psql(host, f"host={address} dbname=demo user=demo sslmode=require")
    assert result.rc == 0 and result.stdout.strip() == "demo", result.stderr
    assert app_psql(host, "host=/var/run/postgresql dbname=demo user=demo").rc == 0
    assert postmaster_start(host) == started
    assert log_count(host, cluster, READY) == ready
    # The same password again: the stored verifier (its salt included) is untouched.
    assert sql(host, VERIFIER_DIGEST) == verifier


def test_restart_only_setting_restarts_exactly_once(host, cluster):
    started = postmaster_start(host)
    ready = log_count(host, cluster, READY)
    try:
        result = run_tags(DB_PLAYBOOK, ["postgres_configure", "postgres_service"], {"postgres_shared_buffers": "160MB"})
        assert result.returncode == 0, result.stdout[-3000:]
        assert sql(host, "SHOW shared_buffers") == "160MB"
        # The previous test's changes are reverted by the same run (a reload).
        assert sql(host, "SHOW work_mem") != "12MB"
        assert app_psql(host, f"host={host_address(host)} dbname=demo user=demo").rc != 0
        assert postmaster_start(host) != started
        assert log_count(host, cluster, READY) == ready + 1
        assert sql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"
    finally:
        # Back to the converged state for the tests that follow (one more restart).
        result = run_tags(DB_PLAYBOOK, ["postgres_configure", "postgres_service"])
        assert result.returncode == 0, result.stdout[-3000:]
    assert sql(host, "SHOW shared_buffers") == f"{MEMORY_MB // 4}MB"
    wait_for(lambda: http_json(host, "/health/", unix=APP_SOCKET)[0] == 200, 60, "/health/ after the restarts")


@pytest.mark.parametrize("bad, verdict", [
    ({"postgres_settings": {"shared_buffers": "1XB"}}, 'invalid value for parameter "shared_buffers"'),
    ({"postgres_hba_entries": [{"type": "host", "database": "all", "user": "demo", "address": "10.1.0.0/16",
                                "method": "ldap"}]}, 'authentication method "ldap" requires argument'),
], ids=["settings", "pg_hba"])
def test_configuration_postgresql_rejects_is_never_loaded(host, cluster, bad, verdict):
    files = [f"{cluster.conf_dir}/conf.d/50-pydeploy.conf", f"{cluster.conf_dir}/pg_hba.conf"]
    before = {path: host.file(path).sha256sum for path in files}
    # Inode and modification time: a file written live and put back afterwards would change both.
    stamps = host.check_output("stat -c '%n %i %y' " + " ".join(files))
    loaded = sql(host, "SELECT pg_conf_load_time()")
    result = run_tags(DB_PLAYBOOK, ["postgres_configure", "postgres_service"], bad)
    assert result.returncode != 0
    assert "PostgreSQL rejected the new configuration" in result.stdout, result.stdout[-3000:]
    assert verdict in result.stdout, result.stdout[-3000:]
    # The rejected files were never live: the live ones were not even rewritten; no reload
    # happened; nothing is left behind beside them.
    assert {path: host.file(path).sha256sum for path in files} == before
    assert host.check_output("stat -c '%n %i %y' " + " ".join(files)) == stamps
    assert sql(host, "SELECT pg_conf_load_time()") == loaded
    leftovers = host.run(f"find {cluster.conf_dir} -name '*~' -o -name '*.pydeploy' -o -name '.*.tmp'").stdout.strip()
    assert leftovers == ""
    assert host.service(cluster.unit).is_running


def add_notes(host, count):
    code = f"from demo.models import Note; Note.objects.bulk_create(Note(text=f'note {{i}}') for i in range({count}))"
    result = host.run(f"runuser -u demo -- /srv/demo/bin/manage shell -c {shlex.quote(code)}")
    assert result.rc == 0, result.stderr


def dumps(host, prefix):
    listing = host.check_output(f"ls -1 /var/backups/postgresql | grep -E '^{prefix}-.*[.](pgc|sql)$' || true")
    return sorted(listing.split())


def test_backup_timer_is_scheduled_and_hardened(host):
    timer = host.service("postgres-backup.timer")
    assert timer.is_enabled and timer.is_running
    assert host.run("systemctl show -p NextElapseUSecRealtime --value postgres-backup.timer").stdout.strip()
    assert host.run("systemctl show -p User --value postgres-backup.service").stdout.strip() == "postgres"
    backup_dir = host.file("/var/backups/postgresql")
    assert backup_dir.user == "postgres" and backup_dir.mode == 0o700
    result = host.run("systemd-analyze security --no-pager --threshold=20 postgres-backup.service")
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert exposure, result.stdout[-500:]
    print(f"systemd-analyze security exposure of postgres-backup.service: {exposure.group(1)}")
    assert result.rc == 0


def test_backup_run_produces_a_dump_that_restores(host):
    add_notes(host, 37)
    rows = sql(host, "SELECT count(*) FROM demo_note", db="demo")
    assert int(rows) >= 37
    before = dumps(host, "demo")
    assert host.run("systemctl start postgres-backup.service").rc == 0
    assert host.run("systemctl show -p Result --value postgres-backup.service").stdout.strip() == "success"
    new = sorted(set(dumps(host, "demo")) - set(before))
    assert len(new) == 1, new
    dump = host.file(f"/var/backups/postgresql/{new[0]}")
    assert dump.user == "postgres" and dump.mode == 0o600
    assert dumps(host, "globals")
    try:
        result = run_playbook("pydeploy.django_stack.restore",
                              {"postgres_restore_database": "demo_restore_check", "postgres_restore_from": "demo"})
        assert result.returncode == 0, result.stdout[-3000:]
        assert sql(host, "SELECT count(*) FROM demo_note", db="demo_restore_check") == rows
        owner = sql(host, "SELECT tableowner FROM pg_tables WHERE tablename = 'demo_note'", db="demo_restore_check")
        assert owner == "demo"
        # An existing database is left alone unless replacing it is asked for.
        sql(host, "INSERT INTO demo_note (text, created) VALUES ('only in the copy', now())", db="demo_restore_check")
        restore = {"postgres_restore_database": "demo_restore_check", "postgres_restore_from": "demo"}
        result = run_playbook("pydeploy.django_stack.restore", restore)
        assert result.returncode != 0 and "postgres_restore_replace" in result.stdout
        assert sql(host, "SELECT count(*) FROM demo_note", db="demo_restore_check") == str(int(rows) + 1)
        result = run_playbook("pydeploy.django_stack.restore", {**restore, "postgres_restore_replace": True})
        assert result.returncode == 0, result.stdout[-3000:]
        assert sql(host, "SELECT count(*) FROM demo_note", db="demo_restore_check") == rows
    finally:
        sql(host, "DROP DATABASE IF EXISTS demo_restore_check")


def test_backup_retention_keeps_the_newest_by_count(host):
    for _ in range(3):
        assert host.run("systemctl start postgres-backup.service").rc == 0
    kept = dumps(host, "demo")
    assert len(kept) == 2, kept  # postgres_backup_keep: 2 in this scenario
    assert len(dumps(host, "globals")) == 2
    assert not host.run("ls -A /var/backups/postgresql | grep -F .partial").stdout
    # The newest one is among them: it holds the notes added last.
    newest = kept[-1]
    listing = host.check_output(f"runuser -u postgres -- pg_restore --list /var/backups/postgresql/{newest}")
    assert "TABLE DATA public demo_note" in listing


@pytest.mark.parametrize("bad, evidence", [
    ({"postgres_hba_entries": [{"type": "host", "database": "all", "user": "all", "address": "10.0.0.0/8",
                                "method": "bogus"},
                               {"type": "local", "database": "all", "user": "all", "method": "trust"}]},
     ["postgres_hba_entries[0].method", "postgres_hba_entries[1].method", "is not one of the choices"]),
    ({"postgres_users": [{"name": "reports", "password": "x"}, {"name": "nopassword"}]},
     ["postgres_users[1].password is missing"]),
], ids=["unknown-or-trust-hba-method", "missing-password"])
def test_bad_input_fails_before_any_change(host, bad, evidence):
    # A new database too, so that any task that ran would change something.
    databases = [{"name": "demo", "owner": "demo", "extensions": ["pg_trgm"]},
                 {"name": "never_created", "owner": "postgres"}]
    result = run_playbook(DB_PLAYBOOK, {"postgres_databases": databases, **bad})
    assert result.returncode != 0, bad
    for text in evidence:
        assert text in result.stdout, result.stdout[-2000:]
    assert recap_changed(result.stdout) == 0, result.stdout[-2000:]
    assert sql(host, "SELECT count(*) FROM pg_database WHERE datname = 'never_created'") == "0"
    assert sql(host, "SELECT count(*) FROM pg_roles WHERE rolname = 'nopassword'") == "0"


# ---- connections in the log (issue 14) ----------------------------------------------------------

def test_connections_and_disconnections_are_logged_with_who_from_where(host, cluster):
    app = f"pydeploy-test-{uuid.uuid4().hex[:8]}"
    result = app_psql(host, f"host=127.0.0.1 dbname=demo user=demo sslmode=require application_name={app}")
    assert result.rc == 0, result.stderr

    def logged():
        return host.run(f"grep -F {shlex.quote(app)} {cluster.log_file}").stdout.splitlines()
    wait_for(lambda: any("disconnection:" in line for line in logged()), 10, "the disconnection in the log")
    lines = logged()
    # The prefix says who (role@database) and from where (address and port); the application
    # name is known from the authorization on.
    assert any(re.search(r"\[\d+\] demo@demo from 127\.0\.0\.1\(\d+\) app=\S*: LOG:  connection authorized: "
                         rf"user=demo database=demo application_name={app} SSL enabled", line) for line in lines), lines
    assert any(re.search(rf"demo@demo from 127\.0\.0\.1\(\d+\) app={app}: LOG:  disconnection: session time: "
                         r"\d+:\d+:[\d.]+ user=demo database=demo", line) for line in lines), lines


# ---- restore with the owner's rights (issue 14) -------------------------------------------------

PLANT = """
CREATE FUNCTION probe_escalate() RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE 'ALTER ROLE demo CREATEROLE';
  RETURN true;
EXCEPTION WHEN insufficient_privilege THEN
  RETURN true;
END $f$;
CREATE TABLE probe (id int CHECK (probe_escalate()));
INSERT INTO probe VALUES (1), (2);
"""


def test_restore_runs_the_dump_with_the_owners_rights_not_a_superusers(host):
    """A CHECK constraint planted by the app role calls a function that makes the app role
    CREATEROLE when run by a superuser: restored as the owner, it cannot."""
    dump = f"/var/backups/postgresql/restore_probe-{uuid.uuid4().hex[:6]}.pgc"
    try:
        sql(host, "CREATE DATABASE restore_probe OWNER demo")
        # As the app role would plant them (SET ROLE demo): owned by demo, run with demo's rights.
        sql(host, "SET ROLE demo;" + PLANT, db="restore_probe")
        assert sql(host, "SELECT rolcreaterole FROM pg_roles WHERE rolname = 'demo'") == "f"
        result = host.run(f"cd / && runuser -u postgres -- pg_dump --format=custom --dbname=restore_probe --file={dump}")
        assert result.rc == 0, result.stderr
        result = run_playbook("pydeploy.django_stack.restore",
                              {"postgres_restore_database": "restore_probe_copy", "postgres_restore_dump": dump,
                               "postgres_restore_from": "restore_probe"})
        assert result.returncode == 0, result.stdout[-3000:]
        assert sql(host, "SELECT count(*) FROM probe", db="restore_probe_copy") == "2"
        # Nothing ran with superuser rights: the role did not gain CREATEROLE.
        assert sql(host, "SELECT rolcreaterole FROM pg_roles WHERE rolname = 'demo'") == "f"
        owners = sql(host, "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n"
                           " ON n.oid = c.relnamespace WHERE nspname = 'public'", db="restore_probe_copy")
        assert owners == "demo"
        assert sql(host, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'restore_probe_copy'") == "demo"
    finally:
        sql(host, "ALTER ROLE demo NOCREATEROLE")
        sql(host, "DROP DATABASE IF EXISTS restore_probe")
        sql(host, "DROP DATABASE IF EXISTS restore_probe_copy")
        host.run(f"rm -f {dump}")


def test_restore_refuses_to_run_as_the_superuser_without_being_told(host):
    dump = f"/var/backups/postgresql/orphan-{uuid.uuid4().hex[:6]}.pgc"
    try:
        sql(host, "CREATE DATABASE orphan")
        assert host.run(f"cd / && runuser -u postgres -- pg_dump -Fc -d orphan -f {dump}").rc == 0
        result = run_playbook("pydeploy.django_stack.restore", {"postgres_restore_database": "orphan_copy",
                                                                "postgres_restore_dump": dump,
                                                                "postgres_restore_from": "orphan"})
        assert result.returncode != 0 and "postgres_restore_owner" in result.stdout, result.stdout[-2000:]
        assert sql(host, "SELECT count(*) FROM pg_database WHERE datname = 'orphan_copy'") == "0"
    finally:
        sql(host, "DROP DATABASE IF EXISTS orphan")
        sql(host, "DROP DATABASE IF EXISTS orphan_copy")
        host.run(f"rm -f {dump}")


# ---- TLS from the deployment CA (issue 14) ------------------------------------------------------

CA_DIR = "/etc/postgresql/pydeploy-ca"


def exports(extra=None, playbook="exports.yml"):
    """postgres_exports as the validation play computes them (exports.yml), or as the app tier
    gets them after the db tier ran (exports_after_db.yml)."""
    rc, doc = run_json(os.path.join(os.path.dirname(__file__), playbook), extra)
    assert rc == 0, json.dumps(doc)[-2000:]
    for play in doc["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == "Print the exports":
                return next(iter(task["hosts"].values()))["msg"]
    raise AssertionError("no exports printed")


def served_certificate(host, name="localhost"):
    """The certificate PostgreSQL sends, as openssl sees it (STARTTLS of the PostgreSQL protocol)."""
    out = host.run(f"openssl s_client -starttls postgres -connect 127.0.0.1:5432 -servername {name} </dev/null "
                   "2>/dev/null | openssl x509 -noout -text -fingerprint -sha256")
    assert out.rc == 0, out.stderr
    return out.stdout


def test_server_certificate_is_issued_by_the_deployment_ca_and_verifiable(host, cluster):
    ca_key, ca_cert = host.file(f"{CA_DIR}/ca.key"), host.file(f"{CA_DIR}/ca.crt")
    assert ca_key.user == "root" and ca_key.mode == 0o600 and host.file(CA_DIR).mode == 0o700
    server_key = host.file(f"{cluster.conf_dir}/server.key")
    assert server_key.user == "postgres" and server_key.mode == 0o600
    assert sql(host, "SHOW ssl_cert_file") == f"{cluster.conf_dir}/server.crt"
    text = served_certificate(host)
    assert "CA:FALSE" in text and "TLS Web Server Authentication" in text and "DNS:localhost" in text
    assert "IP Address:127.0.0.1" in text
    # The exports carry this CA and verify-full; a client verifying against it connects by name.
    exported = exports()
    assert exported["sslmode"] == "verify-full" and exported["ssl"] is True and exported["port"] == 5432
    assert exported["ca_pem"].strip() == ca_cert.content_string.strip()
    host.run(f"install -m 0644 {CA_DIR}/ca.crt /tmp/pydeploy-ca.pem")
    for target in ("localhost", "127.0.0.1"):
        result = app_psql(host, f"host={target} dbname=demo user=demo sslmode=verify-full "
                                "sslrootcert=/tmp/pydeploy-ca.pem channel_binding=require")
        assert result.rc == 0 and result.stdout.strip() == "demo", (target, result.stderr)


def test_new_certificate_names_are_served_after_a_reload_not_a_restart(host, cluster):
    started = postmaster_start(host)
    extra_name = "db-alias.example.test"
    before = served_certificate(host)
    names = ["localhost", "127.0.0.1", "::1", extra_name]
    try:
        # The exports the app tier gets after the db tier issued the new certificate: the same CA.
        exported = exports({"postgres_ssl_names": names}, playbook="exports_after_db.yml")
        assert exported["ca_pem"] == host.file(f"{CA_DIR}/ca.crt").content_string
        assert exported["sslmode"] == "verify-full"
        after = served_certificate(host)
        assert f"DNS:{extra_name}" in after and after != before
        assert postmaster_start(host) == started
    finally:
        result = run_tags(DB_PLAYBOOK, ["postgres_tls", "postgres_configure", "postgres_service"])
        assert result.returncode == 0, result.stdout[-3000:]
    assert f"DNS:{extra_name}" not in served_certificate(host)
    assert postmaster_start(host) == started


# ---- the stack contract (issue 17) --------------------------------------------------------------

def test_app_tier_input_makes_role_database_networks_and_connection_budget(host, cluster):
    """postgres_stack alone, as the playbooks pass it from the app tier: app_databases (the password
    written once, for the app) makes the role and its database; app_networks admits it over TCP with
    TLS, verified against the CA; app_connections (the app servers' own count) sets max_connections.
    One run proves the three, and one run puts the converged state back."""
    password = secrets.token_urlsafe(24)
    address = host_address(host)
    before = sql(host, "SHOW max_connections")
    given = stack(app_networks=[f"{address}/32"], app_connections=7)
    given["app_databases"].append({"name": "shop", "user": "shop", "password": password})
    pgpass = f"PGPASSWORD={shlex.quote(password)} "
    try:
        result = run_tags(DB_PLAYBOOK, ["postgres_configure", "postgres_service", "postgres_databases"],
                          {"postgres_stack": given})
        assert result.returncode == 0, result.stdout[-3000:]
        assert sql(host, "SHOW max_connections") == str(7 * 2 + RESERVED)
        row = sql(host, "SELECT rolcanlogin, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = 'shop'")
        assert row == "t|f|f"
        assert sql(host, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'") == "shop"
        assert sql(host, "SELECT has_database_privilege('public', 'shop', 'CONNECT')") == "f"
        result = host.run(pgpass + "psql -XAtqw 'host=/var/run/postgresql dbname=shop user=shop' -c 'SELECT 1'")
        assert result.rc == 0, result.stderr
        host.run(f"install -m 0644 {CA_DIR}/ca.crt /tmp/pydeploy-ca.pem")
        result = host.run(pgpass + f"psql -XAtqw 'host={address} dbname=shop user=shop sslmode=verify-full "
                          "sslrootcert=/tmp/pydeploy-ca.pem channel_binding=require' -c 'SELECT ssl FROM pg_stat_ssl "
                          "WHERE pid = pg_backend_pid()'")
        assert result.rc == 0 and result.stdout.strip() == "t", result.stderr
        # Only with TLS from that network, and only to its own database.
        result = host.run(pgpass + f"psql -XAtqw 'host={address} dbname=shop user=shop sslmode=disable' -c 'SELECT 1'")
        assert result.rc != 0 and "no pg_hba.conf entry" in result.stderr
        result = host.run(pgpass + "psql -XAtqw 'host=/var/run/postgresql dbname=demo user=shop' -c 'SELECT 1'")
        assert result.rc != 0 and "no pg_hba.conf entry" in result.stderr
    finally:
        sql(host, "DROP DATABASE IF EXISTS shop")
        sql(host, "DROP ROLE IF EXISTS shop")
        result = run_tags(DB_PLAYBOOK, ["postgres_configure", "postgres_service"])
        assert result.returncode == 0, result.stdout[-3000:]
    assert app_psql(host, f"host={address} dbname=demo user=demo sslmode=require").rc != 0
    assert sql(host, "SHOW max_connections") == before


def test_app_password_disagreeing_with_postgres_users_fails_before_any_change(host):
    """The app's password (python_app_database_password, through postgres_stack) and a
    postgres_users entry for the same role must agree; nothing changes when they do not."""
    verifier = sql(host, VERIFIER_DIGEST)
    result = run_playbook(DB_PLAYBOOK, {"postgres_users": [{"name": "demo", "password": "not-the-demo-password"}],
                                        "postgres_databases": [{"name": "demo", "owner": "demo", "extensions": ["pg_trgm"]},
                                                               {"name": "never_created", "owner": "postgres"}]})
    assert result.returncode != 0
    assert "postgres_users[0].password and python_app_database_password" in result.stdout, result.stdout[-2000:]
    assert "not-the-demo-password" not in result.stdout and scenario_password() not in result.stdout
    assert recap_changed(result.stdout) == 0
    assert sql(host, "SELECT count(*) FROM pg_database WHERE datname = 'never_created'") == "0"
    assert sql(host, VERIFIER_DIGEST) == verifier


# ---- a converge with nothing to do (issue 13) ---------------------------------------------------

def test_noop_converge_makes_at_most_12_round_trips(host):
    rc, doc = run_json(DB_PLAYBOOK)
    assert rc == 0, json.dumps(doc)[-2000:]
    if any(changed for *_, changed in role_tasks(doc)):  # an earlier test left something to put back
        rc, doc = run_json(DB_PLAYBOOK)
        assert rc == 0, json.dumps(doc)[-2000:]
    rows = role_tasks(doc)
    remote = [(name, action, trips) for name, action, trips, _ in rows if trips]
    for name, action, trips in remote:
        print(f"{trips:3d}  {action:24s} {name}")
    print(f"no-op converge of the postgres role: {len(remote)} remote tasks, {sum(t for *_, t in remote)} round trips")
    assert not [name for name, _, _, changed in rows if changed]
    assert len(remote) <= 12, remote
