"""App tier -> database tier across hosts (issue 14): the app host reaches PostgreSQL only over
TLS, authenticates the server against the deployment CA the postgres role exports
(sslmode=verify-full), and can require SCRAM channel binding. Checked from an app host with the
app's own driver (psycopg in the release's venv) and the app role's password from its env file."""
import json
import os
import shlex
import uuid

import pytest
import testinfra
from pydeploy_testlib import TOOLS
from pydeploy_testlib.asgi import venv_python

testinfra_hosts = ["ansible://app"]
CA_FILE = "/etc/postgresql/pydeploy-ca/ca.crt"


@pytest.fixture(name="db", scope="module")
def fixture_db():
    # The db group of the scenario's inventory (one host).
    return testinfra.get_hosts(["ansible://db"], ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])[0]


@pytest.fixture(name="db_name", scope="module")
def fixture_db_name(db):
    # The name the app connects to (python_app_database.host of the scenario: the db container's name).
    return db.backend.get_hostname()


def connect(host, conninfo):
    """psycopg from the app's venv on `host`, as the app role (password from the app's env file)."""
    line = " ".join(shlex.quote(c) for c in [venv_python("demo"), f"{TOOLS}/pg_connect.py", conninfo])
    result = host.run(f"set -a && . /etc/demo/env && set +a && PGPASSWORD=\"$DJANGO_DB_PASSWORD\" {line}")
    assert result.stdout.strip().startswith("{"), result.stderr
    return json.loads(result.stdout)


@pytest.fixture(name="exported_ca")
def fixture_exported_ca(host, db):
    """The CA certificate of the database tier (what postgres_exports.ca_pem carries), on the app host."""
    pem = db.file(CA_FILE).content_string
    assert "BEGIN CERTIFICATE" in pem
    path = f"/tmp/db-ca-{uuid.uuid4().hex[:8]}.pem"
    host.run(f"printf '%s' {shlex.quote(pem)} > {path} && chmod 0644 {path}")
    yield path
    host.run(f"rm -f {path}")


@pytest.fixture(name="wrong_ca")
def fixture_wrong_ca(host):
    """A CA of nobody's: same subject as the deployment CA would have, another key."""
    path = f"/tmp/wrong-ca-{uuid.uuid4().hex[:8]}"
    result = host.run(f"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
                      f"-subj '/CN=PostgreSQL deployment CA' -keyout {path}.key -out {path}.pem 2>&1")
    assert result.rc == 0, result.stdout
    yield f"{path}.pem"
    host.run(f"rm -f {path}.key {path}.pem")


def base(db_name):
    return f"host={db_name} port=5432 dbname=demo user=demo"


def test_verify_full_with_the_exported_ca_and_channel_binding(host, db_name, exported_ca):
    result = connect(host, f"{base(db_name)} sslmode=verify-full sslrootcert={exported_ca} channel_binding=require")
    assert result["ok"], result
    assert result["user"] == "demo" and result["ssl"] is True and result["tls"] in ("TLSv1.2", "TLSv1.3")


def test_verify_full_checks_the_name_too(host, db, exported_ca):
    # The right server and CA, but a name the certificate was not issued for: refused.
    address = db.check_output("hostname -I").split()[0]
    result = connect(host, f"host=not-the-db.invalid hostaddr={address} port=5432 dbname=demo user=demo "
                           f"sslmode=verify-full sslrootcert={exported_ca}")
    assert not result["ok"] and "does not match host name" in result["error"], result
    # Its address is one of the names.
    result = connect(host, f"host={address} port=5432 dbname=demo user=demo sslmode=verify-full "
                           f"sslrootcert={exported_ca}")
    assert result["ok"], result


def test_a_client_checking_against_another_ca_is_refused(host, db_name, wrong_ca):
    result = connect(host, f"{base(db_name)} sslmode=verify-full sslrootcert={wrong_ca}")
    assert not result["ok"] and "certificate verify failed" in result["error"], result


def test_no_clear_text_connection_is_accepted(host, db_name):
    result = connect(host, f"{base(db_name)} sslmode=disable")
    assert not result["ok"], result
    assert "no pg_hba.conf entry" in result["error"] and "no encryption" in result["error"], result

