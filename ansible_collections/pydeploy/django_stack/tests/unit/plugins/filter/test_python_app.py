"""python_app's filters: the settings contract's data, DATABASE_URL, the environment file."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[8]))

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.pydeploy.django_stack.plugins.filter.python_app import (  # noqa: E402
    csrf_origins, database_settings, database_url, password_conflicts, python_app_env_file, python_app_runtime)

INPUTS = {
    "contract": True, "base_settings": "shop.settings", "config_path": "/etc/shop/django.json",
    "secret_key": "k" * 50, "allowed_hosts": ["shop.example", ".example.org"], "csrf_trusted_origins": [],
    "static_url": "/static/", "static_root": "/srv/shop/shared/static", "media_url": "/media/",
    "media_root": "/srv/shop/shared/media", "database": {"engine": "sqlite", "name": "/srv/shop/shared/data/db.sqlite3"},
    "database_password": "", "conn_max_age": 60, "sslmode": "", "ca_file": "", "silenced_checks": ["security.W004"],
    "trusted_proxies": ["127.0.0.0/8"], "health_path": "/-/pydeploy/health/", "writable_paths": ["/srv/shop/shared/data"],
    "env": {"DJANGO_ADMIN_URL": "admin/"}, "secrets": {"API_TOKEN": "t"},
}


def test_runtime_config_and_environment():
    result = python_app_runtime(INPUTS)
    config, env = result["config"], result["env"]
    assert config["base_settings"] == "shop.settings"
    assert config["csrf_trusted_origins"] == ["https://shop.example", "https://*.example.org"]
    assert config["database"]["ENGINE"] == "django.db.backends.sqlite3"
    assert env["DJANGO_SETTINGS_MODULE"] == "pydeploy_django.settings"
    assert env["DATABASE_URL"] == "sqlite:////srv/shop/shared/data/db.sqlite3"
    assert env["DJANGO_ADMIN_URL"] == "admin/" and env["API_TOKEN"] == "t" and env["DJANGO_DEBUG"] == "False"
    opted_out = python_app_runtime({**INPUTS, "contract": False})
    assert opted_out["env"]["DJANGO_SETTINGS_MODULE"] == "shop.settings"


def test_explicit_origins_win():
    result = python_app_runtime({**INPUTS, "csrf_trusted_origins": ["https://other.example"]})
    assert result["config"]["csrf_trusted_origins"] == ["https://other.example"]
    assert csrf_origins(["*", "::1", "10.0.0.1"]) == ["https://[::1]", "https://10.0.0.1"]


def test_postgresql_over_tcp_with_tls_binds_the_channel():
    db = database_settings({"engine": "postgresql", "name": "shop", "user": "shop", "host": "db1", "port": 5432},
                           "p@ss/word", 0, "verify-full", "/etc/shop/database-ca.pem")
    assert db["OPTIONS"] == {"connect_timeout": 5, "sslmode": "verify-full", "sslrootcert": "/etc/shop/database-ca.pem",
                             "channel_binding": "require"}
    assert db["PORT"] == "5432" and db["CONN_MAX_AGE"] == 0
    url = database_url(db)
    assert url.startswith("postgres://shop:p%40ss%2Fword@db1:5432/shop?")
    assert "sslmode=verify-full" in url and "channel_binding=require" in url and "sslrootcert=%2Fetc%2Fshop" in url


def test_postgresql_over_the_socket_has_no_channel_binding():
    db = database_settings({"engine": "postgresql", "name": "shop", "user": "shop"}, "pw", 60, "", "")
    assert db["HOST"] == "" and "channel_binding" not in db["OPTIONS"] and "sslmode" not in db["OPTIONS"]
    assert database_url(db) == "postgres://shop:pw@/shop"
    socket = database_settings({"engine": "postgresql", "name": "s", "user": "u", "host": "/run/postgresql"}, "", 60,
                               "require", "")
    assert "channel_binding" not in socket["OPTIONS"]
    assert database_url(socket) == "postgres://u@%2Frun%2Fpostgresql/s?sslmode=require"


def test_unknown_engine_and_unsafe_env_values_are_refused():
    with pytest.raises(AnsibleFilterError, match="sqlite or postgresql"):
        database_settings({"engine": "mysql", "name": "x"})
    with pytest.raises(AnsibleFilterError, match="DJANGO_X"):
        python_app_env_file({"DJANGO_X": "it's"})
    assert python_app_env_file({"B": "2", "A": "1"}) == "A='1'\nB='2'\n"


def _exports(password, **database):
    base = {"engine": "postgresql", "name": "demo", "user": "demo", "host": "db1", "port": 5432}
    base.update(database)
    return {"python_app_exports": {"database": dict(base, password=password)}}


def test_password_conflicts_between_app_hosts_of_one_database():
    hostvars = {"app1": _exports("one"), "app2": _exports("two"), "app3": _exports("one"), "web1": {}}
    hosts = ["app1", "app2", "app3", "web1"]
    assert password_conflicts(hostvars, hosts, "app1") == ["app2"]
    assert password_conflicts(hostvars, hosts, "app2") == ["app1", "app3"]
    assert "one" not in repr(password_conflicts(hostvars, hosts, "app2"))  # names hosts, never a password


def test_password_conflicts_only_for_the_same_database_and_role():
    hostvars = {"app1": _exports("one"), "app2": _exports("two", name="other"), "app3": _exports("three", user="x"),
                "app4": _exports("four", host="db2"), "app5": _exports("five", port="5433"),
                "app6": {"python_app_exports": {"database": {"engine": "sqlite", "name": "/x", "password": ""}}}}
    assert password_conflicts(hostvars, list(hostvars), "app1") == []
    assert password_conflicts(hostvars, list(hostvars), "app6") == []
    assert password_conflicts({"app1": _exports("one"), "app2": _exports("one", port="5432")}, ["app1", "app2"], "app1") == []


def test_local_databases_are_one_per_machine():
    def local(password, address, host="/var/run/postgresql"):
        return dict(_exports(password, host=host), ansible_host=address)
    hostvars = {"a": local("one", "10.0.0.1"), "b": local("two", "10.0.0.2"), "c": local("three", "10.0.0.1"),
                "d": local("four", "10.0.0.2", host="localhost"), "e": dict(_exports("five", host="127.0.0.1"))}
    hosts = list(hostvars)
    assert password_conflicts(hostvars, hosts, "a") == ["c"]  # aliases of one machine share its cluster
    assert password_conflicts(hostvars, hosts, "b") == []  # another machine's socket is another cluster
    assert password_conflicts(hostvars, hosts, "d") == []
    assert password_conflicts(hostvars, hosts, "e") == []  # no ansible_host: the inventory name is the machine
