"""Filters of the postgres role (plugins/filter/postgres.py)."""
import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.pydeploy.django_stack.plugins.filter.postgres import (
    postgres_declared_problems, postgres_hba_problems, postgres_name_problems, postgres_network_problems,
    postgres_objects, postgres_settings_problems, postgres_sync_plan, postgres_tls_plan, postgres_tls_provided)
from ansible_collections.pydeploy.django_stack.plugins.filter.scram_verifier import scram_verifier

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
SECRET = "s3cret-app-password"


# ---- postgres_objects ---------------------------------------------------------------------------

def test_app_database_alone_makes_its_role_and_database():
    out = postgres_objects([{"name": "shop", "user": "shop", "password": SECRET}])
    assert out == {"users": [{"name": "shop", "password": SECRET}], "databases": [{"name": "shop", "owner": "shop"}],
                   "problems": []}


def test_app_hosts_sharing_one_database_give_one_role_and_one_database():
    entry = {"name": "shop", "user": "shop", "password": SECRET}
    out = postgres_objects([entry, dict(entry)])
    assert len(out["users"]) == 1 and len(out["databases"]) == 1 and out["problems"] == []


def test_declared_role_and_database_are_kept_and_not_duplicated():
    users = [{"name": "shop", "password": SECRET, "conn_limit": 50}]
    databases = [{"name": "shop", "owner": "shop", "extensions": ["pg_trgm"]}]
    out = postgres_objects([{"name": "shop", "user": "shop", "password": SECRET}], users, databases)
    assert out == {"users": users, "databases": databases, "problems": []}


SHOP_DB = [{"name": "shop", "owner": "shop"}]


def test_declared_verifier_of_the_same_password_agrees():
    users = [{"name": "shop", "password": scram_verifier(SECRET)}]
    assert postgres_objects([{"name": "shop", "user": "shop", "password": SECRET}], users, SHOP_DB)["problems"] == []


def test_declared_password_without_app_password_agrees():
    users = [{"name": "shop", "password": SECRET}]
    assert postgres_objects([{"name": "shop", "user": "shop", "password": ""}], users, SHOP_DB)["problems"] == []


def test_declared_role_without_a_password_takes_the_apps():
    out = postgres_objects([{"name": "shop", "user": "shop", "password": SECRET}], [{"name": "shop", "createdb": True}],
                           SHOP_DB)
    assert out["problems"] == []
    assert postgres_declared_problems([{"name": "shop", "createdb": True}], SHOP_DB,
                                      [{"name": "shop", "user": "shop", "password": SECRET}]) == []


def test_declared_role_whose_app_database_is_not_declared_is_a_typo():
    out = postgres_objects([{"name": "shopp", "user": "shop", "password": SECRET}], [{"name": "shop", "password": SECRET}],
                           SHOP_DB)
    assert len(out["problems"]) == 1
    assert out["problems"][0].startswith("python_app_database.name (postgres_stack.app_databases[0].name) is shopp")


@pytest.mark.parametrize("declared", ["another-password", "SCRAM"], ids=["clear", "verifier"])
def test_different_passwords_are_named_never_printed(declared):
    if declared == "SCRAM":
        declared = scram_verifier("another-password")
    out = postgres_objects([{"name": "shop", "user": "shop", "password": SECRET}],
                           [{"name": "shop", "password": declared}], SHOP_DB)
    assert len(out["problems"]) == 1
    problem = out["problems"][0]
    assert "postgres_users[0].password" in problem and "postgres_stack.app_databases[0].password" in problem
    assert "python_app_database_password" in problem
    assert SECRET not in problem and "another-password" not in problem and "SCRAM-SHA-256$" not in problem


def test_database_owned_by_another_role_is_refused_unless_granted():
    app = [{"name": "shop", "user": "shop_app", "password": SECRET}]
    out = postgres_objects(app, [], [{"name": "shop", "owner": "shop_owner"}])
    assert any("postgres_databases[0].owner" in p and "python_app_database.user" in p and "shop_app" in p
               for p in out["problems"]), out
    users = [{"name": "shop_owner", "login": False}, {"name": "shop_app", "password": SECRET, "databases": ["shop"]}]
    out = postgres_objects(app, users, [{"name": "shop", "owner": "shop_owner"}])
    assert out["problems"] == []


def test_app_role_declared_without_login_is_refused():
    out = postgres_objects([{"name": "shop", "user": "shop", "password": SECRET}],
                           [{"name": "shop", "login": False}], SHOP_DB)
    assert out["problems"] == ["postgres_users[0].login is false, but the app logs in as shop "
                               "(python_app_database.user (postgres_stack.app_databases[0].user))"]


