"""Checks of a release before it goes live, with messages that say what to change.

    python -m pydeploy_django.preflight [--check-deploy LEVEL]      (JSON report, exit 0)
    python -m pydeploy_django.preflight --gate [--check-deploy LEVEL]   (problems as lines, exit 1 on any)

Run by the role through the manage wrapper, as the app user, with the configuration about to go
live: the settings import, every path the settings write to is writable, the database answers,
and (with --check-deploy) Django's `check --deploy` passes at LEVEL. Every problem names the
Django setting or the role variable to change.
"""
import json
import os
import re
import sys
import traceback

from pydeploy_django import contract

ENV_VAR_PATTERNS = (
    re.compile(r"Set the (\w+) environment variable"),  # django-environ
    re.compile(r"environment variable[ '\"]+(\w+)"),
)


def explain_import_error(exc, module):
    """One line saying why the settings did not import and what to set."""
    text = f"{type(exc).__name__}: {exc}"
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" ({last.filename}, line {last.lineno})"
    name = None
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        name = exc.args[0]
    else:
        for pattern in ENV_VAR_PATTERNS:
            match = pattern.search(str(exc))
            if match:
                name = match.group(1)
                break
    if name and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return (f"importing the settings module {module} failed: {text}{where}. The settings read the environment "
                f"variable {name}: set python_app_env.{name} (or python_app_secrets.{name} for a secret) in the "
                f"inventory.")
    if isinstance(exc, ModuleNotFoundError):
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            return (f"the settings module {module} does not exist in the release{where}: set "
                    f"python_app_django_settings_module (and python_app_django_root for a src layout).")
        return (f"importing the settings module {module} failed: {text}{where}. The package {missing} is not "
                f"installed: add it to the project's requirements (python_app_requirements_file) or to "
                f"python_app_pip_extra_packages.")
    return f"importing the settings module {module} failed: {text}{where}."


def deploy_check_problems(level):
    """Django's deployment checks at `level` (its --fail-level), as one problem or none."""
    import io  # noqa: PLC0415

    from django.core.management import call_command  # noqa: PLC0415
    from django.core.management.base import SystemCheckError  # noqa: PLC0415

    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("check", deploy=True, fail_level=level, stdout=out, stderr=err)
    except SystemCheckError as exc:
        return [f"manage.py check --deploy --fail-level {level} failed: {str(exc).strip()} -- fix the project's "
                f"settings, set the value with python_app_django_settings, or silence the check with a reason in "
                f"python_app_django_check_silenced."]
    return []


def run(config, check_level=""):
    report = {"ok": False, "problems": [], "notes": [], "settings": {}}
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    base = config.get("base_settings", module)
    try:
        import django  # noqa: PLC0415 - after the environment is in place
        from django.conf import settings  # noqa: PLC0415

        django.setup()
    except Exception as exc:  # noqa: BLE001 - every import failure is reported
        report["problems"].append(explain_import_error(exc, base))
        return report

    values = {name: getattr(settings, name) for name in dir(settings) if name.isupper()}
    report["settings"] = {
        "module": module,
        "base": base,
        "debug": bool(values.get("DEBUG")),
        "allowed_hosts": list(values.get("ALLOWED_HOSTS", [])),
        "static_root": str(values.get("STATIC_ROOT") or ""),
        "database_engine": str(values.get("DATABASES", {}).get("default", {}).get("ENGINE", "")),
    }
    if module == "pydeploy_django.settings":
        project = contract.uppercase(vars(__import__(base, fromlist=["*"])))
        _storages, replaced = contract.static_storages(project, config.get("static_storage", "auto"))
        if replaced:
            report["notes"].append(f"the project's static storage {replaced} was replaced by "
                                   f"{contract.FILESYSTEM_STATIC_STORAGE} (nginx serves STATIC_ROOT); "
                                   f"python_app_django_static_storage: project keeps it.")

    for key, path in contract.writable_path_problems(values, config.get("writable_paths", [])):
        report["problems"].append(
            f"{key} = {path} is not writable by the app: the release is read-only and only "
            f"{', '.join(config.get('writable_paths', []))} are writable. Point it into one of them "
            f"(python_app_database for the database, python_app_django_settings for any other setting).")

    if not values.get("STATIC_ROOT"):
        report["problems"].append("STATIC_ROOT is not set: with python_app_django_settings_contract off the project "
                                  "must read it from DJANGO_STATIC_ROOT.")

    if check_level and not report["problems"]:
        report["problems"] += deploy_check_problems(check_level)

    if config.get("check_database", True) and not report["problems"]:
        from django.db import connections  # noqa: PLC0415

        default = values.get("DATABASES", {}).get("default", {})
        try:
            connections["default"].ensure_connection()
        except Exception as exc:  # noqa: BLE001 - reported with what to check
            report["problems"].append(
                f"cannot connect to the database {default.get('NAME', '')!s} ({default.get('ENGINE', '')}, host "
                f"{default.get('HOST') or 'local socket'}, user {default.get('USER') or '-'}): "
                f"{type(exc).__name__}: {str(exc).strip()}. Check python_app_database and "
                f"python_app_database_password, that the database and its role exist and that the database server "
                f"accepts this host.")
        finally:
            connections.close_all()
    report["ok"] = not report["problems"]
    return report


def main(argv=None):
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="pydeploy_django.preflight")
    parser.add_argument("--gate", action="store_true", help="print the problems, exit 1 when there is one")
    parser.add_argument("--check-deploy", default="", metavar="LEVEL", help="run check --deploy at this fail level")
    args = parser.parse_args(argv)
    try:
        report = run(contract.load_config(), args.check_deploy)
    except Exception as exc:  # noqa: BLE001 - the configuration itself is unreadable
        report = {"ok": False, "problems": [f"cannot read the role's configuration: {exc}"], "notes": []}
    if not args.gate:
        print(json.dumps(report))
        return 0
    for line in report["notes"]:
        print(f"note: {line}")
    for line in report["problems"]:
        print(f"PROBLEM: {line}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
