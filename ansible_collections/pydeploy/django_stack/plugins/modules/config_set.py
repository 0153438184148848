#!/usr/bin/python
# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Stage a set of files, validate them together, move the changed ones live atomically."""

from __future__ import annotations

DOCUMENTATION = r"""
module: config_set
author: pydeploy maintainers (@pydeploy)
version_added: 0.2.0
short_description: Stage a set of configuration files, check them with their daemon's validator, then go live
description:
  - Renders a set of files on the controller (templates of the role with the task's variables, files of the role,
    or literal content), hands them to the host in one module call, stages them under one staging root, runs the
    validator once on the staged set, and only when it passes moves the files that changed live - each one
    atomically (a temporary file in the destination directory, owner, group and mode set, flushed to disk, renamed
    over the live file).
  - The validator runs only when some file's content differs from the live one, or a file is to be removed
    (O(validate_always) runs it every time). Files whose owner, group or mode alone differ are corrected without
    validation.
  - When validation fails, nothing live is touched and the task fails with the validator's output.
  - Files of a managed directory that are not in the set can be removed (O(purge)); they are absent from the
    staged set, so the validator sees the configuration without them.
  - Without a validator this is an atomic, idempotent multi-file copy that reports which files changed.
  - The staging directory (mode 0700 under O(stage_root)) is removed afterwards, whatever happened.
  - The action plugin of the same name does the rendering; the module receives the rendered files.
options:
  files:
    description: The set of files.
    type: list
    elements: dict
    required: true
    suboptions:
      dest:
        description: Live path of the file. Written as a regular file (a symlink there is replaced).
        type: path
        required: true
      template:
        description: Template of the role (C(templates/)), rendered on the controller with the task's variables.
          One of O(files[].template), O(files[].src), O(files[].content) unless O(files[].state=absent).
        type: str
      src:
        description: File of the role (C(files/)), copied as it is.
        type: str
      content:
        description: The file's content (the action plugin puts the rendered template or the role's file here).
        type: str
      content_encoding:
        description: How O(files[].content) is encoded - C(utf-8) text, or C(base64) for binary content.
        type: str
        choices: [utf-8, base64]
        default: utf-8
      owner:
        description: Owner (name or number).
        type: str
        default: root
      group:
        description: Group (name or number).
        type: str
        default: root
      mode:
        description:
          - Mode as an octal string (C("0640")) or a number (YAML C(0640) arrives as the integer 416 and means
            the same mode). Symbolic modes are not accepted.
        type: raw
        default: "0644"
      stage_as:
        description:
          - Path of the file inside the staging directory, relative (default - the basename of O(files[].dest)).
            Use it to give the validator the layout it expects (e.g. C(sites-enabled/app.conf)).
        type: str
      validate:
        description:
          - A check of this file alone, run on the staged copy when its content changed (C(%s) = the staged
            file, C(%{stage}) = the staging directory). A command line (split like a shell would, no shell
            involved) or a list of arguments.
        type: raw
      state:
        description: C(absent) removes the live file (a change that is validated like any other).
        type: str
        choices: [present, absent]
        default: present
  validate:
    description:
      - The check of the whole staged set, e.g. C([systemd-analyze, verify, "%{stage}/app.service",
        "%{stage}/app.socket"]) or C([nginx, -t, -c, "%{stage}/nginx.conf"]). C(%{stage}) in any argument is
        replaced by the staging directory, which is also the working directory and C($PYDEPLOY_STAGE).
      - A list of arguments, or a command line split like a shell would (no shell involved).
    type: raw
  validate_always:
    description: Run the validators even when no file differs from the live one.
    type: bool
    default: false
  validate_fail_on:
    description:
      - Regular expression searched in the validator's standard output and error; a match fails the validation
        even when the validator exits with 0 (some report errors and still succeed).
    type: str
  stage_with:
    description:
      - Live files or directories copied into the staging directory before validation, because the staged files
        refer to them (relative includes, a unit's companion). A path (staged under its basename) or
        C({src, stage_as, required}) (C(required=false) skips a missing one).
    type: list
    elements: raw
    default: []
  purge:
    description:
      - Managed directories - files in C(path) matching C(patterns) (shell globs, default C(*)) that are not in the
        set are removed when the set goes live.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory (not searched recursively).
        type: path
        required: true
      patterns:
        description: Globs of the file names managed there.
        type: list
        elements: str
        default: ["*"]
  directories:
    description: Directories created (after validation) or corrected before the files go live.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory.
        type: path
        required: true
      owner:
        description: Owner.
        type: str
        default: root
      group:
        description: Group.
        type: str
        default: root
      mode:
        description: Mode (as for files).
        type: raw
        default: "0755"
  validate_user:
    description:
      - Run every validator of the set (O(validate) and O(files[].validate)) as this user (name or number)
        instead of the module's user (root), with its own group and supplementary groups (as C(initgroups) gives
        them) and a minimal environment (C(PATH), the locale, C(HOME), C(USER), C(LOGNAME), C($PYDEPLOY_STAGE)).
        The privileges are dropped in the child before the validator starts (supplementary groups, group, user).
      - Use it for a validator that runs third-party code, e.g. a release's interpreter importing its
        packages - give it the user that runs that code anyway (the service's user), never root.
      - The staging directory is then readable (not writable) by O(validate_group); each staged file keeps the
        owner, group and mode it gets live, so the validator reads what the service will be able to read
        (a C(0640) file of the service's group, yes; a C(0600) file of root, no). Every directory above
        O(stage_root) must be searchable by that user.
    type: str
  validate_group:
    description:
      - Group the validators run with when O(validate_user) is set (name or number); default - the user's
        primary group. The user's supplementary groups are kept either way.
    type: str
  stage_root:
    description:
      - Where staging directories are made (each run gets its own, mode 0700 - or 0750 with the group of
        O(validate_group) when O(validate_user) is set - removed afterwards). The root itself is mode 0711 -
        nobody but root can list it.
    type: path
    default: /run/pydeploy/stage
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reports what would change; validators do not run in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Per-file diff of text files up to 64 KiB; none for no_log tasks.
notes:
  - Every file is read whole into memory; meant for configuration files, not for data.
"""

