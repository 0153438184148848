"""The settings contract shipped into every release (roles/python_app/files/pydeploy_django),
tested without a Django project: the overrides, the client address, the writable paths, the
preflight's messages."""
import json
import sys
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parents[2] / "ansible_collections/pydeploy/django_stack/roles/python_app/files"
sys.path.insert(0, str(FILES))

from pydeploy_django import contract, preflight  # noqa: E402

CONFIG = {
    "base_settings": "shop.settings", "secret_key": "s" * 50, "allowed_hosts": ["shop.test"],
    "csrf_trusted_origins": ["https://shop.test"], "static_url": "/static/", "static_root": "/srv/shop/shared/static",
    "media_url": "/media/", "media_root": "/srv/shop/shared/media",
    "database": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop"},
    "silenced_checks": ["security.W004", "security.W008"], "trusted_proxies": ["127.0.0.0/8"],
    "health_path": "/-/pydeploy/health/", "settings": {"SECURE_HSTS_SECONDS": 0},
    "writable_paths": ["/srv/shop/shared/static", "/srv/shop/shared/media", "/srv/shop/shared/data"],
}
STARTPROJECT = {
    "DEBUG": True, "SECRET_KEY": "django-insecure-x", "ALLOWED_HOSTS": [],
    "MIDDLEWARE": ["django.middleware.security.SecurityMiddleware"],
    "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/shop/releases/1/src/db.sqlite3"},
                  "legacy": {"ENGINE": "django.db.backends.sqlite3", "NAME": "/tmp/legacy.db"}},
    "SILENCED_SYSTEM_CHECKS": ["security.W001"],
}


def test_overrides_make_an_unchanged_startproject_deployable():
    result = contract.overrides(CONFIG, STARTPROJECT)
    assert result["DEBUG"] is False and result["SECRET_KEY"] == "s" * 50
    assert result["ALLOWED_HOSTS"] == ["shop.test"] and result["CSRF_TRUSTED_ORIGINS"] == ["https://shop.test"]
    assert result["DATABASES"]["default"]["NAME"] == "shop" and result["DATABASES"]["legacy"]["NAME"] == "/tmp/legacy.db"
    assert result["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert result["SESSION_COOKIE_SECURE"] and result["CSRF_COOKIE_SECURE"]
    assert result["MIDDLEWARE"][0] == contract.MIDDLEWARE and len(result["MIDDLEWARE"]) == 2
    assert result["SILENCED_SYSTEM_CHECKS"] == ["security.W001", "security.W004", "security.W008"]
    assert result["LOGGING"]["handlers"]["console"]["class"] == "logging.StreamHandler"
    assert result["SECURE_HSTS_SECONDS"] == 0
    assert result["STATIC_ROOT"] == "/srv/shop/shared/static"
    # Applying twice (a settings module importing another overlay) keeps one middleware.
    assert contract.overrides(CONFIG, {**STARTPROJECT, **result})["MIDDLEWARE"].count(contract.MIDDLEWARE) == 1


def test_remote_static_storage_is_replaced_unless_kept():
    s3 = {"STORAGES": {"default": {"BACKEND": "storages.backends.s3.S3Storage"},
                       "staticfiles": {"BACKEND": "storages.backends.s3.S3Storage"}}}
    result, replaced = contract.static_storages(s3, "auto")
    assert replaced == "storages.backends.s3.S3Storage"
    assert result["STORAGES"]["staticfiles"]["BACKEND"] == contract.FILESYSTEM_STATIC_STORAGE
    assert result["STORAGES"]["default"]["BACKEND"] == "storages.backends.s3.S3Storage"  # media stay where they are
    assert contract.static_storages(s3, "project") == ({}, None)
    whitenoise = {"STORAGES": {"staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}}
    assert contract.static_storages(whitenoise, "auto") == ({}, None)
    assert contract.static_storages(whitenoise, "filesystem")[1] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    legacy, _ = contract.static_storages({"STATICFILES_STORAGE": "storages.backends.gcloud.GoogleCloudStorage"}, "auto")
    assert legacy["STATICFILES_STORAGE"] == contract.FILESYSTEM_STATIC_STORAGE


@pytest.mark.parametrize("meta, expected", [
    ({"REMOTE_ADDR": "", "HTTP_X_REAL_IP": "203.0.113.7"}, "203.0.113.7"),         # unix socket
    ({"HTTP_X_REAL_IP": "203.0.113.7"}, "203.0.113.7"),                            # ASGI, no client
    ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_REAL_IP": "2001:db8::1"}, "2001:db8::1"),  # nginx on loopback
    ({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_REAL_IP": "203.0.113.7"}, "203.0.113.7"),  # the web tier
    ({"REMOTE_ADDR": "198.51.100.9", "HTTP_X_REAL_IP": "203.0.113.7"}, None),       # anyone else: ignored
    ({"REMOTE_ADDR": "", "HTTP_X_REAL_IP": "not-an-address"}, None),
    ({"REMOTE_ADDR": "127.0.0.1"}, None),
])
def test_real_client_address(meta, expected):
    networks = contract.trusted_networks(["127.0.0.0/8", "::1/128", "10.0.0.0/24"])
    assert contract.real_client_address(meta, networks) == expected


def test_writable_paths():
    settings = {
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/shop/releases/1/src/db.sqlite3"},
                      "mem": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        "STATIC_ROOT": "/srv/shop/shared/static", "MEDIA_ROOT": "/srv/shop/releases/1/src/media",
        "CACHES": {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                               "LOCATION": "/var/tmp/django_cache"}},
        "LOGGING": {"handlers": {"file": {"class": "logging.FileHandler", "filename": "/srv/shop/releases/1/src/x.log"}}},
    }
    problems = contract.writable_path_problems(settings, CONFIG["writable_paths"])
    assert [key for key, _ in problems] == ["DATABASES['default']['NAME']", "MEDIA_ROOT",
                                            "LOGGING['handlers']['file']['filename']"]


def test_preflight_messages_name_what_to_set():
    try:
        raise KeyError("DJANGO_ADMIN_URL")
    except KeyError as exc:
        message = preflight.explain_import_error(exc, "config.settings.production")
    assert "python_app_env.DJANGO_ADMIN_URL" in message and "config.settings.production" in message
    environ_style = Exception("Set the DJANGO_SECRET_KEY environment variable")
    assert "python_app_env.DJANGO_SECRET_KEY" in preflight.explain_import_error(environ_style, "x")
    missing_module = ModuleNotFoundError("No module named 'mysite.settings.production'", name="mysite.settings.production")
    assert "python_app_django_settings_module" in preflight.explain_import_error(missing_module, "mysite.settings.production")
    missing_package = ModuleNotFoundError("No module named 'environ'", name="environ")
    assert "python_app_requirements_file" in preflight.explain_import_error(missing_package, "config.settings.production")


def test_load_config_needs_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(contract.CONFIG_ENV, raising=False)
    with pytest.raises(RuntimeError, match=contract.CONFIG_ENV):
        contract.load_config()
    path = tmp_path / "django.json"
    path.write_text(json.dumps(CONFIG))
    monkeypatch.setenv(contract.CONFIG_ENV, str(path))
    assert contract.load_config()["base_settings"] == "shop.settings"
