# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Filter pydeploy.django_stack.octal_mode: any accepted file mode as four octal digits."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: octal_mode
short_description: A file mode as four octal digits, whatever type arrives
author: pydeploy maintainers (@pydeploy)
description:
  - Renders a mode given as a string (C("0660"), C("660"), C("0o660")) or as the integer YAML makes of an unquoted
    C(0660) (432) as C("0660"), for systemd's C(SocketMode=), C(UMask=) and file modes in templates.
  - Fails on anything else (a symbolic mode, an integer above 0o777 such as an unquoted C(660), a boolean), instead of
    rendering a mode nobody meant.
positional: _input
options:
  _input:
    description: The mode.
    type: raw
    required: true
  what:
    description: The variable the mode came from, named in the error message.
    type: str
    default: mode
"""

EXAMPLES = r"""
- name: SocketMode in a unit
  ansible.builtin.debug:
    msg: "SocketMode={{ gunicorn_socket_mode | pydeploy.django_stack.octal_mode }}"
"""

RETURN = r"""
_value:
  description: Four octal digits, such as C(0660).
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pydeploy.django_stack.plugins.plugin_utils.formats import FormatError
from ansible_collections.pydeploy.django_stack.plugins.plugin_utils.formats import octal_mode as _octal_mode


def octal_mode(value, what="mode"):
    try:
        return _octal_mode(value)
    except FormatError as err:
        raise AnsibleFilterError(f"octal_mode: {what}: {err} (given {value!r})") from None


class FilterModule:
    def filters(self):
        return {"octal_mode": octal_mode}