EXAMPLES = r"""
- name: Units of the app, verified together before they go live
  pydeploy.django_stack.config_set:
    files:
      - dest: /etc/systemd/system/app.service
        content: "{{ service_unit | pydeploy.django_stack.systemd_unit }}"
      - dest: /etc/systemd/system/app.socket
        template: app.socket.j2
    validate: [/usr/bin/systemd-analyze, verify, --man=no, "%{stage}/app.service", "%{stage}/app.socket"]
    validate_fail_on: "(?i)(error|failed|unknown (key|section)|invalid)"
  register: units
  notify: app units changed

- name: gunicorn.conf.py, checked by the release's Gunicorn as the app user, never as root
  pydeploy.django_stack.config_set:
    directories:
      - path: /etc/gunicorn
    files:
      - dest: /etc/gunicorn/app.conf.py
        template: gunicorn.conf.py.j2
        group: app
        mode: "0640"
        validate: [/srv/app/current/venv/bin/python, /usr/local/lib/pydeploy/check_gunicorn_conf.py, "%s"]
    validate_user: app
    validate_group: app
  notify: gunicorn reload

- name: nginx sites, the whole configuration tested with nginx -t, unmanaged sites removed
  pydeploy.django_stack.config_set:
    files:
      - dest: /etc/nginx/nginx.conf
        template: nginx.conf.j2
      - dest: /etc/nginx/sites-enabled/app.conf
        template: site.conf.j2
        stage_as: sites-enabled/app.conf
    stage_with: [/etc/nginx/mime.types]
    purge:
      - path: /etc/nginx/sites-enabled
        patterns: ["*.conf"]
    validate: [nginx, -t, -q, -c, "%{stage}/nginx.conf"]
"""