def test_empty_app_password_without_a_declared_one_is_refused():
    out = postgres_objects([{"name": "shop", "user": "shop", "password": ""}])
    assert out["problems"] == ["python_app_database_password (postgres_stack.app_databases[0].password) is empty: the "
                               "app role shop logs in with a password (set python_app_database_password)"]


def test_two_app_hosts_disagreeing_are_refused():
    out = postgres_objects([{"name": "shop", "user": "shop", "password": SECRET},
                            {"name": "shop", "user": "other", "password": SECRET}])
    assert any("postgres_stack.app_databases[1].user" in p for p in out["problems"])
    out = postgres_objects([{"name": "shop", "user": "shop", "password": SECRET},
                            {"name": "shop2", "user": "shop", "password": "different"}])
    assert any("postgres_stack.app_databases[1].password differs" in p for p in out["problems"])
    assert not any(SECRET in p or "different" in p for p in out["problems"])


@pytest.mark.parametrize("entry, where", [
    ({"name": "shop; DROP", "user": "shop", "password": SECRET}, "postgres_stack.app_databases[0].name"),
    ({"name": "shop", "user": "sh\nop", "password": SECRET}, "postgres_stack.app_databases[0].user"),
    ({"name": "shop", "user": "postgres", "password": SECRET}, "postgres_stack.app_databases[0].user"),
    ({"name": "template1", "user": "shop", "password": SECRET}, "postgres_stack.app_databases[0].name"),
    ({"name": "shop", "user": "shop", "password": 42}, "postgres_stack.app_databases[0].password"),
    ({"name": "shop", "user": "shop", "password": SECRET, "hots": "x"}, "unknown keys ['hots']"),
])
def test_bad_app_entries_are_named(entry, where):
    problems = postgres_objects([entry])["problems"]
    assert problems and where in problems[0], problems
    assert all(SECRET not in p for p in problems)


def test_app_databases_of_a_wrong_type():
    assert postgres_objects("shop")["problems"] == ["postgres_stack.app_databases must be a list of "
                                                    "{name, user, password}"]


# ---- networks and pg_hba entries ----------------------------------------------------------------

@pytest.mark.parametrize("good", ["10.0.0.0/8", "10.0.0.11/32", "::1/128", "fd00::/64", "samehost", "samenet"])
def test_good_networks(good):
    assert postgres_network_problems([good], "postgres_hba_app_networks") == []


@pytest.mark.parametrize("bad, why", [
    ("10.0.0.0/99", "/99 is not a prefix length"),
    ("999.1.2.3/32", "999.1.2.3 is not an IPv4 or IPv6 address"),
    ("10.0.0.1", "has no prefix length"),
    ("10.0.0.0/8\n", "control characters"),
    ("::1/129", "/129 is not a prefix length"),
    ("10.0.0.0/8 trust", "blanks"),
    ("all", "is not an IPv4"),
])
def test_bad_networks_are_named_with_their_index(bad, why):
    problems = postgres_network_problems(["127.0.0.1/32", bad], "postgres_hba_app_networks")
    assert len(problems) == 1 and problems[0].startswith("postgres_hba_app_networks[1]") and why in problems[0]


def test_networks_of_a_wrong_type():
    assert postgres_network_problems("10.0.0.0/8", "postgres_stack.app_networks") == [
        "postgres_stack.app_networks must be a list of CIDR networks such as [10.0.0.11/32]"]


GOOD_ENTRY = {"type": "hostssl", "database": "shop", "user": "report", "address": "10.1.0.0/16",
              "method": "scram-sha-256"}


@pytest.mark.parametrize("entry", [
    GOOD_ENTRY,
    {"type": "local", "database": "all", "user": "+admins", "method": "peer", "options": "map=admins"},
    {"type": "hostssl", "database": "shop,\"My Db\"", "user": "a,b", "address": "db.example.com", "method": "cert",
     "options": 'clientcert=verify-full map="a map"', "comment": "the reporting tool"},
    {"type": "host", "database": "all", "user": "all", "address": "all", "method": "reject"},
    {"type": "host", "database": "sameuser", "user": "all", "address": ".example.com", "method": "scram-sha-256"},
    {"type": "host", "database": "all", "user": "all", "address": "fd00::/8", "method": "ldap",
     "options": 'ldapserver=ldap.example.com ldapbasedn="dc=example, dc=com" ldapbindpasswd=x'},
])
def test_good_hba_entries(entry):
    assert postgres_hba_problems([entry]) == []


