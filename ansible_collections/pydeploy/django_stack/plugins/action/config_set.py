# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Action plugin of pydeploy.django_stack.config_set: render the set on the controller, one module call.

Templates are rendered like ansible.builtin.template renders them (the role's templates/ dir,
the task's variables, ansible_managed, trim_blocks); files of the role (src) are read from its
files/ dir; content is taken as given. The module then stages, validates and goes live on the
host in one call (documentation: plugins/modules/config_set.py).
"""

from __future__ import annotations

import base64
import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.action import ActionBase

try:  # ansible-core >= 2.19
    from ansible.template import trust_as_template
    from ansible._internal._templating import _template_vars

    def _template_vars_for(path, fullpath, dest, include_managed):
        return _template_vars.generate_ansible_template_vars(
            path=path, fullpath=fullpath, dest_path=dest, include_ansible_managed=include_managed)

    def _render(templar, text, searchpath, variables):
        data_templar = templar.copy_with_new_env(searchpath=searchpath, available_variables=variables)
        return data_templar.template(trust_as_template(text), escape_backslashes=False,
                                     overrides={"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"})
except ImportError:  # pragma: no cover - ansible-core 2.16 to 2.18
    from ansible.template import AnsibleEnvironment, generate_ansible_template_vars

    def _template_vars_for(path, fullpath, dest, include_managed):
        # 2.16 has no include_ansible_managed (2.17 and 2.18 have it) and always sets ansible_managed:
        # drop it when the task's variables define their own, as the argument does on later versions.
        template_vars = generate_ansible_template_vars(path, fullpath, dest)
        if not include_managed:
            template_vars.pop("ansible_managed", None)
        return template_vars

    def _render(templar, text, searchpath, variables):
        data_templar = templar.copy_with_new_env(environment_class=AnsibleEnvironment, searchpath=searchpath,
                                                 available_variables=variables)
        data_templar.environment.trim_blocks = True
        return data_templar.template(text, preserve_trailing_newlines=True, escape_backslashes=False)

FILE_KEYS = frozenset({"dest", "template", "src", "content", "content_encoding", "owner", "group", "mode", "stage_as",
                       "validate", "state"})
TOP_KEYS = frozenset({"files", "validate", "validate_always", "validate_fail_on", "stage_with", "purge", "directories",
                      "stage_root", "validate_user", "validate_group"})


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = TOP_KEYS

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp

        args = dict(self._task.args)
        files = args.get("files")
        if not isinstance(files, list) or not files:
            raise AnsibleActionFail("config_set: files must be a non-empty list")
        rendered = []
        for index, spec in enumerate(files):
            rendered.append(self._file(index, spec, task_vars))
        args["files"] = rendered

        module_result = self._execute_module(module_name="pydeploy.django_stack.config_set", module_args=args,
                                             task_vars=task_vars)
        module_result.pop("invocation", None)
        if self._task.no_log:
            module_result.pop("diff", None)
        result.update(module_result)
        return result

    def _file(self, index, spec, task_vars):
        where = f"config_set: files[{index}]"
        if not isinstance(spec, dict):
            raise AnsibleActionFail(f"{where} must be a dict")
        unknown = set(spec) - FILE_KEYS
        if unknown:
            raise AnsibleActionFail(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                                    f"known: {', '.join(sorted(FILE_KEYS))}")
        dest = spec.get("dest")
        if not isinstance(dest, str) or not dest:
            raise AnsibleActionFail(f"{where}.dest is required")
        sources = [key for key in ("template", "src", "content") if spec.get(key) is not None]
        state = spec.get("state") or "present"
        if state == "absent":
            if sources:
                raise AnsibleActionFail(f"{where} ({dest}): state=absent takes no {sources[0]}")
            return dict(spec)
        if len(sources) != 1:
            raise AnsibleActionFail(f"{where} ({dest}) needs exactly one of template, src, content (got {sources or 'none'})")
        out = {key: value for key, value in spec.items() if key not in ("template", "src")}
        if sources[0] == "template":
            out["content"] = self._template(spec["template"], dest, task_vars, where)
            out["content_encoding"] = "utf-8"
        elif sources[0] == "src":
            data = self._role_file(spec["src"], where)
            try:
                out["content"] = data.decode("utf-8")
                out["content_encoding"] = "utf-8"
            except UnicodeDecodeError:
                out["content"] = to_text(base64.b64encode(data))
                out["content_encoding"] = "base64"
        else:
            out["content"] = to_text(spec["content"])
        return out

    def _template(self, name, dest, task_vars, where):
        try:
            source = self._find_needle("templates", name)
        except AnsibleError as exc:
            raise AnsibleActionFail(f"{where}: {to_text(exc)}") from exc
        text = self._loader.get_text_file_contents(source) if hasattr(self._loader, "get_text_file_contents") \
            else to_text(self._loader._get_file_contents(source)[0])
        searchpath = list(task_vars.get("ansible_search_path", [])) + [self._loader._basedir, os.path.dirname(source)]
        paths = []
        for path in searchpath:
            paths.extend([os.path.join(path, "templates"), path])
        variables = dict(task_vars)
        variables.update(_template_vars_for(name, source, dest, "ansible_managed" not in task_vars))
        resultant = _render(self._templar, text, paths, variables)
        return "" if resultant is None else to_text(resultant)

    def _role_file(self, name, where):
        try:
            source = self._find_needle("files", name)
        except AnsibleError as exc:
            raise AnsibleActionFail(f"{where}: {to_text(exc)}") from exc
        with open(to_bytes(source, errors="surrogate_or_strict"), "rb") as fh:
            return fh.read()
