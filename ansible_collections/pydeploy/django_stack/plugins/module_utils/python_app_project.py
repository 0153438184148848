# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""What python_app needs to know about a project's tree, from the files alone (no import).

Used on the controller (action python_app_source, for a path source) and on the host (module
python_app_inspect, for a git source). Standard library only; every function takes the list of
the tree's relative paths and a reader (path -> text or None), so tests need no files.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
import re

SKIP_DIRS = {".git", ".hg", ".svn", ".bzr", "node_modules", ".venv", "venv", ".tox", ".nox", "site-packages",
             "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
DEV_SETTINGS = {"local", "dev", "develop", "development", "test", "tests", "testing", "settings_dev", "dev_settings"}
PRODUCTION_SETTINGS = ("production", "prod", "settings_production", "settings_prod")
REQUIREMENTS_CANDIDATES = (
    "requirements/production.txt",
    "requirements/prod.txt",
    "requirements-production.txt",
    "requirements-prod.txt",
    "requirements/base.txt",
    "requirements.txt",
)
LOCK_HINTS = {
    "poetry.lock": "poetry export --without-hashes -f requirements.txt -o requirements.txt (or with hashes)",
    "uv.lock": "uv export --format requirements-txt -o requirements.txt",
    "Pipfile.lock": "pipenv requirements > requirements.txt",
    "pdm.lock": "pdm export -o requirements.txt",
}


class ProjectError(Exception):
    """A problem with the project's tree, with a message that says what to set."""


# ---------------------------------------------------------------------------------------------
# Requirement strings and versions
# ---------------------------------------------------------------------------------------------
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def normalize(name):
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text):
    """'gunicorn[gevent]==23.0 ; python_version>"3"' -> ('gunicorn', '==23.0'); None if no name."""
    text = text.split(";", 1)[0].strip()
    if not text or text.startswith(("-", ".", "/")) or "://" in text.split("@")[0]:
        return None
    match = _NAME.match(text)
    if not match:
        return None
    name, _extras, rest = match.groups()
    rest = rest.strip()
    if rest.startswith("@"):
        return normalize(name), rest  # a direct reference: never an exact version
    return normalize(name), rest.replace(" ", "")