@pytest.mark.parametrize("change, where", [
    ({"options": "map=x\nhost all all 0.0.0.0/0 trust"}, "postgres_hba_entries[1].options"),
    ({"options": "map=x # trust"}, "postgres_hba_entries[1].options"),
    ({"options": 'map="x'}, "postgres_hba_entries[1].options"),
    ({"options": "map"}, "postgres_hba_entries[1].options"),
    ({"database": "all\nhost all all 0.0.0.0/0 trust"}, "postgres_hba_entries[1].database"),
    ({"user": "all all"}, "postgres_hba_entries[1].user"),
    ({"user": '"a'}, "postgres_hba_entries[1].user"),
    ({"user": "a,,b"}, "postgres_hba_entries[1].user"),
    ({"address": "0.0.0.0/0 trust"}, "postgres_hba_entries[1].address"),
    ({"address": "10.0.0.0/99"}, "postgres_hba_entries[1].address"),
    ({"address": "999.1.2.3/32"}, "postgres_hba_entries[1].address"),
    ({"address": None}, "postgres_hba_entries[1].address"),
    ({"method": "trust"}, "postgres_hba_entries[1].method"),
    ({"method": "password"}, "postgres_hba_entries[1].method"),
    ({"type": "hostx"}, "postgres_hba_entries[1].type"),
    ({"comment": "one\nhost all all 0.0.0.0/0 trust"}, "postgres_hba_entries[1].comment"),
    ({"metod": "md5"}, "postgres_hba_entries[1]: unknown keys ['metod']"),
    ({"type": "local", "address": "10.0.0.0/8"}, "postgres_hba_entries[1].address"),
])
def test_bad_hba_entries_are_named_and_options_never_printed(change, where):
    problems = postgres_hba_problems([GOOD_ENTRY, {**GOOD_ENTRY, **change}])
    assert problems and all(p.startswith(where.split(".")[0].split(":")[0]) for p in problems), problems
    assert any(p.startswith(where) for p in problems), problems
    if "options" in change:
        assert not any(change["options"] in p for p in problems)


# ---- certificates -------------------------------------------------------------------------------

def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject, issuer, key, issuer_key, days, names=(), ca=False, start=NOW - datetime.timedelta(days=1)):
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        sans = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


NAMES = ["db1.example.com", "db1", "localhost", "192.0.2.30", "127.0.0.1", "::1"]


@pytest.fixture(name="pki")
def fixture_pki():
    ca_key, leaf_key = _key(), _key()
    ca = _cert("deployment CA", "deployment CA", ca_key, ca_key, 3650, ca=True)
    leaf = _cert("db1", "deployment CA", leaf_key, ca_key, 825, NAMES)
    return {"ca": ca, "ca_key": ca_key, "leaf": leaf, "leaf_key": leaf_key}


def test_valid_chain_is_not_due_and_exports_the_ca(pki):
    plan = postgres_tls_plan(_pem(pki["leaf"]) + _pem(pki["ca"]), list(reversed(NAMES)), now=NOW)
    assert plan == {"due": False, "ca_due": False, "reason": "valid", "ca_pem": _pem(pki["ca"])}


@pytest.mark.parametrize("names, why", [
    (NAMES + ["10.0.0.5"], "new: 10.0.0.5"),
    (NAMES[1:], "gone: db1.example.com"),
])
def test_changed_names_make_it_due(pki, names, why):
    plan = postgres_tls_plan(_pem(pki["leaf"]) + _pem(pki["ca"]), names, now=NOW)
    assert plan["due"] and not plan["ca_due"] and why in plan["reason"]
    assert plan["ca_pem"] == _pem(pki["ca"])


def test_expiring_certificate_or_ca_is_due(pki):
    soon = NOW + datetime.timedelta(days=820)
    plan = postgres_tls_plan(_pem(pki["leaf"]) + _pem(pki["ca"]), NAMES, now=soon)
    assert plan["due"] and not plan["ca_due"] and "expires" in plan["reason"]
    plan = postgres_tls_plan(_pem(pki["leaf"]) + _pem(pki["ca"]), NAMES, now=NOW + datetime.timedelta(days=3640))
    assert plan["due"] and plan["ca_due"]


