# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Action plugin pydeploy.django_stack.validate_vars: strict checks of a role's variables, on the controller.

Documentation: plugins/modules/validate_vars.py (the action has no module part; nothing runs on the host).
"""

from __future__ import annotations

import os

import yaml

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.pydeploy.django_stack.plugins.plugin_utils import varspec

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19
    def trust_as_template(value):
        return value

_COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SPEC_CACHE = {}
# libyaml's safe loader where PyYAML has it: every task's worker process reads the argument specs
# afresh (a fork of the strategy process), and the pure-Python loader took a twentieth of a run.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(path):
    if path not in _SPEC_CACHE:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                _SPEC_CACHE[path] = yaml.load(handle, Loader=_SAFE_LOADER) or {}
        else:
            _SPEC_CACHE[path] = None
    return _SPEC_CACHE[path]


def role_spec(role):
    """(argument_specs mapping, names from defaults/vars) of a role of this collection."""
    role_dir = os.path.join(_COLLECTION_ROOT, "roles", role)
    if not os.path.isdir(role_dir):
        raise AnsibleError(f"validate_vars: no role {role!r} in {os.path.join(_COLLECTION_ROOT, 'roles')}")
    specs = (_load_yaml(os.path.join(role_dir, "meta", "argument_specs.yml")) or {}).get("argument_specs") or {}
    names = set()
    for sub in ("defaults", "vars"):
        data = _load_yaml(os.path.join(role_dir, sub, "main.yml"))
        if isinstance(data, dict):
            names.update(data)
    defaults = _load_yaml(os.path.join(role_dir, "defaults", "main.yml"))
    if isinstance(defaults, dict):
        # An option whose default is derived (a Jinja expression in defaults/main.yml) has no `default:` in the
        # spec when a string is not of its type (int, bool, dict): that default is not null all the same, so a
        # null value stays an error for it, as for every option with a default.
        for entry in specs.values():
            for name, option in ((entry or {}).get("options") or {}).items():
                value = defaults.get(name)
                if isinstance(option, dict) and "default" not in option and isinstance(value, str) and "{{" in value:
                    option["default"] = value
    return specs, names


def _holds(templar, expression, variables, loader):
    """A rule's `that` evaluated like a `when:` condition."""
    if hasattr(templar, "evaluate_conditional"):  # ansible-core >= 2.19
        return templar.evaluate_conditional(expression)
    from ansible.playbook.conditional import Conditional  # ansible-core < 2.19, as its assert action does

    condition = Conditional(loader=loader)
    condition.when = [expression]
    return condition.evaluate_conditional(templar, variables)


