# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Filters of the python_app role: the settings contract's data and the app's environment.

    {{ inputs | pydeploy.django_stack.python_app_runtime }} -> {"config": {...}, "env": {...}}

`config` is the JSON the role's settings module (files/pydeploy_django) reads; `env` is the
environment file's content (systemd EnvironmentFile= and the manage wrapper).
"""
from __future__ import annotations

import ipaddress
from urllib.parse import quote, urlencode

from ansible.errors import AnsibleFilterError

from ansible_collections.pydeploy.django_stack.plugins.module_utils.python_app_project import (
    explain_pip_error, pip_network_error, python_problem)

CONTRACT_SETTINGS = "pydeploy_django.settings"


def _is_ip(host):
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def csrf_origins(allowed_hosts, scheme="https"):
    """CSRF_TRUSTED_ORIGINS (with scheme) for ALLOWED_HOSTS: '.example.com' -> 'https://*.example.com'."""
    origins = []
    for host in allowed_hosts:
        host = str(host).strip()
        if not host or host == "*":
            continue
        if host.startswith("."):
            origin = f"{scheme}://*{host}"
        elif ":" in host and _is_ip(host):
            origin = f"{scheme}://[{host.strip('[]')}]"
        else:
            origin = f"{scheme}://{host}"
        if origin not in origins:
            origins.append(origin)
    return origins


def _uses_tls(sslmode):
    return sslmode in ("require", "verify-ca", "verify-full")


def _is_socket(host):
    return not host or str(host).startswith("/")


def database_settings(database, password="", conn_max_age=60, sslmode="", ca_file=""):
    """Django's DATABASES['default'] from python_app_database and the TLS inputs."""
    engine = database.get("engine")
    if engine == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": database["name"],
                "CONN_MAX_AGE": int(conn_max_age), "CONN_HEALTH_CHECKS": True, "OPTIONS": {"timeout": 20}}
    if engine != "postgresql":
        raise AnsibleFilterError(f"python_app_database.engine must be sqlite or postgresql, got {engine!r}")
    host = str(database.get("host", "") or "")
    options = {"connect_timeout": int(database.get("connect_timeout", 5))}
    if sslmode:
        options["sslmode"] = sslmode
    if ca_file and sslmode not in ("", "disable"):
        options["sslrootcert"] = ca_file
    if not _is_socket(host) and _uses_tls(sslmode):
        options["channel_binding"] = "require"
    return {"ENGINE": "django.db.backends.postgresql", "NAME": database["name"],
            "USER": database.get("user", ""), "PASSWORD": password, "HOST": host,
            "PORT": str(database.get("port", "") or ""), "CONN_MAX_AGE": int(conn_max_age),
            "CONN_HEALTH_CHECKS": True, "OPTIONS": options}