def test_missing_or_foreign_chain_is_due(pki):
    assert postgres_tls_plan("", NAMES, now=NOW)["reason"] == "no server certificate yet"
    assert postgres_tls_plan(_pem(pki["leaf"]), NAMES, now=NOW)["due"]
    other_key = _key()
    other_ca = _cert("deployment CA", "deployment CA", other_key, other_key, 3650, ca=True)
    plan = postgres_tls_plan(_pem(pki["leaf"]) + _pem(other_ca), NAMES, now=NOW)
    assert plan["due"] and "not signed" in plan["reason"]


def test_provided_certificate_checks(pki):
    assert postgres_tls_provided(_pem(pki["leaf"]), _pem(pki["ca"]), now=NOW) == []
    assert postgres_tls_provided(_pem(pki["leaf"]), "", now=NOW) == []
    other_key = _key()
    other_ca = _cert("other CA", "other CA", other_key, other_key, 3650, ca=True)
    problems = postgres_tls_provided(_pem(pki["leaf"]), _pem(other_ca), now=NOW)
    assert len(problems) == 1 and "not issued by the CA of postgres_ssl_ca_pem" in problems[0]
    assert postgres_tls_provided("not a pem", now=NOW) == [
        "postgres_ssl_cert_file: the file holds no PEM certificate that parses"]
    expired = postgres_tls_provided(_pem(pki["leaf"]), now=NOW + datetime.timedelta(days=900))
    assert expired and "expired" in expired[0]
    assert "must be PEM" in postgres_tls_provided(_pem(pki["leaf"]), "garbage", now=NOW)[0]


def test_name_problems():
    assert postgres_name_problems(NAMES) == []
    assert postgres_name_problems(["db1", "bad name"]) == [
        "postgres_ssl_names[1]: bad name is neither a host name nor an IP address"]
    assert postgres_name_problems([]) == ["postgres_ssl_names must be a non-empty list of host names and addresses"]


# ---- postgres_sync_plan -------------------------------------------------------------------------

def _role(name, password, **attrs):
    role = {"name": name, "login": True, "createdb": False, "superuser": False, "createrole": False,
            "replication": False, "bypassrls": False, "conn_limit": -1, "password": password}
    role.update(attrs)
    return role


def _db(name, owner, acl=("=Tc/postgres",), **attrs):
    acl = [a for a in acl if not a.startswith("=")] if "revoked" in attrs else list(acl)
    attrs.pop("revoked", None)
    db = {"name": name, "owner": owner, "encoding": "UTF8", "collate": "C.UTF-8", "ctype": "C.UTF-8",
          "acl": acl, "acl_default": False}
    db.update(attrs)
    return db


USERS = [{"name": "shop", "password": SECRET}, {"name": "report", "password": "r-secret", "databases": ["shop"]}]
DATABASES = [{"name": "shop", "owner": "shop"}]


def _converged_state():
    return {"roles": [_role("shop", scram_verifier(SECRET)), _role("report", scram_verifier("r-secret"))],
            "databases": [_db("shop", "shop", acl=["shop=CTc/shop", "report=c/shop"])]}


def test_converged_state_needs_nothing():
    assert postgres_sync_plan(_converged_state(), USERS, DATABASES) == {
        "users": [], "databases": [], "revoke_public": False, "grants": []}


def test_empty_server_needs_everything():
    assert postgres_sync_plan({"roles": [], "databases": []}, USERS, DATABASES) == {
        "users": ["shop", "report"], "databases": ["shop"], "revoke_public": True, "grants": [["report", "shop"]]}


@pytest.mark.parametrize("drift, expected", [
    (lambda s: s["roles"][0].update(password=scram_verifier("changed")), {"users": ["shop"]}),
    (lambda s: s["roles"][0].update(password=""), {"users": ["shop"]}),
    (lambda s: s["roles"][0].update(superuser=True), {"users": ["shop"]}),
    (lambda s: s["roles"][1].update(conn_limit=5), {"users": ["report"]}),
    (lambda s: s["databases"][0].update(owner="postgres"), {"databases": ["shop"]}),
    (lambda s: s["databases"][0].update(collate="en_US.UTF-8"), {"databases": ["shop"]}),
    (lambda s: s["databases"][0].update(acl=["=c/postgres", "shop=CTc/shop", "report=c/shop"]),
     {"revoke_public": True}),
    (lambda s: s["databases"][0].update(acl_default=True, acl=[]), {"revoke_public": True,
                                                                    "grants": [["report", "shop"]]}),
    (lambda s: s["databases"][0].update(acl=["shop=CTc/shop"]), {"grants": [["report", "shop"]]}),
])
def test_drift_is_found(drift, expected):
    state = _converged_state()
    drift(state)
    plan = postgres_sync_plan(state, USERS, DATABASES)
    want = {"users": [], "databases": [], "revoke_public": False, "grants": []}
    want.update(expected)
    assert plan == want


