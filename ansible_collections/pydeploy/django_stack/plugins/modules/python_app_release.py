#!/usr/bin/python
# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Module python_app_release: the release layout of python_app on the host, one round trip each."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: python_app_release
short_description: Layout, build directories, sealing, switching and rolling back python_app releases
description:
  - C(state=inspect) makes the layout's directories and the secret key file (once), and reports what is
    live (C(current), C(previous)), whether the release and its virtualenv are built; with C(prepare) it
    starts an unbuilt release (and virtualenv) from empty directories owned by the build user.
  - C(state=sealed) links the release to its virtualenv, hands both trees to root (group of the app, nothing
    for other users) and marks the release as built.
  - C(state=current) points C(previous) at the live release and C(current) at this one (atomic renames), then
    removes releases beyond C(keep) and virtualenvs no kept release uses. C(state=rollback) swaps them back.
version_added: 0.2.0
options:
  state:
    description: What to do (see above).
    type: str
    required: true
    choices: [inspect, sealed, current, rollback]
  root:
    description: The app's root (C(releases/), C(venvs/), C(current), C(previous)).
    type: path
    required: true
  release:
    description: Release id (directory under C(releases/)).
    type: str
    default: ""
  venv_key:
    description: Name of the release's virtualenv under C(venvs/).
    type: str
    default: ""
  group:
    description: Group of the app (reads the release).
    type: str
    default: root
  build_user:
    description: Owner of a release while it is built.
    type: str
    default: ""
  prepare:
    description: Start an unbuilt release from empty directories.
    type: bool
    default: false
  directories:
    description: Directories to make - C(path), C(owner), C(group), C(mode).
    type: list
    elements: dict
    default: []
  secret_file:
    description: File of the generated secret key (made once, 0640 root:group).
    type: path
    default: ""
  keep:
    description: Built releases kept (current, previous and this one never removed; unfinished builds always).
    type: int
    default: 5
  marker:
    description: File marking a built release.
    type: str
    default: .pydeploy-release-ready
attributes:
  check_mode:
    support: full
    description: Reports the state; nothing is created, moved or removed.
  diff_mode:
    support: none
    description: No diff.
author: pydeploy maintainers (@pydeploy)
"""

EXAMPLES = r"""
- name: Layout and state of the release
  pydeploy.django_stack.python_app_release:
    state: inspect
    root: /srv/shop
    release: 3f2a9c1b7d10
    venv_key: v-0a1b2c3d4e5f
    group: shop
    build_user: shop-build
    prepare: true
    secret_file: /etc/shop/secret_key
  register: state
  no_log: true

- name: Switch
  pydeploy.django_stack.python_app_release:
    state: current
    root: /srv/shop
    release: 3f2a9c1b7d10
    venv_key: v-0a1b2c3d4e5f
