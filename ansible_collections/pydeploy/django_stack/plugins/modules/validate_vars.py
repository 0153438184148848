#!/usr/bin/python
# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
# Documentation of the action plugin pydeploy.django_stack.validate_vars, which runs entirely on the controller
# (plugins/action/validate_vars.py); there is no module code to send to a host.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: validate_vars
short_description: Check a role's variables strictly before anything changes (controller only)
author: pydeploy maintainers (@pydeploy)
description:
  - Reads the role's C(meta/argument_specs.yml) from this collection and checks the variables as the role will use
    them, templated but not converted. Types per spec (a string where a list or dict is expected is an error, never
    split), choices, required options, list elements and suboptions (unknown keys are errors), formats, and
    cross-variable rules.
  - "A wrong value is reported as, for example:
    C(nginx_sites[1].static_root on web1: the path contains ';', which nginx would read as syntax (given: '/srv/x;');
    accepted: an absolute path safe for nginx without quotes ...)"

  - Unknown variables with the role's prefix (C(gunicorn_worker) for C(gunicorn_workers)) are reported with the
    closest known name, as a warning, or as an error when C(pydeploy_strict_vars) is true.
  - Every problem is collected, then the task fails once. Messages name the variable as written, with the list index
    and dict key (C(nginx_sites[1].static_root)), the host, what was given (never the value of a C(no_log) option
    or of an option named like a secret) and what would be accepted.
  - Runs on the controller only; nothing is sent to the host.
notes:
  - "How a role adopts it: one task in C(tasks/validate.yml) with C(role), C(formats) for every string that lands in a
    config file, and C(rules) for the cross-variable checks. Set C(options: {}) on the role's C(validate) entry point
    (the C(main) options are what this plugin checks). Otherwise Ansible's own argument validation runs first,
    converts silently or stops at its first error, and its message names no host."
  - Register the result to use C(normalized) (for instance a four-digit mode from a YAML integer).
attributes:
  action:
    support: full
    description: Runs on the controller as an action plugin.
  check_mode:
    support: full
    description: Reads variables only.
  diff_mode:
    support: none
    description: Changes nothing.
options:
  role:
    description: Role of this collection whose argument spec is read (C(roles/<role>/meta/argument_specs.yml)).
    type: str
    required: true
  entry_point:
    description: Entry point of the spec whose options are checked.
    type: str
    default: main
  options:
    description: Option specs to check instead of the entry point's (same shape as C(argument_specs.<ep>.options)).
    type: dict
  prefix:
    description: Prefix of the role's variables for the unknown-name check; C(<role>_) by default. Empty turns the check off.
    type: str
  formats:
    description:
      - Variable paths mapped to format names of C(plugin_utils/formats.py). Paths - C(name), C(name[]) (every list
        item), C(name.key), C(name.*) (every dict value), C(name{}) (every dict key), combined as in
        C(nginx_sites[].websocket_locations[].upstream).
      - A format name may list alternatives (C(nginx_path|host_port)) and end with C(?) to also accept an empty string.
    type: dict
    default: {}
  rules:
    description:
      - Cross-variable rules, each C(that) (an expression as in assert, or a list of them), C(msg) and C(vars) (the
        variables the rule is about; they start the message, and the rule is skipped when one of them already has a
        problem). Rules see the normalized values (integers are integers).
    type: list
    elements: dict
    default: []
  known:
    description: Further variable names with the role's prefix that are not unknown (set by playbooks, for instance).
    type: list
    elements: str
    default: []
  strict:
    description: Unknown prefixed variables are errors. Defaults to C(pydeploy_strict_vars).
    type: bool
  scope:
    description:
      - Whose variables are checked, as messages name them (C(1 problem in the variables of <scope> on host ...),
        C(... is not a variable of <scope>)). Defaults to C(role <role>); set it when C(options) checks variables
        that are not the role's (a playbook's own, for instance).
    type: str
"""

EXAMPLES = r"""
- name: Validate | variables
  pydeploy.django_stack.validate_vars:
    role: gunicorn
    formats:
      gunicorn_bind_tcp[]: host_port
      gunicorn_socket_mode: octal_mode
      gunicorn_environment{}: env_name
      gunicorn_environment.*: single_line
    rules:
      - that: gunicorn_timeout_stop_sec > gunicorn_graceful_timeout
        msg: must exceed gunicorn_graceful_timeout, or systemd cuts graceful stops short
        vars: [gunicorn_timeout_stop_sec, gunicorn_graceful_timeout]
  register: __gunicorn_validated
"""

RETURN = r"""
normalized:
  description: The checked values, converted (integers, booleans, four-digit modes); options marked no_log are left out.
  type: dict
  returned: always
problems:
  description: One entry per problem (variable, host, problem, given, accepted, msg).
  type: list
  returned: when something is wrong
unknown:
  description: Unknown prefixed variables with the closest known name.
  type: list
  returned: always
"""
