"""python_app's source inspection: layouts, requirements, server package pins, Python version."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[8]))

from ansible_collections.pydeploy.django_stack.plugins.module_utils.python_app_project import (  # noqa: E402
    ProjectError, detect_layout, detect_python, detect_requirements, exact_pin, explain_pip_error, inspect_tree,
    pip_network_error,
    parse_requirement, python_problem, resolve_server_packages, satisfies)

MANAGE = 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "{}")\n'


def tree(files):
    return list(files), files.get


def test_startproject_layout():
    files, read = tree({"manage.py": MANAGE.format("shop.settings"), "shop/__init__.py": "", "shop/settings.py": "",
                        "shop/wsgi.py": "", "shop/asgi.py": "", "requirements.txt": "Django==5.2\n"})
    layout = detect_layout(files, read)
    assert layout == {"django_root": "", "settings_module": "shop.settings", "project": "shop",
                      "wsgi_module": "shop.wsgi:application", "asgi_module": "shop.asgi:application",
                      "declared": "shop.settings"}


def test_split_settings_prefers_production_over_the_declared_dev_module():
    files, read = tree({"manage.py": MANAGE.format("mysite.settings.dev"), "mysite/__init__.py": "",
                        "mysite/settings/__init__.py": "", "mysite/settings/base.py": "",
                        "mysite/settings/dev.py": "", "mysite/settings/production.py": "", "mysite/wsgi.py": ""})
    layout = detect_layout(files, read)
    assert layout["settings_module"] == "mysite.settings.production"
    assert layout["wsgi_module"] == "mysite.wsgi:application" and layout["asgi_module"] == ""


def test_config_settings_local_to_production_and_src_layout():
    files, read = tree({"manage.py": MANAGE.format("config.settings.local"), "config/settings/local.py": "",
                        "config/settings/production.py": "", "config/settings/__init__.py": "",
                        "config/__init__.py": "", "config/wsgi.py": ""})
    assert detect_layout(files, read)["settings_module"] == "config.settings.production"
    files, read = tree({"src/manage.py": MANAGE.format("blog.settings"), "src/blog/__init__.py": "",
                        "src/blog/settings.py": "", "src/blog/wsgi.py": "", "node_modules/x/manage.py": ""})
    layout = detect_layout(files, read)
    assert layout["django_root"] == "src" and layout["settings_module"] == "blog.settings"


def test_a_settings_module_that_does_not_exist_names_the_variable():
    files, read = tree({"manage.py": MANAGE.format("shop.settings"), "shop/settings.py": ""})
    with pytest.raises(ProjectError, match="python_app_django_settings_module"):
        detect_layout(files, read, settings_module="shop.settings.production")
    with pytest.raises(ProjectError, match="python_app_django_root"):
        detect_layout(*tree({"README.md": ""}))


def test_requirements_found_in_order_and_includes_followed():
    files, read = tree({"requirements/base.txt": "Django==5.2.19  # web\npsycopg[binary]==3.3.9\n",
                        "requirements/production.txt": "-r base.txt\n\ngunicorn==26.2.0 ; python_version > '3'\n",
                        "requirements/local.txt": "-r base.txt\nWerkzeug\n"})
    found = detect_requirements(files, read)
    assert found["file"] == "requirements/production.txt" and found["kind"] == "requirements"
    assert found["requirements"]["gunicorn"][0] == "==26.2.0"
    assert found["requirements"]["django"] == ("==5.2.19", "requirements/base.txt")
    assert "werkzeug" not in found["requirements"]


def test_missing_requirements_fail_naming_the_variable():
    with pytest.raises(ProjectError, match="python_app_requirements_file"):
        detect_requirements(*tree({"manage.py": ""}))
    with pytest.raises(ProjectError, match="python_app_requirements_file=req.txt does not exist"):
        detect_requirements(*tree({"manage.py": ""}), requested="req.txt")
    with pytest.raises(ProjectError, match="uv export"):
        detect_requirements(*tree({"uv.lock": ""}))
    assert detect_requirements(*tree({}), requested="none")["kind"] == "none"


def test_pyproject_dependencies_and_python_version():
    pyproject = '[project]\nname = "blog"\nrequires-python = ">=3.12"\ndependencies = ["Django>=5.2,<6"]\n'
    files, read = tree({"pyproject.toml": pyproject})
    found = detect_requirements(files, read)
    assert found["kind"] == "pyproject" and found["lines"] == ["Django>=5.2,<6"]
    assert detect_python(files, read) == (">=3.12", "pyproject.toml")
    assert detect_python(*tree({".python-version": "3.13.1\n"})) == (">=3.13", ".python-version")
    assert detect_python(*tree({"runtime.txt": "python-3.12.4"})) == (">=3.12", "runtime.txt")


def test_hashes_are_detected():
    files, read = tree({"requirements.txt": "django==5.2.19 \\\n    --hash=sha256:abc\n"})
    found = detect_requirements(files, read)
    assert found["hashes"] and found["requirements"]["django"][0] == "==5.2.19"


def test_server_packages_use_a_sufficient_project_pin():
    project = {"file": "requirements/production.txt", "hashes": False,
               "requirements": {"gunicorn": ("==26.2.0", "requirements/production.txt")}}
    packages, notes = resolve_server_packages(["gunicorn==27.0.1", "uvicorn-worker==0.4.0"], {"gunicorn": "23.0"},
                                              project)
    assert packages == ["uvicorn-worker==0.4.0"] and "gunicorn==26.2.0" in notes[0]


def test_server_packages_refuse_an_old_pin_or_a_conflicting_range_before_pip():
    old = {"file": "r.txt", "requirements": {"gunicorn": ("==20.1.0", "r.txt")}}
    with pytest.raises(ProjectError, match="python_app_server_packages") as err:
        resolve_server_packages(["gunicorn==27.0.1"], {"gunicorn": "23.0"}, old)
    assert "older than 23.0" in str(err.value)
    ranged = {"file": "r.txt", "requirements": {"gunicorn": ("<22", "r.txt")}}
    with pytest.raises(ProjectError, match="excludes gunicorn==27.0.1"):
        resolve_server_packages(["gunicorn==27.0.1"], {}, ranged)
    compatible = {"file": "r.txt", "requirements": {"gunicorn": (">=22", "r.txt")}}
    assert resolve_server_packages(["gunicorn==27.0.1"], {}, compatible)[0] == ["gunicorn==27.0.1"]


def test_hashed_requirements_must_carry_the_server_packages():
    with pytest.raises(ProjectError, match="require-hashes"):
        resolve_server_packages(["gunicorn==27.0.1"], {}, {"file": "r.txt", "hashes": True, "requirements": {}})


def test_versions_and_specifiers():
    assert parse_requirement("uvicorn[standard]==0.54.0") == ("uvicorn", "==0.54.0")
    assert parse_requirement("Uvicorn_Worker >= 0.4") == ("uvicorn-worker", ">=0.4")
    assert parse_requirement("-e .") is None
    assert exact_pin("==27.0.1") == "27.0.1" and exact_pin(">=1") is None and exact_pin("==1.*") is None
    assert satisfies("3.11.2", ">=3.11") and not satisfies("3.11.2", ">=3.12")
    assert satisfies("27.0.1", "~=27.0") and not satisfies("28.0", "~=27.0.0")
    assert satisfies("5.2.19", "==5.2.*") and not satisfies("5.1", "==5.2.*")


def test_python_messages_name_the_interpreter_variable():
    assert python_problem("3.11.2", ">=3.11", "pyproject.toml", "/usr/bin/python3") == ""
    message = python_problem("3.11.2", ">=3.12", "pyproject.toml", "/usr/bin/python3")
    assert "python_app_python" in message and "3.11.2" in message and ">=3.12" in message
    pip = ("ERROR: Package 'wagtail' requires a different Python: 3.11.2 not in '>=3.12'\n")
    assert "python_app_python" in explain_pip_error(pip, "/usr/bin/python3")
    assert explain_pip_error("ERROR: some other failure", "/usr/bin/python3") == ""


NETWORK_FAILURES = [
    # pip: a download cut off, the index unreachable after pip's own retries, DNS
    "pip._vendor.urllib3.exceptions.ReadTimeoutError: HTTPSConnectionPool(host='files.pythonhosted.org', "
    "port=443): Read timed out.",
    "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection "
    "broken by 'NewConnectionError(...)': /simple/django/\nERROR: Could not find a version that satisfies the "
    "requirement Django==5.2.9 (from versions: none)\nERROR: No matching distribution found for Django==5.2.9",
    "pip._vendor.urllib3.exceptions.ProtocolError: ('Connection broken: IncompleteRead(1024 bytes read)', ...)",
    "Failed to establish a new connection: [Errno -3] Temporary failure in name resolution",
    # uv
    "error: Failed to fetch: `https://pypi.org/simple/django/`\n  Caused by: Request failed after 3 retries\n"
    "  Caused by: error sending request for url (https://pypi.org/simple/django/)\n  Caused by: operation timed out",
    "error: Failed to download `django==5.2.9`\n  Caused by: request or response body error",
]
NOT_NETWORK = [
    "ERROR: Could not find a version that satisfies the requirement Djangoo==5.2 (from versions: none)\n"
    "ERROR: No matching distribution found for Djangoo==5.2",
    "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.",
    "ERROR: Package 'wagtail' requires a different Python: 3.11.2 not in '>=3.12'",
    "error: Failed to build `psycopg2==2.9.10`\n  Caused by: Build backend failed to build wheel",
    "",
]


@pytest.mark.parametrize("output", NETWORK_FAILURES)
def test_network_failures_of_pip_and_uv_are_recognised(output):
    assert pip_network_error(output)


@pytest.mark.parametrize("output", NOT_NETWORK)
def test_failures_of_the_request_itself_are_not_network_failures(output):
    assert not pip_network_error(output)


def test_inspect_tree_combines_everything():
    files, read = tree({"src/manage.py": MANAGE.format("blog.settings"), "src/blog/settings.py": "",
                        "src/blog/wsgi.py": "", "src/requirements.txt": "Django\n"})
    result = inspect_tree(files, read)
    assert result["layout"]["django_root"] == "src" and result["requirements"]["file"] == "src/requirements.txt"