def test_a_verifier_given_as_the_password_is_compared_as_is():
    verifier = scram_verifier(SECRET)
    state = _converged_state()
    state["roles"][0]["password"] = verifier
    assert postgres_sync_plan(state, [{"name": "shop", "password": verifier}], [])["users"] == []
    assert postgres_sync_plan(state, [{"name": "shop", "password": scram_verifier(SECRET)}], [])["users"] == ["shop"]


def test_subject_alt_names():
    from ansible_collections.pydeploy.django_stack.plugins.filter.postgres import postgres_subject_alt_names
    assert postgres_subject_alt_names(["db1", "10.0.0.5", "DB1.example.com", "::1", "db1", "10.0.0.5"]) == [
        "DNS:db1", "DNS:db1.example.com", "IP:10.0.0.5", "IP:::1"]


# ---- declared roles and databases, settings -----------------------------------------------------

@pytest.mark.parametrize("users, databases, expected", [
    ([{"name": "demo"}], [], "postgres_users[0].password is missing"),
    ([{"name": "a", "password": "x"}, {"name": "reports"}], [], "postgres_users[1].password is missing"),
    ([{"name": "a", "password": "x"}, {"name": "a", "password": "y"}], [], "postgres_users[1].name: a is also"),
    ([{"name": "pg_monitor", "password": "x"}], [], "postgres_users[0].name: pg_monitor is reserved"),
    ([{"name": "a", "password": "x", "databases": ["nope"]}], [], "postgres_users[0].databases[0]: nope"),
    ([], [{"name": "demo", "owner": "demo"}, {"name": "reports", "owner": "nobody"}],
     "postgres_databases[1].owner: nobody"),
    ([], [{"name": "replication", "owner": "postgres"}], "postgres_databases[0].name: replication is reserved"),
    ([], [{"name": "d", "owner": "postgres", "extensions": ["ok", "bad ext"]}], "postgres_databases[0].extensions[1]"),
])
def test_declared_problems_name_index_and_key(users, databases, expected):
    problems = postgres_declared_problems(users, databases, [{"name": "demo", "user": "demo", "password": ""}])
    assert any(p.startswith(expected) for p in problems), problems


def test_declared_problems_never_print_passwords_and_accept_good_input():
    users = [{"name": "demo", "password": SECRET}, {"name": "ro", "login": False}]
    assert postgres_declared_problems(users, [{"name": "demo", "owner": "demo", "extensions": ["uuid-ossp"]}]) == []
    problems = postgres_declared_problems([{"name": "demo", "password": SECRET}] * 2, [])
    assert problems and all(SECRET not in p for p in problems)


def test_settings_problems():
    assert postgres_settings_problems({"work_mem": "8MB", "jit": False, "max_wal_senders": 3}) == []
    assert postgres_settings_problems({"work_mem": "4MB\nlisten_addresses = '*'"}) == [
        "postgres_settings.work_mem holds a newline or another control character (it would add settings of its own)"]
    assert postgres_settings_problems({"Bad Name": 1})[0].startswith("postgres_settings: 'Bad Name'")
    assert postgres_settings_problems({"x": [1]}) == ["postgres_settings.x must be a string, a number or a boolean"]


def test_problems_by_variable():
    from ansible_collections.pydeploy.django_stack.plugins.filter.postgres import postgres_problems
    good = {"hba_app_networks": ["127.0.0.1/32"], "stack": {"app_databases": [], "app_connections": 0,
                                                            "app_networks": []},
            "hba_entries": [GOOD_ENTRY], "ssl_names": ["db1"], "users": [{"name": "a", "password": "x"}],
            "databases": [{"name": "a", "owner": "a"}], "settings": {"jit": False}}
    assert all(v == [] for v in postgres_problems(good).values())
    bad = dict(good, hba_app_networks=["10.0.0.0/99"], settings={"x": "a\nb"}, ssl_names=None,
               users=[{"name": "a"}], stack={"app_databases": [{"name": "b", "user": "a", "password": SECRET}]})
    problems = postgres_problems(bad)
    assert problems["postgres_hba_app_networks"][0].startswith("postgres_hba_app_networks[0]")
    assert problems["postgres_settings"][0].startswith("postgres_settings.x")
    assert problems["postgres_ssl_names"] == []
    assert problems["postgres_users, postgres_databases"] == []  # the app gives a's password
    assert problems["postgres_stack"][0].startswith("python_app_database.name")