def database_url(settings):
    """DATABASE_URL (dj-database-url / django-environ syntax) for DATABASES['default']."""
    if settings["ENGINE"].endswith("sqlite3"):
        return "sqlite:///" + settings["NAME"]
    user = quote(settings.get("USER", ""), safe="")
    password = quote(settings.get("PASSWORD", ""), safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings.get("HOST", "")
    host = quote(host, safe="") if _is_socket(host) else (f"[{host}]" if ":" in host else host)
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    query = {k: v for k, v in settings.get("OPTIONS", {}).items() if k in ("sslmode", "sslrootcert", "channel_binding")}
    suffix = "?" + urlencode(query) if query else ""
    return f"postgres://{credentials}{host}{port}/{quote(settings['NAME'], safe='')}{suffix}"


def python_app_runtime(inputs):
    """{'config': contract JSON, 'env': environment file} from the role's variables (see tasks/validate.yml)."""
    try:
        db = database_settings(inputs["database"], inputs.get("database_password", ""),
                               inputs.get("conn_max_age", 60), inputs.get("sslmode", ""), inputs.get("ca_file", ""))
        origins = list(inputs.get("csrf_trusted_origins") or []) or csrf_origins(inputs["allowed_hosts"])
        config = {
            "base_settings": inputs["base_settings"],
            "secret_key": inputs["secret_key"],
            "allowed_hosts": list(inputs["allowed_hosts"]),
            "csrf_trusted_origins": origins,
            "static_url": inputs["static_url"], "static_root": inputs["static_root"],
            "media_url": inputs["media_url"], "media_root": inputs["media_root"],
            "database": db,
            "proxy_ssl_header": bool(inputs.get("proxy_ssl_header", True)),
            "secure_cookies": bool(inputs.get("secure_cookies", True)),
            "logging": inputs.get("logging", "console"),
            "log_level": inputs.get("log_level", "INFO"),
            "static_storage": inputs.get("static_storage", "auto"),
            "silenced_checks": list(inputs.get("silenced_checks") or []),
            "trusted_proxies": list(inputs.get("trusted_proxies") or []),
            "health_path": inputs.get("health_path", ""),
            "settings": dict(inputs.get("settings") or {}),
            "writable_paths": list(inputs.get("writable_paths") or []),
            "check_database": bool(inputs.get("check_database", True)),
        }
        env = {
            "DJANGO_SETTINGS_MODULE": CONTRACT_SETTINGS if inputs.get("contract", True) else inputs["base_settings"],
            "PYDEPLOY_DJANGO_CONFIG": inputs["config_path"],
            "DJANGO_SECRET_KEY": inputs["secret_key"],
            "DJANGO_DEBUG": "False",
            "DJANGO_ALLOWED_HOSTS": ",".join(inputs["allowed_hosts"]),
            "DJANGO_CSRF_TRUSTED_ORIGINS": ",".join(origins),
            "DJANGO_STATIC_URL": inputs["static_url"], "DJANGO_STATIC_ROOT": inputs["static_root"],
            "DJANGO_MEDIA_URL": inputs["media_url"], "DJANGO_MEDIA_ROOT": inputs["media_root"],
            "DJANGO_DB_ENGINE": inputs["database"]["engine"], "DJANGO_DB_NAME": db["NAME"],
            "DJANGO_DB_USER": db.get("USER", ""), "DJANGO_DB_HOST": db.get("HOST", ""),
            "DJANGO_DB_PORT": db.get("PORT", ""), "DJANGO_DB_PASSWORD": db.get("PASSWORD", ""),
            "DJANGO_DB_CONN_MAX_AGE": str(db["CONN_MAX_AGE"]),
            "DATABASE_URL": database_url(db),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    except KeyError as exc:
        raise AnsibleFilterError(f"python_app_runtime: missing input {exc}") from exc
    env.update({str(k): str(v) for k, v in (inputs.get("env") or {}).items()})
    env.update({str(k): str(v) for k, v in (inputs.get("secrets") or {}).items()})
    return {"config": config, "env": env}


def python_app_env_file(env):
    """Lines KEY='value' (sorted) for systemd's EnvironmentFile= and `set -a; . file` alike.

    Values may not hold a single quote or a newline (the role's validation refuses them)."""
    lines = []
    for key in sorted(env):
        value = str(env[key])
        if "'" in value or "\n" in value or "\r" in value:
            raise AnsibleFilterError(f"python_app_env_file: the value of {key} holds a quote or a newline")
        lines.append(f"{key}='{value}'")
    return "\n".join(lines) + "\n"


def _database_key(database):
    database = database or {}
    return (str(database.get("engine") or ""), str(database.get("name") or ""), str(database.get("user") or ""),
            str(database.get("host") or ""), str(database.get("port") or ""))


_LOCAL_DATABASE_HOSTS = frozenset(("", "localhost", "127.0.0.1", "::1"))


def _machine(hostvars, host):
    """The machine an inventory host is: its ``ansible_host`` (aliases of one machine share it), else its name."""
    try:
        return str(hostvars[host].get("ansible_host") or host)
    except (KeyError, AttributeError):
        return str(host)


def _database_identity(hostvars, host, database):
    """The key of the database a host connects to: a local one (socket, localhost) is that machine's own."""
    key = _database_key(database)
    where = key[3]
    if where in _LOCAL_DATABASE_HOSTS or where.startswith("/") or where.startswith("127."):
        key += (_machine(hostvars, host),)
    return key


def _exported_database(hostvars, host):
    try:
        exports = hostvars[host]["python_app_exports"]
    except KeyError:
        return {}
    return (exports or {}).get("database") or {}


def password_conflicts(hostvars, hosts, host):
    """App hosts that use the same PostgreSQL database as ``host`` with another password.

    Compares ``python_app_exports.database`` of ``host`` with that of every other host of ``hosts``
    that has exports: the same engine, name, user, host and port but a different ``password``. A
    database reached over a unix socket or the loopback (``host`` empty, a path, ``localhost``,
    ``127.*``, ``::1``) is the app machine's own: it is the same database only for inventory hosts of
    the same machine (the same ``ansible_host``).
    Returns the sorted names of those hosts (never a password): one role has one password, so
    every app host connecting as that role must use the same python_app_database_password.
    """
    mine = _exported_database(hostvars, host)
    if mine.get("engine") != "postgresql":
        return []
    key = _database_identity(hostvars, host, mine)
    out = []
    for other in hosts:
        if other == host:
            continue
        theirs = _exported_database(hostvars, other)
        if _database_identity(hostvars, other, theirs) == key and str(theirs.get("password") or "") != str(mine.get("password") or ""):
            out.append(other)
    return sorted(out)


class FilterModule:
    def filters(self):
        return {
            "python_app_runtime": python_app_runtime,
            "python_app_password_conflicts": password_conflicts,
            "python_app_env_file": python_app_env_file,
            "python_app_csrf_origins": csrf_origins,
            "python_app_database_url": lambda db, *a, **k: database_url(database_settings(db, *a, **k)),
            "python_app_python_problem": python_problem,
            "python_app_pip_error": explain_pip_error,
            "python_app_pip_network_error": pip_network_error,
        }
