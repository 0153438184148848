# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Escaping per target format, one place each (documentation in the .yml files beside this one).

- env_file_value: a value in a file read by systemd's EnvironmentFile= and sourced by /bin/sh.
- nginx_string: a quoted string argument of an nginx directive.
- pg_hba_field: one field of a pg_hba.conf line.
- python_literal: a Python literal (gunicorn.conf.py and other Python configuration).

Each refuses what its format cannot carry safely (newlines and other control characters
everywhere, as they would start a line of their own) with an error naming the value's role
(`what=`), never the value itself (it may be a secret).
"""

import math
import re

from ansible.errors import AnsibleFilterError

from collections.abc import Mapping

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(value, filter_name, what):
    if isinstance(value, bool) or value is None or isinstance(value, (list, tuple, Mapping)):
        raise AnsibleFilterError(f"{filter_name}: {what} must be a string or number, not {type(value).__name__}")
    text = str(value)
    match = _CONTROL.search(text)
    if match:
        raise AnsibleFilterError(
            f"{filter_name}: {what} contains a control character (0x{ord(match.group(0)):02x}, e.g. a newline) at "
            f"position {match.start()}; it would end the line in the target file")
    return text


def env_file_value(value, what="value"):
    """'value' in single quotes ('\\'' for a quote): literal for both systemd and sh."""
    text = _text(value, "env_file_value", what)
    return "'" + text.replace("'", "'\\''") + "'"


def nginx_string(value, what="value", variables=False):
    """"value" for nginx, with \\ and " escaped; $ refused unless variables=True (nginx cannot escape it)."""
    text = _text(value, "nginx_string", what)
    if "$" in text and not variables:
        raise AnsibleFilterError(
            f"nginx_string: {what} contains '$', which nginx reads as a variable and cannot escape")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


PG_HBA_KEYWORDS = frozenset({"all", "sameuser", "samerole", "samegroup", "replication", "samehost", "samenet"})
_PG_HBA_PLAIN = re.compile(r"^[A-Za-z0-9_.:/-]+$")


def pg_hba_field(value, what="field", keyword=False):
    """One pg_hba.conf field: bare when plain, else in double quotes (a quoted keyword or +/@ loses its meaning).

    keyword=True lets a bare keyword (all, replication, ...) through with its meaning."""
    text = _text(value, "pg_hba_field", what)
    if '"' in text:
        raise AnsibleFilterError(f"pg_hba_field: {what} contains a double quote, which pg_hba.conf cannot carry")
    if text == "":
        raise AnsibleFilterError(f"pg_hba_field: {what} is empty")
    if _PG_HBA_PLAIN.match(text) and (keyword or text.lower() not in PG_HBA_KEYWORDS):
        return text
    return f'"{text}"'


def python_literal(value, what="value"):
    """A Python literal of str, int, float, bool, None, list, tuple and dict (keys: str, int), nested."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise AnsibleFilterError(f"python_literal: {what} is not a finite number")
        return repr(float(value))
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise AnsibleFilterError(f"python_literal: {what} has a key of type {type(key).__name__}")
            items.append(f"{python_literal(key, what)}: {python_literal(item, f'{what}[{key!r}]')}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(python_literal(item, f"{what}[{i}]") for i, item in enumerate(value))
        if isinstance(value, tuple):
            return "(" + inner + ("," if len(value) == 1 else "") + ")"
        return "[" + inner + "]"
    raise AnsibleFilterError(f"python_literal: {what} of type {type(value).__name__} has no Python literal")


class FilterModule:
    def filters(self):
        return {
            "env_file_value": env_file_value,
            "nginx_string": nginx_string,
            "pg_hba_field": pg_hba_field,
            "python_literal": python_literal,
        }
