"""Django projects generated at test time (tests/projects/generate.py), deployed unchanged with
inventory variables only, checked as a visitor would through nginx and TLS, and on the host."""
import json
import os
import pathlib
import re
import shlex
import shutil

import pytest
from pydeploy_testlib import TOOLS, recap_changed
from pydeploy_testlib import run_playbook as _run_playbook

testinfra_hosts = ["ansible://box"]

# name -> admin URL prefix, how it reaches its database
PROJECTS = {
    "shop": {"admin": "/admin/"},
    "mysite": {"admin": "/admin/"},
    "blog": {"admin": "/admin/"},
    "acme": {"admin": "/secret-admin/"},
}
CLIENT = "127.0.0.2"  # the address the visitor connects from (nginx sees it, then the app must)
PASSWORD = "molecule-only-admin-password"
GENERATED = pathlib.Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "projects"


def run_playbook(playbook, extra_vars=None):
    """A playbook of the collection (pydeploy.django_stack.NAME) or of the scenario with its whole
    inventory (the projects are hosts of their own), as a user runs it: no --limit (the collection's
    playbooks refuse one), pydeploy_deploy_hosts picks the apps a deploy or rollback touches."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return _run_playbook(playbook, extra_vars, inventory=inventory)


def deploy_vars(hosts, **extra):
    """A deploy or rollback of `hosts` (apps of their own: one batch, no need to roll one by one)."""
    return {"pydeploy_deploy_hosts": ":".join(hosts), "pydeploy_deploy_serial": len(hosts), **extra}


def client(host, name, *args):
    cmd = ["python3", f"{TOOLS}/django_client.py", "--name", f"{name}.test", "--source", CLIENT, *args]
    result = host.run(" ".join(shlex.quote(c) for c in cmd))
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def manage(host, name, *args, env=""):
    line = " ".join(shlex.quote(a) for a in args)
    return host.run(f"runuser -u {name} -- env {env} /srv/{name}/bin/manage {line}")


@pytest.mark.parametrize("name", PROJECTS)
def test_home_page_through_nginx_over_tls(host, name):
    page = client(host, name, "get", "/")
    assert page["status"] == 200 and "release 1" in page["body"]
    assert page["headers"].get("Server", "").startswith("nginx")


@pytest.mark.parametrize("name", PROJECTS)
def test_admin_login_with_csrf_and_the_client_address(host, name):
    made = manage(host, name, "createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.invalid",
                  env=f"DJANGO_SUPERUSER_PASSWORD={PASSWORD}")
    assert made.rc == 0 or "already taken" in made.stderr, made.stderr
    report = client(host, name, "login", "--admin", PROJECTS[name]["admin"], "--user", "admin", "--password", PASSWORD)
    assert report["login_page"] == 200 and report["csrf_cookie"]
    assert report["post"] == 302 and report["location"] == PROJECTS[name]["admin"], report
    assert report["session"] and report["index"] == 200 and report["site_administration"]
    # The app sees the visitor's address (nginx's X-Real-IP), over the unix socket and over TCP alike.
    assert report["whoami"]["remote_addr"] == CLIENT, report["whoami"]
    assert report["whoami"]["secure"] is True


@pytest.mark.parametrize("name", PROJECTS)
def test_admin_stylesheet_served_by_nginx_from_disk(host, name):
    page = client(host, name, "get", "/static/admin/css/base.css")
    on_disk = host.file(f"/srv/{name}/shared/static/admin/css/base.css")
    assert page["status"] == 200 and on_disk.exists
    assert page["body"] == on_disk.content_string
    assert "max-age" in page["headers"].get("Cache-Control", "")


@pytest.mark.parametrize("name", PROJECTS)
def test_migrations_applied_and_debug_off(host, name):
    shown = manage(host, name, "showmigrations", "--list")
    assert shown.rc == 0 and "[X]" in shown.stdout and "[ ]" not in shown.stdout, shown.stdout + shown.stderr
    missing = client(host, name, "get", "/no-such-page/")
    assert missing["status"] == 404 and "Request Method:" not in missing["body"]  # no debug page


@pytest.mark.parametrize("name", PROJECTS)
def test_built_in_health_check_names_the_live_release(host, name):
    live = host.file(f"/srv/{name}/current").linked_to.rstrip("/").rsplit("/", 1)[-1]
    # blog's Gunicorn has no socket: it listens on loopback TCP only (and nginx dials it there).
    via = "http://127.0.0.1:8101" if name == "blog" else f"--unix-socket /run/gunicorn/{name}.sock http://localhost"
    result = host.run(f"curl -sS -H 'Host: {name}.test' {via}/-/pydeploy/health/")
    assert json.loads(result.stdout) == {"status": "ok", "db": "ok", "release": live}
    if name == "blog":
        assert not host.socket("unix:///run/gunicorn/blog.sock").is_listening


def test_databases_where_the_inventory_says(host):
    engines = {name: json.loads(host.file(f"/etc/{name}/django.json").content_string)["database"]["ENGINE"]
               for name in PROJECTS}
    assert engines["mysite"].endswith("sqlite3") and host.file("/srv/mysite/shared/data/db.sqlite3").exists
    assert all(engines[n].endswith("postgresql") for n in ("shop", "blog", "acme"))
    listed = host.run("runuser -u postgres -- psql -Atc 'select datname from pg_database'").stdout.split()
    assert {"shop", "blog", "acme"} <= set(listed) and "mysite" not in listed


def test_release_holds_no_vcs_ignored_or_world_readable_file(host):
    shop = host.file("/srv/shop/current").linked_to
    for left_out in (".git", ".env", "debug.log", "db.sqlite3"):
        assert not host.file(f"{shop}/src/{left_out}").exists, left_out
    assert host.file(f"{shop}/src/manage.py").exists
    secret = host.file(host.file("/srv/acme/current").linked_to + "/src/.envs/.production/.django")
    assert secret.exists and secret.mode == 0o640 and secret.user == "root" and secret.group == "acme"
    readable = host.run("find /srv/*/releases/ /srv/*/venvs/ -mindepth 1 -perm /o=rwx -not -type l | head -5").stdout
    assert readable == ""


def test_builds_ran_as_the_build_user_and_the_tree_went_to_root(host):
    for name in PROJECTS:
        cache = host.file(f"/srv/{name}/cache/build")
        assert cache.user == f"{name}-build" and cache.mode == 0o700
        assert host.run(f"find /srv/{name}/cache/build -mindepth 1 -maxdepth 2 | head -1").stdout.strip()
        assert host.run(f"find /srv/{name}/releases /srv/{name}/venvs -not -user root | head -1").stdout == ""


def test_the_projects_own_server_pin_is_used(host):
    version = host.run("/srv/acme/current/venv/bin/python -B -c 'import gunicorn; print(gunicorn.__version__)'")
    assert version.stdout.strip() == "27.0.0"  # requirements/production.txt, not the role's 27.0.1
    version = host.run("/srv/shop/current/venv/bin/python -B -c 'import gunicorn; print(gunicorn.__version__)'")
    assert version.stdout.strip() == "27.0.1"


def _changed_copy(tmp_path, release, edit=None):
    """Every generated project copied and changed (the home page says which release)."""
    dest = pathlib.Path(tmp_path) / f"projects-{release}"
    for name in PROJECTS:
        shutil.copytree(GENERATED / name, dest / name, symlinks=True)
        for views in (dest / name).rglob("views.py"):
            views.write_text(views.read_text().replace("release 1", f"release {release}"))
        if edit:
            edit(name, dest / name)
    return dest


BROKEN_WSGI = '''

def application(environ, start_response):  # this release answers every request with an error
    start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
    return [b"broken release"]
'''


def _break_at_runtime(app):
    """A release that builds, imports its settings and passes every check, and fails once it serves."""
    def edit(name, root):
        if name == app:
            for wsgi in root.rglob("wsgi.py"):
                wsgi.write_text(wsgi.read_text() + BROKEN_WSGI)
    return edit


def test_deploy_of_a_changed_release_health_checked_a_broken_one_rolled_back_then_rollback(host, tmp_path):
    """One run of the collection's deploy over the four apps: three go live with release 2 (each proven
    by the health check), shop's release 2 fails its health check once live and is rolled back
    automatically, and the site keeps serving the previous release. Then the rollback playbook
    takes the three back to release 1."""
    venvs = {name: sorted(host.run(f"ls /srv/{name}/venvs").stdout.split()) for name in PROJECTS}
    before = {name: host.file(f"/srv/{name}/current").linked_to for name in PROJECTS}
    # Five attempts of the health check, not the default 15: shop's cannot pass, and the three others
    # answer at the first (their restart returns once the new workers are ready).
    result = run_playbook("pydeploy.django_stack.deploy",
                          deploy_vars(PROJECTS, projects_dir=str(_changed_copy(tmp_path, 2, _break_at_runtime("shop"))),
                                      python_app_health_retries=5))
    assert result.returncode != 0, result.stdout[-4000:]
    assert re.search(r"The new release failed on shop \(.*it was rolled back there", result.stdout), result.stdout[-4000:]
    assert not re.search(r"The new release failed on (mysite|blog|acme)", result.stdout)
    assert host.file("/srv/shop/current").linked_to == before["shop"]
    assert "release 1" in client(host, "shop", "get", "/")["body"]
    healthy = [name for name in PROJECTS if name != "shop"]
    for name in healthy:
        assert "release 2" in client(host, name, "get", "/")["body"], name
        assert host.file(f"/srv/{name}/previous").linked_to == before[name]
        # Same requirements: the new release runs in the virtualenv of the previous one.
        assert sorted(host.run(f"ls /srv/{name}/venvs").stdout.split()) == venvs[name]
    result = run_playbook("pydeploy.django_stack.rollback", deploy_vars(healthy))
    assert result.returncode == 0, result.stdout[-4000:]
    for name in PROJECTS:
        assert "release 1" in client(host, name, "get", "/")["body"], name
        assert host.file(f"/srv/{name}/current").linked_to == before[name]


def test_preflight_stops_a_release_before_it_goes_live_naming_what_to_change(host, tmp_path):
    """One deploy of two apps whose new release cannot work: acme's settings need an environment
    variable the inventory no longer gives, mysite's settings write inside the read-only release."""
    def file_cache(name, root):
        if name == "mysite":
            with open(root / "mysite/settings/production.py", "a") as handle:
                handle.write('\nCACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",'
                             ' "LOCATION": BASE_DIR / "cache"}}\n')
    live = {name: host.file(f"/srv/{name}/current").linked_to for name in ("acme", "mysite")}
    result = run_playbook("pydeploy.django_stack.deploy",
                          deploy_vars(["mysite", "acme"], projects_dir=str(_changed_copy(tmp_path, 3, file_cache)),
                                      python_app_env={}))
    assert result.returncode != 0
    assert "python_app_env.DJANGO_ADMIN_URL" in result.stdout and "config.settings.production" in result.stdout, \
        result.stdout[-4000:]
    assert re.search(r"CACHES\['default'\]\['LOCATION'\] = /srv/mysite/releases/\w+/src/cache is not writable",
                     result.stdout), result.stdout[-3000:]
    for name in ("acme", "mysite"):
        assert re.search(rf"The new release failed on {name} \(.*the old release kept serving there", result.stdout)
    for name in ("acme", "mysite"):
        assert host.file(f"/srv/{name}/current").linked_to == live[name]
        assert "release 1" in client(host, name, "get", "/")["body"]
    # The configuration was checked staged: the live one still has the variable.
    assert "DJANGO_ADMIN_URL='secret-admin/'" in host.file("/etc/acme/env").content_string


@pytest.mark.parametrize("extra, expected", [
    ({"python_app_source_type": ""}, re.compile(r"python_app_source_type on \S+: is not set")),
    ({"python_app_allowed_hosts": ["*"]}, "python_app_allow_any_host"),
    ({"python_app_requirements_file": "requirements/prod.txt"}, "python_app_requirements_file=requirements/prod.txt"),
])
def test_bad_input_fails_before_any_change_naming_the_variable(extra, expected):
    result = run_playbook("converge.yml", extra)
    found = expected.search(result.stdout) if isinstance(expected, re.Pattern) else expected in result.stdout
    assert result.returncode != 0 and found, result.stdout[-3000:]
    assert recap_changed(result.stdout) == 0