RETURN = r"""
changed_files:
  description: Live files created or changed (content, owner, group or mode).
  returned: always
  type: list
  elements: str
content_changed:
  description: The subset of O(files) whose content changed.
  returned: always
  type: list
  elements: str
removed:
  description: Live files removed (O(files[].state=absent) and O(purge)).
  returned: always
  type: list
  elements: str
changed_directories:
  description: Directories created or corrected.
  returned: always
  type: list
  elements: str
validated:
  description: The validators ran on the staged set and passed.
  returned: always
  type: bool
validator_rc:
  description: Exit status of the set's validator (none when it did not run).
  returned: always
  type: int
validator_stdout:
  description: Its standard output.
  returned: always
  type: str
validator_stderr:
  description: Its standard error.
  returned: always
  type: str
file_validators:
  description: The per-file validators that ran - C(dest), C(cmd), C(rc), C(stdout), C(stderr).
  returned: always
  type: list
  elements: dict
"""

import base64
import fnmatch
import grp
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text

DIFF_MAX = 64 * 1024


class ConfigSetError(Exception):
    def __init__(self, msg, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


def parse_mode(value, where="mode"):
    """An octal string ("0640", "640", "0o640") or a number (YAML 0640 -> 416) -> int."""
    if isinstance(value, bool):
        raise ConfigSetError(f"{where}: {value!r} is not a mode")
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{1,4}", value):
        text = value
        mode = int(text[2:] if text.startswith("0o") else text, 8)
    else:
        raise ConfigSetError(f"{where}: {value!r} is not an octal mode such as \"0640\"")
    if not 0 <= mode <= 0o7777:
        raise ConfigSetError(f"{where}: {value!r} is out of range for a mode")
    return mode


def resolve_user(name):
    text = str(name)
    if text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise ConfigSetError(f"owner {text!r} does not exist on the host") from None


def resolve_group(name):
    text = str(name)
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ConfigSetError(f"group {text!r} does not exist on the host") from None


def command(spec, replacements, where):
    """A validator spec (list, or command line string) -> argv with the placeholders replaced."""
    if isinstance(spec, str):
        argv = shlex.split(spec)
    elif isinstance(spec, (list, tuple)) and spec:
        argv = [str(a) for a in spec]
    else:
        raise ConfigSetError(f"{where} must be a list of arguments or a command line")
    if not argv:
        raise ConfigSetError(f"{where} is empty")
    out = []
    for arg in argv:
        for key, value in replacements.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


def resolve_identity(user, group=None):
    """validate_user/validate_group -> {name, uid, gid, groups, home}: the identity a validator runs as.

    groups are the supplementary groups initgroups(3) would give (the user's groups in the group
    database, plus gid); a number without a passwd entry gets only gid (and then needs a group)."""
    text = str(user).strip()
    if not text:
        raise ConfigSetError("validate_user is empty")
    try:
        entry = pwd.getpwuid(int(text)) if text.isdigit() else pwd.getpwnam(text)
    except KeyError:
        entry = None
        if not text.isdigit():
            raise ConfigSetError(f"validate_user {text!r} does not exist on the host") from None
    uid = entry.pw_uid if entry else int(text)
    if group is not None and str(group).strip():
        gtext = str(group).strip()
        if gtext.isdigit():
            gid = int(gtext)
        else:
            try:
                gid = grp.getgrnam(gtext).gr_gid
            except KeyError:
                raise ConfigSetError(f"validate_group {gtext!r} does not exist on the host") from None
    elif entry is not None:
        gid = entry.pw_gid
    else:
        raise ConfigSetError(f"validate_user {text} has no passwd entry: set validate_group")
    if uid == 0:
        raise ConfigSetError("validate_user is root: leave it unset to validate as root")
    groups = sorted(set(os.getgrouplist(entry.pw_name, gid)) if entry else {gid})
    return {"name": entry.pw_name if entry else text, "uid": uid, "gid": gid, "groups": groups,
            "home": entry.pw_dir if entry and entry.pw_dir else "/"}


LOCALE_VARS = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES")


def identity_env(identity, extra, base=None):
    """The environment of a validator run as identity: PATH and the locale of base (the module's), the
    user's HOME/USER/LOGNAME, then extra; nothing else of root's environment reaches it."""
    base = os.environ if base is None else base
    env = {"PATH": base.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    env.update({key: base[key] for key in LOCALE_VARS if base.get(key)})
    env.update(HOME=identity["home"], USER=identity["name"], LOGNAME=identity["name"])
    env.update(extra)
    return env


def run_as(argv, cwd, env, identity):
    """Run argv as identity: the child sets its supplementary groups, group, then user, before exec."""
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, close_fds=True, check=False, user=identity["uid"],
                              group=identity["gid"], extra_groups=identity["groups"])
    except (OSError, subprocess.SubprocessError) as exc:  # not found, not executable: a failed validation
        return 127, b"", to_text(f"{argv[0]}: {exc}").encode()
    return proc.returncode, proc.stdout, proc.stderr


def searchable_by(path, identity):
    """The first directory of path and its parents the identity cannot search (x), or None."""
    path = os.path.abspath(path)
    while True:
        st = os.stat(path)
        if st.st_uid == identity["uid"]:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in identity["groups"] or st.st_gid == identity["gid"]:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _safe_relative(path, where):
    norm = os.path.normpath(path)
    if os.path.isabs(norm) or norm == "." or norm.startswith(".."):
        raise ConfigSetError(f"{where}: {path!r} must be a relative path inside the staging directory")
    return norm


class ConfigSet:
    """The logic, with the command runner injected: run(argv, cwd, env) -> (rc, stdout, stderr)."""

    def __init__(self, run, check_mode=False, want_diff=False, run_as=run_as):
        self.run = run
        self.run_as = run_as
        self.check_mode = check_mode
        self.want_diff = want_diff

    # -- planning ---------------------------------------------------------------------------------
    def plan(self, files, directories, purge):
        planned, stage_names, dests = [], set(), set()
        for i, spec in enumerate(files):
            where = f"files[{i}]"
            dest = spec.get("dest")
            if not dest or not os.path.isabs(dest):
                raise ConfigSetError(f"{where}.dest must be an absolute path")
            dest = os.path.normpath(dest)
            if dest in dests:
                raise ConfigSetError(f"{where}.dest {dest} is in the set twice")
            dests.add(dest)
            state = spec.get("state") or "present"
            item = {"dest": dest, "state": state, "index": i}
            live = self._live(dest)
            item["live"] = live
            if state == "absent":
                item["remove"] = live is not None
                planned.append(item)
                continue
            if spec.get("template") or spec.get("src"):
                raise ConfigSetError(f"{where}: template and src are rendered by the action plugin; call the module "
                                     "through the pydeploy.django_stack.config_set action")
            if spec.get("content") is None:
                raise ConfigSetError(f"{where} ({dest}) needs template, src or content")
            if spec.get("content_encoding") == "base64":
                data = base64.b64decode(spec["content"])
            else:
                data = spec["content"].encode("utf-8")
            stage_as = _safe_relative(spec.get("stage_as") or os.path.basename(dest), f"{where}.stage_as")
            if stage_as in stage_names:
                raise ConfigSetError(f"{where}: two files are staged as {stage_as}; set stage_as")
            stage_names.add(stage_as)
            mode = parse_mode(spec.get("mode", "0644"), f"{where}.mode")
            uid, gid = resolve_user(spec.get("owner") or "root"), resolve_group(spec.get("group") or "root")
            item.update(data=data, stage_as=stage_as, mode=mode, uid=uid, gid=gid, validate=spec.get("validate"))
            item["content_differs"] = live is None or live["data"] != data
            item["attrs_differ"] = live is not None and (
                live["mode"] != mode or live["uid"] != uid or live["gid"] != gid)
            planned.append(item)

        dirs = []
        for i, spec in enumerate(directories):
            path = os.path.normpath(spec["path"])
            mode = parse_mode(spec.get("mode", "0755"), f"directories[{i}].mode")
            uid, gid = resolve_user(spec.get("owner") or "root"), resolve_group(spec.get("group") or "root")
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = None
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise ConfigSetError(f"directories[{i}]: {path} exists and is not a directory")
            differs = st is None or (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) != (mode, uid, gid)
            dirs.append({"path": path, "mode": mode, "uid": uid, "gid": gid, "exists": st is not None,
                         "differs": differs})
        known_dirs = {d["path"] for d in dirs}
        for item in planned:
            parent = os.path.dirname(item["dest"])
            if item["state"] == "present" and not os.path.isdir(parent) and parent not in known_dirs:
                raise ConfigSetError(f"the directory of {item['dest']} does not exist (add it to directories)")

        purged = []
        present = {i["dest"] for i in planned if i["state"] == "present"}
        for i, spec in enumerate(purge):
            path = os.path.normpath(spec["path"])
            patterns = spec.get("patterns") or ["*"]
            if not os.path.isdir(path):
                continue
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if full in present or not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                    continue
                if os.path.islink(full) or os.path.isfile(full):
                    purged.append(full)
        return planned, dirs, purged

    @staticmethod
    def _live(dest):
        try:
            st = os.lstat(dest)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            raise ConfigSetError(f"{dest} is a directory")
        if stat.S_ISLNK(st.st_mode):
            return {"data": None, "mode": None, "uid": None, "gid": None, "link": True}
        with open(dest, "rb") as fh:
            data = fh.read()
        return {"data": data, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}

    # -- staging and validation -------------------------------------------------------------------
    @staticmethod
    def _stage_dirs(stage, path, gid):
        """Make the directories of path inside stage: 0700, or 0750 of gid (a validate_group reads)."""
        missing = []
        while path != stage and not os.path.isdir(path):
            missing.append(path)
            path = os.path.dirname(path)
        for directory in reversed(missing):
            os.mkdir(directory, 0o700)
            if gid is not None:
                os.chown(directory, -1, gid)
                os.chmod(directory, 0o750)

    def stage(self, root, planned, stage_with, identity=None):
        # 0711: a validator running as another user reaches its own staging directory by its name
        # (random), nobody but root lists the root or enters a 0700 staging directory.
        os.makedirs(root, mode=0o711, exist_ok=True)
        os.chmod(root, 0o711)
        gid = identity["gid"] if identity else None
        if identity:
            blocked = searchable_by(root, identity)
            if blocked:
                raise ConfigSetError(f"validate_user {identity['name']} cannot reach the staging root {root}: "
                                     f"{blocked} is not searchable by it (set stage_root elsewhere)")
        stage = os.path.join(root, uuid.uuid4().hex)
        os.mkdir(stage, 0o700)
        if gid is not None:
            os.chown(stage, -1, gid)
            os.chmod(stage, 0o750)
        for item in planned:
            if item["state"] != "present":
                continue
            path = os.path.join(stage, item["stage_as"])
            self._stage_dirs(stage, os.path.dirname(path), gid)
            with open(path, "wb") as fh:
                fh.write(item["data"])
            os.chmod(path, item["mode"])
            os.chown(path, item["uid"], item["gid"])
            item["staged"] = path
        for i, spec in enumerate(stage_with):
            if isinstance(spec, str):
                spec = {"src": spec}
            src = spec.get("src")
            if not src:
                raise ConfigSetError(f"stage_with[{i}] needs src")
            name = _safe_relative(spec.get("stage_as") or os.path.basename(os.path.normpath(src)), f"stage_with[{i}]")
            target = os.path.join(stage, name)
            if not os.path.exists(src):
                if spec.get("required", True):
                    raise ConfigSetError(f"stage_with[{i}]: {src} does not exist")
                continue
            if os.path.lexists(target):
                continue  # a file of the set staged there wins over the live copy
            self._stage_dirs(stage, os.path.dirname(target), gid)
            if os.path.isdir(src):
                shutil.copytree(src, target, symlinks=True)
            else:
                shutil.copy2(src, target)
        return stage

    def _run_validator(self, argv, stage, fail_on, what, identity=None):
        if identity:
            rc, out, err = self.run_as(argv, stage, identity_env(identity, {"PYDEPLOY_STAGE": stage}), identity)
        else:
            rc, out, err = self.run(argv, stage, {"PYDEPLOY_STAGE": stage})
        out, err = to_text(out or ""), to_text(err or "")
        matched = None
        if fail_on:
            match = re.search(fail_on, out + "\n" + err)
            matched = match.group(0) if match else None
        if rc != 0 or matched:
            reason = f"exit status {rc}" if rc != 0 else f"its output matched {fail_on!r} ({matched!r})"
            detail = (err.strip() or out.strip())[-3000:]
            who = f" as {identity['name']}" if identity else ""
            raise ConfigSetError(f"validation failed, nothing went live: {what} ({' '.join(argv)}){who}: {reason}: "
                                 f"{detail}",
                                 validator_rc=rc, validator_stdout=out, validator_stderr=err)
        return rc, out, err

    # -- going live ---------------------------------------------------------------------------------
    @staticmethod
    def write_atomic(dest, data, mode, uid, gid):
        directory = os.path.dirname(dest)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".pydeploy", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchown(fh.fileno(), uid, gid)
                os.fchmod(fh.fileno(), mode)
                os.fsync(fh.fileno())
            os.rename(tmp, dest)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _diff(self, item):
        live = item["live"]
        before = b"" if live is None or live.get("data") is None else live["data"]
        after = b"" if item["state"] == "absent" else item["data"]
        if len(before) > DIFF_MAX or len(after) > DIFF_MAX or b"\x00" in before + after:
            return {"before_header": item["dest"], "after_header": item["dest"],
                    "before": "(binary or large file)\n", "after": "(binary or large file)\n"}
        return {"before_header": item["dest"], "after_header": item["dest"],
                "before": before.decode("utf-8", "replace"), "after": after.decode("utf-8", "replace")}

    def apply(self, files, validate=None, validate_always=False, validate_fail_on=None, stage_with=(),
              purge=(), directories=(), stage_root="/run/pydeploy/stage", validate_user=None, validate_group=None):
        if validate_group and not validate_user:
            raise ConfigSetError("validate_group needs validate_user")
        planned, dirs, purged = self.plan(files, directories, purge)
        content = [i for i in planned if i["state"] == "present" and i["content_differs"]]
        attrs = [i for i in planned if i["state"] == "present" and not i["content_differs"] and i["attrs_differ"]]
        removals = [i for i in planned if i["state"] == "absent" and i["remove"]]
        dir_changes = [d for d in dirs if d["differs"]]
        result = {
            "changed_files": [i["dest"] for i in content + attrs],
            "content_changed": [i["dest"] for i in content],
            "removed": [i["dest"] for i in removals] + purged,
            "changed_directories": [d["path"] for d in dir_changes],
            "validated": False, "validator_rc": None, "validator_stdout": "", "validator_stderr": "",
            "file_validators": [],
        }
        result["changed"] = bool(result["changed_files"] or result["removed"] or result["changed_directories"])
        if self.want_diff:
            result["diff"] = [self._diff(i) for i in content + removals] + [
                {"before_header": p, "after_header": p, "before": "(present)\n", "after": "(removed)\n"}
                for p in purged]
        has_validators = validate is not None or any(i.get("validate") for i in planned)
        must_validate = has_validators and (validate_always or content or removals or purged)
        if self.check_mode or not (must_validate or result["changed"]):
            return result

        stage = None
        try:
            if must_validate:
                # Resolved only now: in check mode, or with nothing to validate, the user may not exist yet.
                identity = resolve_identity(validate_user, validate_group) if validate_user else None
                stage = self.stage(stage_root, planned, stage_with, identity)
                for item in planned:
                    if item["state"] != "present" or not item.get("validate"):
                        continue
                    if not (item["content_differs"] or validate_always):
                        continue
                    argv = command(item["validate"], {"%s": item["staged"], "%{stage}": stage},
                                   f"files[{item['index']}].validate")
                    rc, out, err = self._run_validator(argv, stage, validate_fail_on, item["dest"], identity)
                    result["file_validators"].append({"dest": item["dest"], "cmd": argv, "rc": rc, "stdout": out,
                                                      "stderr": err})
                if validate is not None:
                    argv = command(validate, {"%{stage}": stage}, "validate")
                    rc, out, err = self._run_validator(argv, stage, validate_fail_on, "the set", identity)
                    result.update(validator_rc=rc, validator_stdout=out, validator_stderr=err)
                result["validated"] = True
            self.go_live(dirs, content + attrs, removals, purged)
        finally:
            if stage:
                shutil.rmtree(stage, ignore_errors=True)
        return result

    def go_live(self, dirs, changes, removals, purged):
        for d in dirs:
            if not d["differs"]:
                continue
            if not d["exists"]:
                os.makedirs(d["path"], mode=d["mode"], exist_ok=True)
            os.chown(d["path"], d["uid"], d["gid"])
            os.chmod(d["path"], d["mode"])
        for item in changes:
            if item["content_differs"] or (item["live"] or {}).get("link"):
                self.write_atomic(item["dest"], item["data"], item["mode"], item["uid"], item["gid"])
            else:
                os.chown(item["dest"], item["uid"], item["gid"])
                os.chmod(item["dest"], item["mode"])
        for path in [i["dest"] for i in removals] + list(purged):
            if os.path.lexists(path):
                os.unlink(path)


def main():
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "list", "elements": "dict", "required": True, "options": {
                "dest": {"type": "path", "required": True},
                "template": {"type": "str"},
                "src": {"type": "str"},
                "content": {"type": "str"},
                "content_encoding": {"type": "str", "choices": ["utf-8", "base64"], "default": "utf-8"},
                "owner": {"type": "str", "default": "root"},
                "group": {"type": "str", "default": "root"},
                "mode": {"type": "raw", "default": "0644"},
                "stage_as": {"type": "str"},
                "validate": {"type": "raw"},
                "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            }},
            "validate": {"type": "raw"},
            "validate_always": {"type": "bool", "default": False},
            "validate_fail_on": {"type": "str"},
            "stage_with": {"type": "list", "elements": "raw", "default": []},
            "purge": {"type": "list", "elements": "dict", "default": [],
                      "options": {"path": {"type": "path", "required": True},
                                  "patterns": {"type": "list", "elements": "str", "default": ["*"]}}},
            "directories": {"type": "list", "elements": "dict", "default": [],
                            "options": {"path": {"type": "path", "required": True},
                                        "owner": {"type": "str", "default": "root"},
                                        "group": {"type": "str", "default": "root"},
                                        "mode": {"type": "raw", "default": "0755"}}},
            "validate_user": {"type": "str"},
            "validate_group": {"type": "str"},
            "stage_root": {"type": "path", "default": "/run/pydeploy/stage"},
        },
        supports_check_mode=True,
    )
    params = module.params

    def run(argv, cwd, env):
        return module.run_command(argv, cwd=cwd, environ_update=env)

    worker = ConfigSet(run, check_mode=module.check_mode, want_diff=module._diff and not module.no_log)
    try:
        result = worker.apply(params["files"], validate=params["validate"], validate_always=params["validate_always"],
                              validate_fail_on=params["validate_fail_on"], stage_with=params["stage_with"],
                              purge=params["purge"], directories=params["directories"],
                              stage_root=params["stage_root"], validate_user=params["validate_user"],
                              validate_group=params["validate_group"])
    except ConfigSetError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.extra)
    except OSError as exc:
        module.fail_json(msg=f"config_set: {exc}", changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