"""

RETURN = r"""
---
current: {description: Release id current points to ("" if none), returned: always, type: str}
previous: {description: Release id previous points to ("" if none), returned: always, type: str}
built: {description: The release is built, returned: always, type: bool}
venv_built: {description: The release's virtualenv is built, returned: always, type: bool}
secret: {description: The generated secret key (no_log on the task), returned: with secret_file, type: str}
removed: {description: Releases and virtualenvs removed, returned: state=current, type: list}
"""

import grp
import os
import pwd
import secrets
import shutil
import string

from ansible.module_utils.basic import AnsibleModule

READY = ".pydeploy-venv-ready"


def _link_target(path):
    if not os.path.islink(path):
        return ""
    return os.path.basename(os.readlink(path).rstrip("/"))


def _symlink(target, path):
    """Point `path` at `target` with an atomic rename; True when it changed."""
    if os.path.islink(path) and os.readlink(path) == target:
        return False
    tmp = f"{path}.tmp-{os.getpid()}"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)
    return True


def _ensure_dir(path, owner, group, mode):
    changed = False
    if not os.path.isdir(path):
        os.makedirs(path)
        changed = True
    user = pwd.getpwnam(owner)
    uid, gid = user.pw_uid, (grp.getgrnam(group).gr_gid if group else user.pw_gid)
    info = os.stat(path)
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
        changed = True
    if info.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
        changed = True
    return changed


def _seal_tree(top, gid):
    """root:<group>, u=rwX,g=rX,o= for every entry (symlinks: owner only)."""
    for directory, dirs, files in os.walk(top):
        for name in [directory] + [os.path.join(directory, n) for n in dirs + files]:
            info = os.lstat(name)
            if (info.st_uid, info.st_gid) != (0, gid):
                os.lchown(name, 0, gid)
            if os.path.islink(name):
                continue
            executable = info.st_mode & 0o111 or os.path.isdir(name)
            mode = 0o750 if executable else 0o640
            if info.st_mode & 0o7777 != mode:
                os.chmod(name, mode)


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "required": True, "choices": ["inspect", "sealed", "current", "rollback"]},
            "root": {"type": "path", "required": True},
            "release": {"type": "str", "default": ""},
            "venv_key": {"type": "str", "default": "", "no_log": False},
            "group": {"type": "str", "default": "root"},
            "build_user": {"type": "str", "default": ""},
            "prepare": {"type": "bool", "default": False},
            "directories": {"type": "list", "elements": "dict", "default": []},
            "secret_file": {"type": "path", "default": ""},
            "keep": {"type": "int", "default": 5},
            "marker": {"type": "str", "default": ".pydeploy-release-ready"},
        },
        supports_check_mode=True,
    )
    p = module.params
    root = p["root"]
    releases, venvs = os.path.join(root, "releases"), os.path.join(root, "venvs")
    current, previous = os.path.join(root, "current"), os.path.join(root, "previous")
    release_dir = os.path.join(releases, p["release"]) if p["release"] else ""
    venv_dir = os.path.join(venvs, p["venv_key"]) if p["venv_key"] else ""
    result = {"changed": False, "removed": []}

    def report():
        result.update(
            current=_link_target(current), previous=_link_target(previous),
            built=bool(release_dir) and os.path.isfile(os.path.join(release_dir, p["marker"])),
            venv_built=bool(venv_dir) and os.path.isfile(os.path.join(venv_dir, READY)))

    if p["state"] == "inspect":
        if not module.check_mode:
            for entry in p["directories"]:
                mode = int(str(entry.get("mode", "0755")), 8)
                result["changed"] |= _ensure_dir(entry["path"], entry.get("owner", "root"),
                                                 entry.get("group", "root"), mode)
            if p["secret_file"] and not os.path.exists(p["secret_file"]):
                alphabet = string.ascii_letters + string.digits
                value = "".join(secrets.choice(alphabet) for _char in range(64))
                fd = os.open(p["secret_file"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
                with os.fdopen(fd, "w") as handle:
                    handle.write(value)
                os.chown(p["secret_file"], 0, grp.getgrnam(p["group"]).gr_gid)
                result["changed"] = True
        if p["secret_file"] and os.path.exists(p["secret_file"]):
            with open(p["secret_file"], encoding="utf-8") as handle:
                result["secret"] = handle.read().strip()
        report()
        if p["prepare"] and not module.check_mode:
            if release_dir and not result["built"]:
                shutil.rmtree(release_dir, ignore_errors=True)
                _ensure_dir(release_dir, p["build_user"] or "root", None, 0o750)
                _ensure_dir(os.path.join(release_dir, "src"), p["build_user"] or "root", None, 0o750)
                result["changed"] = True
            if venv_dir and not result["venv_built"]:
                shutil.rmtree(venv_dir, ignore_errors=True)
                _ensure_dir(venv_dir, p["build_user"] or "root", None, 0o750)
                result["changed"] = True
        module.exit_json(**result)

    if p["state"] == "sealed":
        gid = grp.getgrnam(p["group"]).gr_gid
        if not module.check_mode:
            if venv_dir and not os.path.isfile(os.path.join(venv_dir, READY)):
                _seal_tree(venv_dir, gid)
                with open(os.path.join(venv_dir, READY), "w", encoding="utf-8") as handle:
                    handle.write(p["venv_key"] + "\n")
                os.chown(os.path.join(venv_dir, READY), 0, gid)
                os.chmod(os.path.join(venv_dir, READY), 0o640)
            if venv_dir:
                _symlink(os.path.relpath(venv_dir, release_dir), os.path.join(release_dir, "venv"))
            _seal_tree(release_dir, gid)
            marker = os.path.join(release_dir, p["marker"])
            with open(marker, "w", encoding="utf-8") as handle:
                handle.write(p["release"] + "\n")
            os.chown(marker, 0, gid)
            os.chmod(marker, 0o640)
        result["changed"] = True
        report()
        module.exit_json(**result)

    if p["state"] == "rollback":
        live, back = _link_target(current), _link_target(previous)
        if not back or not os.path.isdir(os.path.join(releases, back)):
            module.fail_json(msg=f"nothing to roll back to: {previous} is missing (no release was replaced on this "
                                 f"host yet; current is {live or 'missing'})", current=live, previous=back)
        if back == live:
            module.fail_json(msg=f"nothing to roll back to: previous and current are both release {live}",
                             current=live, previous=back)
        if not module.check_mode:
            _symlink(os.path.join("releases", live), previous)
            _symlink(os.path.join("releases", back), current)
        result.update(changed=True, rolled_back_from=live, rolled_back_to=back)
        report()
        module.exit_json(**result)

    # state=current
    if not os.path.isfile(os.path.join(release_dir, p["marker"])):
        module.fail_json(msg=f"release {p['release']} is not built ({release_dir})")
    live = _link_target(current)
    if live != p["release"]:
        if not module.check_mode:
            if live and os.path.isdir(os.path.join(releases, live)):
                _symlink(os.path.join("releases", live), previous)
            _symlink(os.path.join("releases", p["release"]), current)
        result["changed"] = True
    keep_names = {p["release"], _link_target(current), _link_target(previous)}
    built = []
    for name in os.listdir(releases):
        path = os.path.join(releases, name)
        if os.path.isdir(path) and not os.path.islink(path):
            marker = os.path.join(path, p["marker"])
            built.append((os.path.getmtime(marker) if os.path.exists(marker) else 0, name))
    built.sort(reverse=True)
    # Releases whose build never finished (no marker) go first: nothing can switch to them.
    kept = {name for mtime, name in built if mtime}
    kept = {name for _mtime, name in [b for b in built if b[1] in kept][: max(p["keep"], 2)]} | keep_names
    for _mtime, name in built:
        if name not in kept:
            result["removed"].append(os.path.join(releases, name))
    used = set()
    for _mtime, name in built:
        if name in kept:
            used.add(_link_target(os.path.join(releases, name, "venv")))
    if os.path.isdir(venvs):
        for name in os.listdir(venvs):
            if name not in used and name != p["venv_key"]:
                result["removed"].append(os.path.join(venvs, name))
    if result["removed"] and not module.check_mode:
        for path in result["removed"]:
            shutil.rmtree(path, ignore_errors=True)
        result["changed"] = True
    report()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
