"""The settings contract: which deployment values override the project's settings.

Pure functions, no Django import at module level: the role's unit tests run them without a
project, and ``pydeploy_django.settings`` applies them while Django loads its settings.
"""
import ipaddress
import json
import os

CONFIG_ENV = "PYDEPLOY_DJANGO_CONFIG"
# The configuration itself (a staged one being checked before it goes live), instead of the file.
CONFIG_JSON_ENV = "PYDEPLOY_DJANGO_CONFIG_JSON"
MIDDLEWARE = "pydeploy_django.middleware.PydeployMiddleware"

# Static file storages that write to STATIC_ROOT on the local disk (nginx serves them from there).
LOCAL_STATIC_STORAGES = (
    "django.contrib.staticfiles.storage.",
    "django.core.files.storage.FileSystemStorage",
    "whitenoise.storage.",
)
FILESYSTEM_STATIC_STORAGE = "django.contrib.staticfiles.storage.StaticFilesStorage"


def load_config(path=None):
    """The role's JSON configuration (PYDEPLOY_DJANGO_CONFIG_JSON, else the file PYDEPLOY_DJANGO_CONFIG)."""
    if path is None and os.environ.get(CONFIG_JSON_ENV):
        return json.loads(os.environ[CONFIG_JSON_ENV])
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set: run the app through its systemd unit or the manage wrapper")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def uppercase(namespace):
    """The settings of a module namespace (Django reads upper-case names only)."""
    return {key: value for key, value in namespace.items() if key.isupper()}


def is_local_static_storage(backend):
    return any(backend == prefix or (prefix.endswith(".") and backend.startswith(prefix))
               for prefix in LOCAL_STATIC_STORAGES)


def static_storages(project, mode):
    """STORAGES (and the legacy STATICFILES_STORAGE) with a local static storage.

    mode: "auto" replaces a remote static storage (S3, GCS, ...) by the filesystem one, as
    nginx serves STATIC_ROOT; "filesystem" always uses the filesystem one; "project" keeps the
    project's. Returns (overrides, replaced backend or None)."""
    if mode == "project":
        return {}, None
    storages = {key: dict(value) for key, value in (project.get("STORAGES") or {}).items()}
    legacy = project.get("STATICFILES_STORAGE")
    current = (storages.get("staticfiles") or {}).get("BACKEND") or legacy or FILESYSTEM_STATIC_STORAGE
    if mode == "auto" and is_local_static_storage(current):
        return {}, None
    if current == FILESYSTEM_STATIC_STORAGE:
        return {}, None
    storages.setdefault("default", {"BACKEND": "django.core.files.storage.FileSystemStorage"})
    storages["staticfiles"] = {"BACKEND": FILESYSTEM_STATIC_STORAGE}
    overrides = {"STORAGES": storages}
    if legacy is not None:
        overrides["STATICFILES_STORAGE"] = FILESYSTEM_STATIC_STORAGE
    return overrides, current


def console_logging(level):
    """Everything to stderr (the journal under systemd), nothing to files."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"handlers": ["console"], "level": level, "propagate": False},
            "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        },
    }


def overrides(config, project):
    """The settings the role sets over the project's (a dict of upper-case names)."""
    result = {
        "DEBUG": False,
        "SECRET_KEY": config["secret_key"],
        "ALLOWED_HOSTS": list(config["allowed_hosts"]),
        "CSRF_TRUSTED_ORIGINS": list(config["csrf_trusted_origins"]),
        "STATIC_URL": config["static_url"],
        "STATIC_ROOT": config["static_root"],
        "MEDIA_URL": config["media_url"],
        "MEDIA_ROOT": config["media_root"],
    }
    databases = dict(project.get("DATABASES") or {})
    databases["default"] = dict(config["database"])
    result["DATABASES"] = databases
    if config.get("proxy_ssl_header", True):
        result["SECURE_PROXY_SSL_HEADER"] = ("HTTP_X_FORWARDED_PROTO", "https")
    if config.get("secure_cookies", True):
        result["SESSION_COOKIE_SECURE"] = True
        result["CSRF_COOKIE_SECURE"] = True
    if config.get("logging", "console") == "console":
        result["LOGGING"] = console_logging(config.get("log_level", "INFO"))
    storage, _replaced = static_storages(project, config.get("static_storage", "auto"))
    result.update(storage)
    middleware = [m for m in project.get("MIDDLEWARE") or [] if m != MIDDLEWARE]
    result["MIDDLEWARE"] = [MIDDLEWARE, *middleware]
    silenced = list(project.get("SILENCED_SYSTEM_CHECKS") or [])
    result["SILENCED_SYSTEM_CHECKS"] = silenced + [c for c in config.get("silenced_checks", []) if c not in silenced]
    result["PYDEPLOY"] = {
        "health_path": config.get("health_path", ""),
        "trusted_proxies": list(config.get("trusted_proxies", [])),
    }
    result.update(config.get("settings") or {})
    return result


def trusted_networks(entries):
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def real_client_address(meta, networks):
    """The client address nginx saw, when the request came from a trusted proxy.

    nginx sets X-Real-IP to its own $remote_addr on every request. The peer is trusted when it
    is a unix socket (no address: only local processes with the socket's group reach it) or an
    address in `networks` (loopback and the web tier). Returns the address to put in REMOTE_ADDR,
    or None to leave the request alone."""
    peer = meta.get("REMOTE_ADDR") or ""
    real = (meta.get("HTTP_X_REAL_IP") or "").strip()
    if not real:
        return None
    try:
        ipaddress.ip_address(real)
    except ValueError:
        return None
    if peer:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return None
        if not any(address in network for network in networks):
            return None
    return real


def writable_path_problems(settings, writable, temp_dirs=("/tmp", "/var/tmp")):
    """Paths the settings write to that lie outside the app's writable directories.

    Returns a list of (setting name, path) pairs. `settings` is a mapping of setting names."""
    allowed = [os.path.normpath(p) for p in [*writable, *temp_dirs] if p]

    def inside(path):
        path = os.path.normpath(os.path.abspath(str(path)))
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in allowed)

    found = []
    for alias, database in (settings.get("DATABASES") or {}).items():
        if "sqlite3" in str(database.get("ENGINE", "")):
            name = str(database.get("NAME", ""))
            if name and name != ":memory:" and not name.startswith("file:"):
                found.append((f"DATABASES[{alias!r}]['NAME']", name))
    for key in ("STATIC_ROOT", "MEDIA_ROOT", "FILE_UPLOAD_TEMP_DIR"):
        if settings.get(key):
            found.append((key, settings[key]))
    for alias, cache in (settings.get("CACHES") or {}).items():
        if str(cache.get("BACKEND", "")).endswith("FileBasedCache") and cache.get("LOCATION"):
            found.append((f"CACHES[{alias!r}]['LOCATION']", cache["LOCATION"]))
    if str(settings.get("SESSION_ENGINE", "")).endswith(".file") and settings.get("SESSION_FILE_PATH"):
        found.append(("SESSION_FILE_PATH", settings["SESSION_FILE_PATH"]))
    for name, handler in ((settings.get("LOGGING") or {}).get("handlers") or {}).items():
        if isinstance(handler, dict) and handler.get("filename"):
            found.append((f"LOGGING['handlers'][{name!r}]['filename']", handler["filename"]))
    return [(key, str(path)) for key, path in found if not inside(path)]
