#!/usr/bin/env python3
"""Every role's defaults/main.yml and meta/argument_specs.yml must list the same variables,
each variable must carry the role's prefix, a description, and the same default in both."""
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent / "ansible_collections/pydeploy/django_stack"


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
            if name in defaults and spec.get("default") != defaults[name]:
                problems.append(f"{role.name}: {name} default differs: spec {spec.get('default')!r} "
                                f"vs defaults {defaults[name]!r}")
    for line in problems:
        print(line)
    print(f"checked {len(list((ROOT / 'roles').iterdir()))} roles: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
