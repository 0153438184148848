"""Action python_app_source on a generated-like tree: release id, layout, packages, tarball, errors."""
import sys
import tarfile
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[8]))

from ansible_collections.pydeploy.django_stack.plugins.action.python_app_source import ActionModule  # noqa: E402

MANAGE = 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")\n'


def action(**args):
    task = mock.MagicMock(args=args, async_val=0, check_mode=False, no_log=False)
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    module = ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), mock.MagicMock())
    module._early_needs_tmp_path = lambda: False
    return module.run(task_vars={})


def project(root):
    files = {"manage.py": MANAGE, "config/__init__.py": "", "config/settings/__init__.py": "",
             "config/settings/local.py": "", "config/settings/production.py": "", "config/wsgi.py": "",
             "requirements/base.txt": "Django==5.2.19\n", "requirements/production.txt": "-r base.txt\ngunicorn==26.2.0\n",
             ".gitignore": ".env\n", ".env": "SECRET=1\n", ".git/HEAD": "ref\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_inspects_packs_and_names_the_release(tmp_path):
    src = project(tmp_path / "src")
    extra = tmp_path / "contract"
    extra.mkdir()
    (extra / "settings.py").write_text("# contract\n")
    tarball = tmp_path / "release.tar.gz"
    result = action(path=str(src), extra_dir=str(extra), extra_prefix="pydeploy_django", pack=str(tarball),
                    server_packages=["gunicorn==27.0.1"], min_versions={"gunicorn": "23.0"}, salt="s")
    assert not result.get("failed"), result
    assert result["layout"]["settings_module"] == "config.settings.production"
    assert result["requirements"]["file"] == "requirements/production.txt"
    assert result["server_packages"] == []  # the project's gunicorn==26.2.0 is used
    assert len(result["release_id"]) == 12 and result["files"] == 9
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "pydeploy_django/settings.py" in names and ".env" not in names and not any(".git/" in n for n in names)
    again = action(path=str(src), extra_dir=str(extra), server_packages=["gunicorn==27.0.1"], salt="s")
    assert again["release_id"] == result["release_id"]
    (extra / "settings.py").write_text("# contract, next version\n")
    assert action(path=str(src), extra_dir=str(extra), salt="s")["release_id"] != result["release_id"]


def test_fails_with_what_to_set(tmp_path):
    src = project(tmp_path / "src")
    result = action(path=str(src), requirements_file="requirements/prod.txt")
    assert result["failed"] and "python_app_requirements_file=requirements/prod.txt" in result["msg"]
    result = action(path=str(src), server_packages=["gunicorn==27.0.1"], min_versions={"gunicorn": "27.0"})
    assert result["failed"] and "python_app_server_packages" in result["msg"] and "26.2.0" in result["msg"]


def test_git_and_pip_sources_use_the_variables(tmp_path):
    result = action(path="", settings_module="shop.settings", warn=["", "db not needed"])
    assert result["layout"]["wsgi_module"] == "shop.wsgi:application" and result["release_id"] == ""
    assert result["warnings"] == ["db not needed"]
