#!/usr/bin/env python3
"""Generate Django projects the way their authors would, at test time, for molecule/projects.

    python3 tests/projects/generate.py DEST          (prints the projects' paths as JSON)

Nothing here knows about pydeploy: each project is what `django-admin startproject` (Django
5.2, from a cached virtualenv on the controller) and a developer's usual next steps make.

- shop:   startproject + startapp catalog, a model registered in the admin, settings untouched
          (DEBUG=True, the generated insecure key, ALLOWED_HOSTS=[], SQLite next to the code),
          requirements.txt; a git repository with a .gitignore and ignored files.
- mysite: a split settings package (mysite/settings/{base,dev,production}.py), manage.py and
          wsgi.py on .dev, as CMS project templates lay it out; SQLite next to the code.
- blog:   a src layout (src/manage.py, src/blog/), dependencies and requires-python in
          pyproject.toml, no requirements file.
- acme:   a production-template layout: config/settings/{base,local,production}.py reading
          DATABASE_URL, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DJANGO_ADMIN_URL with
          django-environ, requirements/{base,local,production}.txt with its own Gunicorn pin,
          an S3 static storage, a secret in .envs/.production/.django (mode 0664).
Every project also gets an app view /whoami/ returning REMOTE_ADDR (what a login throttle sees).
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import venv

DJANGO = "Django==5.2.19"
ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV = pathlib.Path(os.environ.get("PYDEPLOY_CACHE_DIR", ROOT / ".cache")) / "projects-venv"

WHOAMI_VIEW = '''
from django.http import HttpResponse, JsonResponse


def home(request):
    return HttpResponse("<h1>Welcome</h1><p>release 1</p>")


def whoami(request):
    """What a login throttle or an audit log sees of the client."""
    return JsonResponse({"remote_addr": request.META.get("REMOTE_ADDR"), "secure": request.is_secure(),
                         "host": request.get_host()})
'''


def django_admin():
    python = VENV / "bin" / "python"
    if not (VENV / ".ready").exists():
        shutil.rmtree(VENV, ignore_errors=True)
        venv.create(VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", DJANGO, "django-environ==0.14.0"],
                       check=True)
        (VENV / ".ready").write_text(DJANGO + " django-environ\n")
    return [str(python), "-m", "django"]


def run(cmd, cwd, env=None):
    subprocess.run(cmd, cwd=cwd, check=True, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)


def write(path, text, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    if mode is not None:
        path.chmod(mode)


def add_app(project_dir, package, app, settings_file, urls_file, manage_cwd, model=True):
    """startapp, a model in the admin, /whoami/, the app in INSTALLED_APPS, makemigrations."""
    python = django_admin()[0]
    run([python, "manage.py", "startapp", app], cwd=manage_cwd)
    app_dir = manage_cwd / app
    if model:
        write(app_dir / "models.py", """
            from django.db import models


            class Product(models.Model):
                name = models.CharField(max_length=100)
                price = models.DecimalField(max_digits=8, decimal_places=2)

                def __str__(self):
                    return self.name
            """)
        write(app_dir / "admin.py", """
            from django.contrib import admin

            from .models import Product

            admin.site.register(Product)
            """)
    (app_dir / "views.py").write_text(WHOAMI_VIEW)
    settings = settings_file.read_text()
    for quote in "'\"":
        settings = settings.replace(f"{quote}django.contrib.staticfiles{quote},\n",
                                    f"{quote}django.contrib.staticfiles{quote},\n    {quote}{app}{quote},\n", 1)
    settings_file.write_text(settings)
    urls = urls_file.read_text()
    urls = urls.replace("from django.urls import path", f"from django.urls import path\n\nfrom {app}.views import home, whoami")
    urls = urls.replace("urlpatterns = [", 'urlpatterns = [\n    path("", home),\n    path("whoami/", whoami),', 1)
    urls_file.write_text(urls)
    if model:
        run([python, "manage.py", "makemigrations", app], cwd=manage_cwd, env={"DATABASE_URL": "sqlite:////tmp/x.db",
                                                                              "DJANGO_READ_DOT_ENV_FILE": "False"})


def shop(dest):
    admin = django_admin()
    dest.mkdir(parents=True)
    run([*admin, "startproject", "shop", "."], cwd=dest)
    add_app(dest, "shop", "catalog", dest / "shop/settings.py", dest / "shop/urls.py", dest)
    write(dest / "requirements.txt", f"""
        {DJANGO}
        psycopg[binary]==3.3.9
        """)
    write(dest / ".gitignore", """
        db.sqlite3
        *.log
        .env
        /media/
        """)
    write(dest / ".env", "DJANGO_SECRET_KEY=from-a-developer-laptop\n")
    write(dest / "debug.log", "a local log file\n")
    run(["git", "init", "-q"], cwd=dest)
    run(["git", "add", "-A"], cwd=dest)
    run(["git", "-c", "user.name=dev", "-c", "user.email=dev@example.invalid", "commit", "-qm", "start"], cwd=dest)


def mysite(dest):
    admin = django_admin()
    dest.mkdir(parents=True)
    run([*admin, "startproject", "mysite", "."], cwd=dest)
    package = dest / "mysite"
    base = (package / "settings.py").read_text()
    base = base.replace("BASE_DIR = Path(__file__).resolve().parent.parent",
                        "BASE_DIR = Path(__file__).resolve().parent.parent.parent")
    (package / "settings.py").unlink()
    write(package / "settings/__init__.py", "")
    (package / "settings/base.py").write_text(base)
    write(package / "settings/dev.py", """
        from .base import *  # noqa: F401,F403

        DEBUG = True
        ALLOWED_HOSTS = ["*"]
        EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
        """)
    write(package / "settings/production.py", """
        from .base import *  # noqa: F401,F403

        DEBUG = False

        try:
            from .local import *  # noqa: F401,F403
        except ImportError:
            pass
        """)
    for name in ("manage.py", "mysite/wsgi.py", "mysite/asgi.py"):
        path = dest / name
        path.write_text(re.sub(r"(['\"])mysite.settings\1", r"\1mysite.settings.dev\1", path.read_text()))
    add_app(dest, "mysite", "home", package / "settings/base.py", package / "urls.py", dest)
    write(dest / "requirements.txt", f"""
        {DJANGO}
        """)


def blog(dest):
    admin = django_admin()
    src = dest / "src"
    src.mkdir(parents=True)
    run([*admin, "startproject", "blog", "."], cwd=src)
    add_app(dest, "blog", "posts", src / "blog/settings.py", src / "blog/urls.py", src)
    write(dest / "pyproject.toml", """
        [project]
        name = "blog"
        version = "0.1.0"
        requires-python = ">=3.11"
        dependencies = [
            "Django>=5.2,<6",
            "psycopg[binary]>=3.2",
        ]
        """)


def acme(dest):
    admin = django_admin()
    dest.mkdir(parents=True)
    run([*admin, "startproject", "config", "."], cwd=dest)
    package = dest / "config"
    generated = (package / "settings.py").read_text()
    (package / "settings.py").unlink()
    base = generated.replace("BASE_DIR = Path(__file__).resolve().parent.parent",
                             "import environ\n\nBASE_DIR = Path(__file__).resolve().parent.parent.parent\n"
                             "env = environ.Env()\n"
                             "if env.bool('DJANGO_READ_DOT_ENV_FILE', default=False):\n"
                             "    env.read_env(str(BASE_DIR / '.env'))")
    start = base.index("DATABASES = {")
    end = base.index("}\n}\n", start) + 4
    base = base[:start] + 'DATABASES = {"default": env.db("DATABASE_URL")}\nDATABASES["default"]["ATOMIC_REQUESTS"] = True\n' \
        + base[end:]
    base += '\nADMIN_URL = env("DJANGO_ADMIN_URL", default="admin/")\n'
    write(package / "settings/__init__.py", "")
    (package / "settings/base.py").write_text(base)
    write(package / "settings/local.py", """
        from .base import *  # noqa: F401,F403
        from .base import env

        DEBUG = True
        SECRET_KEY = env("DJANGO_SECRET_KEY", default="local-only-insecure-key")
        ALLOWED_HOSTS = ["localhost", "0.0.0.0", "127.0.0.1"]
        """)
    write(package / "settings/production.py", """
        from .base import *  # noqa: F401,F403
        from .base import env

        SECRET_KEY = env("DJANGO_SECRET_KEY")
        ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["example.com"])
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
        ADMIN_URL = env("DJANGO_ADMIN_URL")

        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
        SESSION_COOKIE_SECURE = True
        CSRF_COOKIE_SECURE = True
        SECURE_HSTS_SECONDS = 60
        SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
        SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
        SECURE_CONTENT_TYPE_NOSNIFF = env.bool("DJANGO_SECURE_CONTENT_TYPE_NOSNIFF", default=True)

        STORAGES = {
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "storages.backends.s3.S3Storage",
                            "OPTIONS": {"bucket_name": env("DJANGO_AWS_STORAGE_BUCKET_NAME", default="static")}},
        }
        """)
    for name in ("manage.py", "config/wsgi.py", "config/asgi.py"):
        path = dest / name
        text = re.sub(r"(['\"])config.settings\1", r"\1config.settings.local\1", path.read_text())
        path.write_text(text)
    urls = (package / "urls.py").read_text()
    urls = urls.replace("from django.contrib import admin", "from django.conf import settings\nfrom django.contrib import admin")
    urls = re.sub(r"path\((['\"])admin/\1, admin.site.urls\)", "path(settings.ADMIN_URL, admin.site.urls)", urls)
    (package / "urls.py").write_text(urls)
    add_app(dest, "config", "acme", package / "settings/base.py", package / "urls.py", dest, model=True)
    write(dest / "requirements/base.txt", f"""
        {DJANGO}
        django-environ==0.14.0
        psycopg[binary]==3.3.9
        """)
    write(dest / "requirements/local.txt", """
        -r base.txt
        Werkzeug==3.1.3
        """)
    write(dest / "requirements/production.txt", """
        # PRECAUTION: avoid production dependencies that aren't in development

        -r base.txt

        gunicorn==27.0.0  # https://github.com/benoitc/gunicorn
        """)
    write(dest / ".envs/.production/.django", """
        DJANGO_SETTINGS_MODULE=config.settings.production
        DJANGO_SECRET_KEY=generated-by-the-template-0123456789abcdefghijklmnopqrstuvwxyz
        DJANGO_ADMIN_URL=secret-admin/
        """, mode=0o664)
    write(dest / ".gitignore", """
        .env
        staticfiles/
        """)


PROJECTS = {"shop": shop, "mysite": mysite, "blog": blog, "acme": acme}


def main():
    dest = pathlib.Path(sys.argv[1]).resolve()
    made = {}
    for name, make in PROJECTS.items():
        target = dest / name
        if not (target / ".generated").exists():
            shutil.rmtree(target, ignore_errors=True)
            make(target)
            (target / ".generated").write_text("")
        made[name] = str(target)
    print(json.dumps(made))


if __name__ == "__main__":
    main()
