#!/usr/bin/env python3
"""Every role's defaults/main.yml and meta/argument_specs.yml must list the same variables,
each variable must carry the role's prefix, a description, and the same default in both.

A derived default (a Jinja expression in defaults/main.yml, computed from facts or other variables)
of an option whose type a string is not (int, float, bool, dict, list) stays out of the spec: a template
string there is not a value of the option's type (ansible-doc, antsibull-docs and Galaxy's importer
refuse it). Such an option has no `default:` in the spec and says its default in the description;
the role README's table shows the expression from defaults/main.yml (scripts/gen_role_docs.py)."""
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent / "ansible_collections/pydeploy/django_stack"


NOT_A_STRING = ("int", "float", "bool", "dict", "list")


def derived(value):
    return isinstance(value, str) and "{{" in value


def description(spec):
    text = spec.get("description") or ""
    return " ".join(text) if isinstance(text, list) else str(text)


def main():
    problems = []
    for role in sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir()):
        defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
        spec_file = role / "meta/argument_specs.yml"
        if not spec_file.exists():
            problems.append(f"{role.name}: no meta/argument_specs.yml")
            continue
        options = {}
        for entry in (yaml.safe_load(spec_file.read_text())["argument_specs"] or {}).values():
            options.update(entry.get("options") or {})
        for name in sorted(set(defaults) - set(options)):
            problems.append(f"{role.name}: {name} in defaults but not in argument_specs")
        for name in sorted(set(options) - set(defaults)):
            if not options[name].get("required"):
                problems.append(f"{role.name}: {name} in argument_specs but not in defaults")
        for name, spec in options.items():
            if not name.startswith(role.name + "_"):
                problems.append(f"{role.name}: {name} lacks the prefix {role.name}_")
            if not spec.get("description"):
                problems.append(f"{role.name}: {name} has no description")
            if derived(defaults.get(name)) and spec.get("type") in NOT_A_STRING:
                if "default" in spec:
                    problems.append(f"{role.name}: {name} (type {spec['type']}): its derived default "
                                    f"{defaults[name]!r} belongs in defaults/main.yml only (drop it from the spec)")
                elif "default" not in description(spec).lower():
                    problems.append(f"{role.name}: {name} has a derived default: its description must say it")
                continue
            if name in defaults and spec.get("default") != defaults[name]:
                problems.append(f"{role.name}: {name} default differs: spec {spec.get('default')!r} "
                                f"vs defaults {defaults[name]!r}")
    for line in problems:
        print(line)
    print(f"checked {len(list((ROOT / 'roles').iterdir()))} roles: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