class _TemplateFailure(Exception):
    pass


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("role", "entry_point", "options", "prefix", "formats", "rules", "known", "strict", "scope"))

    @classmethod
    def finalize_task_arg(cls, name, value, templar, context):
        # Rules are expressions evaluated by the plugin itself, with the checked values (like assert's `that`).
        if name == "rules" and isinstance(value, list):
            return value
        return super().finalize_task_arg(name, value, templar, context)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = self._task.args
        role = args.get("role")
        if not role:
            raise AnsibleError("validate_vars: role is required")
        role = to_text(role)
        entry_point = to_text(args.get("entry_point") or "main")
        specs, role_names = role_spec(role)
        options = args.get("options")
        if options is None:
            if entry_point not in specs:
                raise AnsibleError(f"validate_vars: role {role} has no entry point {entry_point!r} in its argument spec")
            options = (specs[entry_point] or {}).get("options") or {}
        options = dict(options)
        prefix = args.get("prefix")
        prefix = f"{role}_" if prefix is None else to_text(prefix)
        host = to_text(task_vars.get("inventory_hostname", "?"))
        # Whose variables these are, in messages ("role nginx", or "the collection's playbooks" with `options`).
        scope = to_text(args.get("scope") or f"role {role}")

        try:
            checker = varspec.SpecChecker(options, args.get("formats") or {})
        except ValueError as err:
            raise AnsibleError(f"validate_vars: {err}") from None

        # The values as the role will see them: templated, not converted.
        values = {}
        problems = []
        for name, spec in options.items():
            if name not in task_vars:
                continue
            try:
                values[name] = self._resolve(name, task_vars)
            except _TemplateFailure as err:
                secret = bool((spec or {}).get("no_log")) or varspec.is_secret_name(name)
                reason = "could not be computed" + ("" if secret else f": {err}")
                problems.append(varspec.Problem(name, reason, kind="template"))
        normalized, found = checker.check(values)
        problems.extend(found)

        # Cross-variable rules, on the normalized values.
        bad = {p.path.split("[")[0].split(".")[0] for p in problems}
        rules = args.get("rules") or []
        if rules:
            problems.extend(self._rules(rules, task_vars, normalized, bad))

        # Unknown role-prefixed variables.
        unknown = []
        if prefix:
            known = set(role_names) | {f"{role}_exports", f"{role}_stack"} | set(args.get("known") or [])
            for spec_ep in specs.values():
                known.update(((spec_ep or {}).get("options") or {}).keys())
            known.update(options)
            unknown = varspec.unknown_names([k for k in task_vars if isinstance(k, str)], known, prefix)
        strict = args.get("strict")
        if strict is None:
            strict = task_vars.get("pydeploy_strict_vars", False)
            try:
                strict = self._templar.template(strict)
            except Exception:  # pylint: disable=broad-except
                strict = False
        strict = boolean(strict, strict=False)
        warnings = []
        for name, hint in unknown:
            reason = f"is not a variable of {scope}" + (f" (did you mean {hint}?)" if hint else "")
            if strict:
                problems.append(varspec.Problem(name, reason, kind="unknown",
                                                accepted=f"the documented variables of {scope}"))
            else:
                warnings.append(f"{name} on {host}: {reason}; it is ignored (pydeploy_strict_vars: true makes this an error)")

        hidden = {n for n, s in options.items() if (s or {}).get("no_log") or varspec.is_secret_name(n)}
        # Nested secrets too (a stack input carries the app's exports, the database password among
        # them): the result is shown at -v, so no secret value may be in it.
        result["normalized"] = {k: varspec.redact_secrets(v) for k, v in normalized.items() if k not in hidden}
        result["unknown"] = [{"variable": n, "closest": h} for n, h in unknown]
        result["changed"] = False
        if warnings:
            result["warnings"] = warnings
        if problems:
            result["failed"] = True
            result["problems"] = [p.as_dict(host) for p in problems]
            count = len(problems)
            lines = [p.render(host) for p in problems]
            result["msg"] = (f"{count} problem{'s' if count > 1 else ''} in the variables of {scope} on host "
                             f"{host}, nothing was changed:\n- " + "\n- ".join(lines))
        else:
            result["msg"] = f"The variables of {scope} are valid on {host}."
        return result

    # ---------------------------------------------------------------------------------------
    def _resolve(self, name, task_vars):
        try:
            value = self._templar.template(task_vars[name])
            return self._deep(value)
        except _TemplateFailure:
            raise
        except Exception as err:  # pylint: disable=broad-except
            raise _TemplateFailure(to_text(err).splitlines()[0] if to_text(err) else type(err).__name__) from None

    def _deep(self, value):
        """A plain copy (lazy containers templated now, tags dropped)."""
        if isinstance(value, dict):
            return {self._deep(k): self._deep(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._deep(v) for v in value]
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, str):
            return str(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        return value

    def _rules(self, rules, task_vars, normalized, bad):
        problems = []
        variables = dict(task_vars)
        variables.update(normalized)
        templar = self._templar.copy_with_new_env(available_variables=variables)
        for index, rule in enumerate(rules):
            if not isinstance(rule, dict) or "that" not in rule:
                raise AnsibleError(f"validate_vars: rules[{index}] needs 'that' (and 'msg', 'vars')")
            names = rule.get("vars") or []
            if isinstance(names, str):
                names = [names]
            names = [to_text(n) for n in names]
            if any(n.split("[")[0].split(".")[0] in bad for n in names):  # python_app_database.port -> python_app_database
                continue
            thats = rule["that"] if isinstance(rule["that"], list) else [rule["that"]]
            where = ", ".join(names) or "rule"
            ok = True
            failure = None
            for that in thats:
                try:
                    expression = trust_as_template(to_text(that)) if isinstance(that, str) else that
                    if not _holds(templar, expression, variables, self._loader):
                        ok = False
                        break
                except Exception as err:  # pylint: disable=broad-except
                    ok = False
                    failure = to_text(err).splitlines()[0]
                    break
            if ok:
                continue
            msg = rule.get("msg") or f"the rule {thats!r} does not hold"
            try:
                msg = to_text(templar.template(trust_as_template(to_text(msg))))
            except Exception:  # pylint: disable=broad-except
                msg = to_text(msg)
            if failure:
                msg = f"{msg} (the check could not be evaluated: {failure})"
            problems.append(varspec.Problem(where, msg, kind="rule"))
        return problems
