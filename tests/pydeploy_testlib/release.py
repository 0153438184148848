"""Releases of the bundled demo project made on the controller for deploy tests: another
version, a new dependency, a failing migration, extra Django settings."""
import os
import pathlib
import shutil

DEMO = (pathlib.Path(os.environ.get("ANSIBLE_COLLECTIONS_PATH", ".").split(":")[0])
        / "ansible_collections/pydeploy/django_stack/roles/python_app/files/demo_project")


# sha256 of the distributions of the requirements tests add (uv pip compile --generate-hashes).
KNOWN_HASHES = {
    "six==1.17.0": ["4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
                    "ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"],
}


def make_release(tmp_path, version, extra_requirement=None, broken_migration=False, extra_settings=None):
    """A copy of the demo under tmp_path with another version; optionally a new dependency
    (module, requirement) the code imports, a migration that fails, or Python appended to settings."""
    src = pathlib.Path(tmp_path) / f"release-{version}"
    shutil.copytree(DEMO, src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "VERSION").write_text(version + "\n")
    if extra_requirement:
        module, requirement = extra_requirement
        lock = (src / "requirements.txt").read_text()
        if "--hash" in lock and "--hash" not in requirement:
            # The demo's requirements are a hashed lock (pip --require-hashes): the new one needs its hashes too.
            requirement = " ".join([requirement, *(f"--hash=sha256:{h}" for h in KNOWN_HASHES[requirement])])
        with open(src / "requirements.txt", "a") as fh:
            fh.write(requirement + "\n")
        # The new code needs the new package at import time: served by an old venv it would fail.
        with open(src / "demo/__init__.py", "a") as fh:
            fh.write(f"import {module}  # noqa: F401  new dependency of release {version}\n")
    if broken_migration:
        (src / "demo/migrations/0002_broken.py").write_text(
            "from django.db import migrations\n\n\n"
            "def fail(apps, schema_editor):\n    raise RuntimeError('deliberately broken release')\n\n\n"
            "class Migration(migrations.Migration):\n"
            "    dependencies = [('demo', '0001_initial')]\n"
            "    operations = [migrations.RunPython(fail)]\n")
    if extra_settings:
        with open(src / "demo/settings.py", "a") as fh:
            fh.write(f"\n# Release {version} of the tests\n{extra_settings}\n")
    return src
