# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Action python_app_source: a path source, seen from the controller (no change on any host).

Lists the files of the release (VCS metadata, .gitignore'd files and `exclude` left out),
computes the release id from their content (plus `salt`: the role's shipped files, packages,
settings), finds the project's layout, requirements and Python version, resolves the server
packages against the project's own pins, and with `pack` writes the release tarball.
"""
from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.pydeploy.django_stack.plugins.module_utils.python_app_project import (
    ProjectError, inspect_tree, resolve_server_packages)
from ansible_collections.pydeploy.django_stack.plugins.plugin_utils.python_app_tree import (
    list_tree, pack, reader, tree_digest)

ARGS = {
    "path": (str, ""), "warn": (list, []), "exclude": (list, []), "gitignore": (bool, True), "extra_dir": (str, ""),
    "extra_prefix": (str, ""), "salt": (str, ""), "requirements_file": (str, ""), "django_root": (str, ""),
    "settings_module": (str, ""), "django": (bool, True), "server_packages": (list, []),
    "min_versions": (dict, {}), "pack": (str, ""),
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = {}
        for name, (kind, default) in ARGS.items():
            value = self._task.args.get(name, default)
            if value is None and default is None:
                raise AnsibleActionFail(f"python_app_source: {name} is required")
            if value is not None and not isinstance(value, kind):
                raise AnsibleActionFail(f"python_app_source: {name} must be a {kind.__name__}, got {type(value).__name__}")
            args[name] = value
        unknown = set(self._task.args) - set(ARGS)
        if unknown:
            raise AnsibleActionFail(f"python_app_source: unknown arguments {sorted(unknown)}")
        root = args["path"]
        result["warnings"] = [str(w) for w in args["warn"] if w]
        if not root:
            # git and pip sources: nothing to inspect on the controller, the layout is the user's.
            module = args["settings_module"]
            project = module.split(".")[0] if module else ""
            result.update(changed=False, digest="", release_id="", files=0, python={"spec": "", "source": ""},
                          layout={"django_root": args["django_root"], "settings_module": module, "project": project,
                                  "wsgi_module": f"{project}.wsgi:application" if project else "",
                                  "asgi_module": f"{project}.asgi:application" if project else "", "declared": ""},
                          requirements={"file": args["requirements_file"], "kind": "unknown", "hashes": False,
                                        "requirements": {}, "files": [], "digest": ""},
                          server_packages=list(args["server_packages"]), notes=[])
            return result
        if not os.path.isdir(root):
            raise AnsibleActionFail(f"python_app_source_path {root} is not a directory on the controller")
        try:
            paths = list_tree(root, args["exclude"], args["gitignore"])
            if not paths:
                raise ProjectError(f"python_app_source_path {root} holds no file after the exclusions")
            inspection = inspect_tree(paths, reader(root), args["requirements_file"], args["django_root"],
                                      args["settings_module"], args["django"])
            packages, notes = resolve_server_packages(args["server_packages"], args["min_versions"],
                                                      inspection["requirements"])
        except ProjectError as exc:
            result.update(failed=True, msg=f"{exc} (source {root})")
            return result
        extra = []
        if args["extra_dir"]:
            extra_paths = list_tree(args["extra_dir"], (), False)
            extra = [(args["extra_prefix"], args["extra_dir"], extra_paths)]
        salt = [("salt", args["salt"]), ("packages", "\n".join(packages))]
        for _prefix, directory, extra_paths in extra:
            salt.append(("extra", tree_digest(directory, extra_paths)))
        digest = tree_digest(root, paths, salt)
        if args["pack"] and not self._task.check_mode:
            pack(root, paths, args["pack"], extra)
        requirements = dict(inspection["requirements"])
        requirements["requirements"] = {name: found[0] for name, found in requirements["requirements"].items()}
        result.update(changed=False, digest=digest, release_id=digest[:12], files=len(paths),
                      layout=inspection["layout"], requirements=requirements, python=inspection["python"],
                      server_packages=packages, notes=notes)
        return result