def version_tuple(text):
    """The release segment of a version ('27.0.1rc1' -> (27, 0, 1)); None when unparsable."""
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)", str(text))
    if not match:
        return None
    parts = [int(p) for p in match.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def exact_pin(spec):
    """The version of an exact pin ('==23.0.0', '===23.0'), else None."""
    match = re.fullmatch(r"===?([^,*=<>!~]+)", spec or "")
    return match.group(1) if match else None


def _compare(version, op, target):
    if target.endswith(".*"):
        prefix = version_tuple(target[:-2]) or ()
        padded = version + (0,) * max(0, len(prefix) - len(version))
        equal = padded[: len(prefix)] == prefix
        return equal if op == "==" else not equal if op == "!=" else True
    other = version_tuple(target)
    if other is None:
        return True
    if op == "~=":
        release = [int(p) for p in target.split(".") if p.isdigit()]
        prefix = tuple(release[:-1]) if len(release) > 1 else tuple(release)
        return version >= other and version[: len(prefix)] == prefix
    return {
        "==": version == other, "===": version == other, "!=": version != other,
        ">=": version >= other, "<=": version <= other, ">": version > other, "<": version < other,
    }.get(op, True)


def satisfies(version, spec):
    """Does `version` (text) satisfy the specifier set `spec` ('>=3.11,<4')? Release segments only."""
    parsed = version_tuple(version)
    if parsed is None or not spec or spec.startswith("@"):
        return True
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        match = re.match(r"^(===|==|!=|~=|>=|<=|>|<)\s*(.+)$", clause)
        if match and not _compare(parsed, match.group(1), match.group(2).strip()):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Requirements files
# ---------------------------------------------------------------------------------------------
def read_requirements(path, read, seen=None):
    """Requirements of a pip requirements file, following -r/-c includes.

    Returns {'requirements': {name: (spec, file)}, 'hashes': bool, 'files': [paths], 'texts': [...]}."""
    seen = seen if seen is not None else []
    result = {"requirements": {}, "hashes": False, "files": [], "texts": []}
    if path in seen:
        return result
    seen.append(path)
    text = read(path)
    if text is None:
        raise ProjectError(f"{path} is included by the requirements but does not exist")
    result["files"].append(path)
    result["texts"].append(text)
    logical = re.sub(r"\\\r?\n", " ", text)
    for raw in logical.splitlines():
        line = re.split(r"(^|\s)#", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        if "--hash" in line:
            result["hashes"] = True
        include = re.match(r"^(-r|--requirement|-c|--constraint)\s*=?\s*(\S+)", line)
        if include:
            child = posixpath.normpath(posixpath.join(posixpath.dirname(path), include.group(2)))
            sub = read_requirements(child, read, seen)
            for name, value in sub["requirements"].items():
                result["requirements"].setdefault(name, value)
            result["hashes"] = result["hashes"] or sub["hashes"]
            result["files"] += sub["files"]
            result["texts"] += sub["texts"]
            continue
        if line.startswith("-"):
            continue
        requirement = parse_requirement(re.split(r"\s--hash", line)[0])
        if requirement:
            result["requirements"].setdefault(requirement[0], (requirement[1], path))
    return result


def _toml(text):
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # pragma: no cover - Debian 12 and 13 have it
        return None
    try:
        return tomllib.loads(text)
    except Exception:  # noqa: BLE001 - an unreadable pyproject is treated as absent
        return None


def detect_requirements(files, read, requested="", roots=("",)):
    """Which requirements the release installs.

    requested: python_app_requirements_file ('' = find it, 'none' = nothing). Returns
    {'file', 'kind': 'requirements'|'pyproject'|'none', 'requirements', 'hashes', 'files', 'digest'}."""
    files = set(files)
    if requested == "none":
        return {"file": "", "kind": "none", "requirements": {}, "hashes": False, "files": [], "digest": _digest([])}
    candidates = [requested] if requested else [posixpath.join(root, c) if root else c
                                                for root in roots for c in (*REQUIREMENTS_CANDIDATES, "pyproject.toml")]
    for candidate in candidates:
        if candidate not in files:
            continue
        if candidate.endswith(".toml"):
            data = _toml(read(candidate) or "") or {}
            dependencies = (data.get("project") or {}).get("dependencies")
            if dependencies is None:
                if requested:
                    raise ProjectError(f"python_app_requirements_file={requested} has no [project] dependencies")
                continue
            requirements = {}
            for entry in dependencies:
                parsed = parse_requirement(entry)
                if parsed:
                    requirements.setdefault(parsed[0], (parsed[1], candidate))
            return {"file": candidate, "kind": "pyproject", "requirements": requirements, "hashes": False,
                    "files": [candidate], "lines": list(dependencies),
                    "digest": _digest([json.dumps(list(dependencies))])}
        parsed = read_requirements(candidate, read)
        return {"file": candidate, "kind": "requirements", "requirements": parsed["requirements"],
                "hashes": parsed["hashes"], "files": parsed["files"], "digest": _digest(parsed["texts"])}
    if requested:
        raise ProjectError(f"python_app_requirements_file={requested} does not exist in the source: set it to the "
                           f"project's requirements file (relative to the source root), or to none")
    locks = [f for f in LOCK_HINTS if f in files]
    hint = f" It has {locks[0]}: export it first ({LOCK_HINTS[locks[0]]})." if locks else ""
    raise ProjectError("no requirements found in the source (looked for "
                       + ", ".join((*REQUIREMENTS_CANDIDATES, "pyproject.toml [project] dependencies"))
                       + "): set python_app_requirements_file to the project's file, or to none when the project "
                       + "needs nothing but python_app_pip_extra_packages." + hint)


def _digest(texts):
    sha = hashlib.sha256()
    for text in texts:
        sha.update(text.encode("utf-8"))
        sha.update(b"\0")
    return sha.hexdigest()


# ---------------------------------------------------------------------------------------------
# The app server's packages against the project's own pins
# ---------------------------------------------------------------------------------------------
def resolve_server_packages(server_packages, min_versions, project):
    """The server packages the role adds to pip's command line, given the project's requirements.

    A project that pins a server package (gunicorn, uvicorn, uvicorn-worker) keeps its pin when
    it satisfies min_versions; a pin or range that excludes what the server role needs fails
    here, before pip, naming the variable. With hashes (--require-hashes) every server package
    must come from the project's own file. Returns (packages, notes); raises ProjectError."""
    packages, notes = [], []
    requirements = project.get("requirements", {})
    source = project.get("file") or "the requirements"
    for package in server_packages:
        parsed = parse_requirement(package)
        if not parsed:
            packages.append(package)
            continue
        name, ours = parsed
        minimum = str((min_versions or {}).get(name, "") or "")
        if name not in requirements:
            if project.get("hashes"):
                raise ProjectError(
                    f"{source} pins with hashes (pip --require-hashes), so every package must be in it with its "
                    f"hashes: add {package} and its dependencies (e.g. uv pip compile --generate-hashes), or set "
                    f"python_app_server_packages to what the file provides.")
            packages.append(package)
            continue
        theirs, where = requirements[name]
        pinned = exact_pin(theirs)
        if pinned is not None:
            if minimum and not satisfies(pinned, ">=" + minimum):
                raise ProjectError(
                    f"{where} pins {name}=={pinned}, older than {minimum} that the app server role needs: raise the "
                    f"pin to {minimum} or later, or remove it (the role then installs {package}); to install "
                    f"other server packages set python_app_server_packages.")
            notes.append(f"{name}: the project's pin {name}=={pinned} ({where}) is used instead of {package}")
            continue
        our_version = exact_pin(ours)
        if our_version is not None and not satisfies(our_version, theirs):
            raise ProjectError(
                f"{where} asks for {name}{theirs}, which excludes {package} that the role installs: pin a version "
                f"{('>= ' + minimum + ' ') if minimum else ''}in {where} (the role then uses yours), or set "
                f"python_app_server_packages.")
        packages.append(package)
    return packages, notes


# ---------------------------------------------------------------------------------------------
# Python version
# ---------------------------------------------------------------------------------------------
def detect_python(files, read, roots=("",)):
    """(specifier, file) of the Python version the project declares, or ('', '')."""
    files = set(files)
    for root in roots:
        def join(path, base=root):
            return posixpath.join(base, path) if base else path
        if join("pyproject.toml") in files:
            data = _toml(read(join("pyproject.toml")) or "") or {}
            spec = (data.get("project") or {}).get("requires-python")
            if spec:
                return spec.replace(" ", ""), join("pyproject.toml")
        if join(".python-version") in files:
            text = (read(join(".python-version")) or "").strip().splitlines()
            match = re.match(r"^(?:python-?|cpython-?)?(\d+\.\d+)", text[0] if text else "")
            if match:
                return ">=" + match.group(1), join(".python-version")
        if join("runtime.txt") in files:
            match = re.search(r"python-(\d+\.\d+)", read(join("runtime.txt")) or "")
            if match:
                return ">=" + match.group(1), join("runtime.txt")
    return "", ""


def python_problem(version, spec, source, interpreter, variable="python_app_python"):
    """A message when the interpreter's version does not satisfy the project's, else ''."""
    if not spec or not version or satisfies(version, spec):
        return ""
    return (f"the project needs Python {spec} ({source}) but {variable} ({interpreter}) is Python {version}: "
            f"install a matching interpreter on the host and set {variable} to it, use a Debian release that "
            f"ships one, or set python_app_python_version if the declaration is wrong.")


PIP_PYTHON_ERROR = re.compile(r"(?:Package|package) '?([A-Za-z0-9._-]+)'? requires a different Python: "
                              r"([0-9.]+) not in '([^']+)'")


# A failed install worth one more try: the index or a download was unreachable, slow or cut off
# (pip's and uv's own words). A wrong pin, a hash mismatch or a build error is not retried.
NETWORK_ERROR = re.compile(
    r"ReadTimeoutError|ConnectTimeoutError|Read timed out|Connection broken|IncompleteRead|ConnectionResetError"
    r"|Connection reset by peer|Temporary failure in name resolution|Retrying \(Retry\("
    r"|Request failed after \d+ retr|operation timed out|error sending request for url"
    r"|connection closed before message completed|error decoding response body|request or response body error")


def pip_network_error(output):
    """True when pip's or uv's output says the failure came from the network, not from the request."""
    return bool(NETWORK_ERROR.search(output or ""))


def explain_pip_error(output, interpreter, variable="python_app_python"):
    """One line for pip's 'requires a different Python' (and 'No matching distribution'), else ''."""
    match = PIP_PYTHON_ERROR.search(output or "")
    if match:
        package, version, spec = match.groups()
        return (f"{package} requires Python {spec} but {variable} ({interpreter}) is Python {version}: install a "
                f"matching interpreter and set {variable}, or pin an older {package} in the requirements.")
    ignored = re.findall(r"Ignored the following versions that require a different python version: (.+)",
                         output or "")
    missing = re.search(r"No matching distribution found for (\S+)", output or "")
    if missing and ignored:
        return (f"no version of {missing.group(1)} supports {variable} ({interpreter}); pip ignored: "
                f"{ignored[0][:300]}. Install a newer interpreter and set {variable}, or pin an older version.")
    return ""


# ---------------------------------------------------------------------------------------------
# Layout: manage.py, settings module, WSGI/ASGI entry points
# ---------------------------------------------------------------------------------------------
def _skipped(path):
    return any(part in SKIP_DIRS for part in path.split("/")[:-1])


def _module_file(files, root, module):
    base = posixpath.join(root, *module.split(".")) if root else posixpath.join(*module.split("."))
    if base + ".py" in files:
        return base + ".py"
    if posixpath.join(base, "__init__.py") in files:
        return posixpath.join(base, "__init__.py")
    return ""


def _is_package(files, root, module):
    return _module_file(files, root, module).endswith("__init__.py")


def detect_layout(files, read, django_root="", settings_module=""):
    """Where manage.py lives, which settings module to start from, the WSGI/ASGI entry points.

    django_root and settings_module are the user's overrides ('' = find). Returns
    {'django_root', 'settings_module', 'project', 'wsgi_module', 'asgi_module', 'declared'}."""
    files = set(f for f in files if not _skipped(f))
    if not django_root:
        manages = sorted((f for f in files if posixpath.basename(f) == "manage.py"),
                         key=lambda f: (f.count("/"), f))
        if manages:
            django_root = posixpath.dirname(manages[0])
    declared = ""
    manage = posixpath.join(django_root, "manage.py") if django_root else "manage.py"
    if manage in files:
        match = re.search(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([A-Za-z0-9_.]+)['"]""", read(manage) or "")
        declared = match.group(1) if match else ""
    module = settings_module
    if not module:
        module = declared
        if module:
            parts = module.split(".")
            if _is_package(files, django_root, module):
                for name in PRODUCTION_SETTINGS:
                    if _module_file(files, django_root, f"{module}.{name}"):
                        module = f"{module}.{name}"
                        break
            elif parts[-1] in DEV_SETTINGS and len(parts) > 1:
                parent = ".".join(parts[:-1])
                for name in PRODUCTION_SETTINGS:
                    if _module_file(files, django_root, f"{parent}.{name}"):
                        module = f"{parent}.{name}"
                        break
        else:
            settings = sorted((f for f in files if posixpath.basename(f) == "settings.py"
                               and (not django_root or f.startswith(django_root + "/"))),
                              key=lambda f: (f.count("/"), f))
            if settings:
                relative = settings[0][len(django_root) + 1:] if django_root else settings[0]
                module = relative[:-3].replace("/", ".")
    if not module:
        raise ProjectError("no Django project found in the source (no manage.py, no settings.py): set "
                           "python_app_django_root (the directory of manage.py) and python_app_django_settings_module.")
    if not _module_file(files, django_root, module):
        raise ProjectError(f"the settings module {module} is not in the source under "
                           f"'{django_root or '.'}': set python_app_django_settings_module "
                           f"(and python_app_django_root, the directory holding manage.py).")
    project, wsgi, asgi = "", "", ""
    parts = module.split(".")
    for end in range(len(parts) - 1, 0, -1):
        package = ".".join(parts[:end])
        if _module_file(files, django_root, package + ".wsgi") or _module_file(files, django_root, package + ".asgi"):
            project = package
            break
    if project:
        if _module_file(files, django_root, project + ".wsgi"):
            wsgi = project + ".wsgi:application"
        if _module_file(files, django_root, project + ".asgi"):
            asgi = project + ".asgi:application"
    return {"django_root": django_root, "settings_module": module, "project": project or parts[0],
            "wsgi_module": wsgi, "asgi_module": asgi, "declared": declared}


def inspect_tree(files, read, requirements_file="", django_root="", settings_module="", django=True):
    """Everything python_app derives from a source tree; raises ProjectError with what to set."""
    layout = detect_layout(files, read, django_root, settings_module) if django else {
        "django_root": django_root, "settings_module": settings_module, "project": "", "wsgi_module": "",
        "asgi_module": "", "declared": ""}
    roots = ("",) + ((layout["django_root"],) if layout["django_root"] else ())
    requirements = detect_requirements(files, read, requirements_file, roots)
    python_spec, python_source = detect_python(files, read, roots)
    return {"layout": layout, "requirements": requirements,
            "python": {"spec": python_spec, "source": python_source}}
