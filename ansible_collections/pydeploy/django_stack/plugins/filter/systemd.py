# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""systemd unit files from data, every value escaped for the directive it lands in.

Filters (documentation in systemd_unit.yml and systemd_sandbox.yml beside this file):

- ``systemd_unit``: ``{section: {directive: value}}`` -> unit file text.
- ``systemd_sandbox``: the hardening directives every service unit of the collection gets,
  defined once (merge them into the ``Service`` section).

Escaping, by kind of directive (systemd.syntax(7), systemd.service(5), systemd.exec(5)):

- every value: control characters (newline, carriage return, tab, NUL, ...) are refused, since
  a newline would start a new directive (``ExecStartPre=+...`` injected through a variable);
  ``%`` is doubled (specifiers) except in a plain percentage (``CPUQuota=20%``).
- command lines (``Exec*=``): a list of arguments; each is quoted when needed, with ``\\`` and
  ``"`` escaped, ``%`` doubled and ``$`` doubled (no environment variable expansion); the
  executable may not start with a prefix character unless given as ``prefix``.
- ``Environment=``: a dict (or ``NAME=value`` strings), one quoted assignment per line, names
  checked, ``\\`` and ``"`` escaped, ``%`` doubled (``$`` is literal there).
- path lists (``ReadWritePaths=``...): absolute paths, quoted when they contain blanks.
- other directives: the value as written, refused when systemd would change it (leading or
  trailing blanks, a trailing backslash, which continues the line).
"""

import re

from ansible.errors import AnsibleFilterError

from collections.abc import Mapping

EXEC_DIRECTIVES = frozenset({
    "ExecStart", "ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost", "ExecCondition",
})
PATH_LIST_DIRECTIVES = frozenset({
    "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths",
})
EXEC_PREFIXES = frozenset("@-:+!")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_SECTION = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_ARG = re.compile(r"^[A-Za-z0-9_@+=:,./-]+$")
_PERCENTAGE = re.compile(r"^[0-9]+(\.[0-9]+)?%$")
_CHAR_NAMES = {"\n": "newline", "\r": "carriage return", "\t": "tab", "\x00": "NUL"}


class SystemdValueError(AnsibleFilterError):
    """A value that cannot be written into a unit file unchanged."""


def _where(section, key, index=None):
    return f"[{section}] {key}" + ("" if index is None else f"[{index}]")


def _text(value, where):
    """A scalar as text, with control characters refused."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise SystemdValueError(f"systemd_unit: {where} must be a string, number or boolean, not {type(value).__name__}")
    match = _CONTROL.search(value)
    if match:
        char = match.group(0)
        name = _CHAR_NAMES.get(char, f"control character 0x{ord(char):02x}")
        raise SystemdValueError(
            f"systemd_unit: {where} contains a {name} at position {match.start()}; unit file values are one line "
            "without control characters")
    return value


def _specifiers(text):
    return text.replace("%", "%%")


def plain_value(value, where="value"):
    """A directive's value written as it is (no quoting syntax), with specifiers escaped."""
    text = _text(value, where)
    if text != text.strip(" "):
        raise SystemdValueError(f"systemd_unit: {where} has leading or trailing blanks, which systemd strips")
    if text.endswith("\\"):
        raise SystemdValueError(f"systemd_unit: {where} ends with a backslash, which continues the line in a unit file")
    if _PERCENTAGE.match(text):
        return text
    return _specifiers(text)


def _quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_argument(value, where="argument"):
    """One argument of a command line: quoted when needed, no specifier or variable expansion."""
    text = _text(value, where)
    if _SAFE_ARG.match(text):
        return text
    return _quoted(text).replace("%", "%%").replace("$", "$$")


def exec_command(value, where="command"):
    """A command line from {argv: [...], prefix: ''}, a list of arguments, or {raw: '...'}."""
    prefix = ""
    if isinstance(value, Mapping):
        if "raw" in value:
            unknown = set(value) - {"raw"}
            if unknown:
                raise SystemdValueError(f"systemd_unit: {where}: raw takes no other keys (got {sorted(unknown)})")
            return _raw(value["raw"], where)
        unknown = set(value) - {"argv", "prefix"}
        if unknown or "argv" not in value:
            raise SystemdValueError(f"systemd_unit: {where} takes argv (and prefix), got keys {sorted(value)}")
        prefix = value.get("prefix") or ""
        if not isinstance(prefix, str) or set(prefix) - EXEC_PREFIXES:
            raise SystemdValueError(f"systemd_unit: {where} prefix must be made of {''.join(sorted(EXEC_PREFIXES))}")
        argv = value["argv"]
    else:
        argv = value
    if isinstance(argv, (str, bytes)) or not isinstance(argv, (list, tuple)) or not argv:
        raise SystemdValueError(f"systemd_unit: {where} must be a non-empty list of arguments (argv), or {{raw: ...}}")
    executable = _text(argv[0], f"{where}[0]")
    if not executable or executable[0] in EXEC_PREFIXES:
        raise SystemdValueError(
            f"systemd_unit: {where}[0] (the executable) may not be empty or start with one of "
            f"{''.join(sorted(EXEC_PREFIXES))}; give a prefix as prefix:")
    args = [exec_argument(arg, f"{where}[{i}]") for i, arg in enumerate(argv)]
    return prefix + " ".join(args)


def _raw(value, where):
    text = _text(value, where)
    if text.endswith("\\"):
        raise SystemdValueError(f"systemd_unit: {where} ends with a backslash, which continues the line in a unit file")
    return text


def environment_assignments(value, where="Environment"):
    """Environment= lines from {NAME: value} or ["NAME=value", ...]."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)):
        pairs = []
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                pairs.extend(item.items())
                continue
            text = _text(item, f"{where}[{i}]")
            name, sep, val = text.partition("=")
            if not sep:
                raise SystemdValueError(f"systemd_unit: {where}[{i}] must be NAME=value")
            pairs.append((name, val))
    else:
        raise SystemdValueError(f"systemd_unit: {where} must be a dict of variables (or a list of NAME=value)")
    lines = []
    for name, val in pairs:
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise SystemdValueError(
                f"systemd_unit: {where}: {name!r} is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if val is None:
            continue
        if isinstance(val, bool):
            val = "true" if val else "false"
        text = _text(val, f"{where} {name}")
        lines.append(_quoted(f"{name}={text}").replace("%", "%%"))
    return lines


def path_list_entry(value, where="path"):
    text = _text(value, where)
    if not re.match(r"^[-+]{0,2}/", text):
        raise SystemdValueError(f"systemd_unit: {where} must be an absolute path (got {text!r})")
    if re.search(r"[\s\"'\\]", text):
        return _quoted(text).replace("%", "%%")
    return _specifiers(text)


def _render(section, key, value):
    """The value(s) of one directive -> list of strings after the '='."""
    where = _where(section, key)
    if value is None:
        return []
    if key in EXEC_DIRECTIVES:
        commands = value if _is_command_list(value) else [value]
        return [exec_command(cmd, _where(section, key, i if len(commands) > 1 else None))
                for i, cmd in enumerate(commands)]
    if key == "Environment":
        return environment_assignments(value, where)
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for i, item in enumerate(items):
        item_where = _where(section, key, i if isinstance(value, (list, tuple)) else None)
        if item is None:
            continue
        if isinstance(item, Mapping) and set(item) == {"raw"}:
            out.append(_raw(item["raw"], item_where))
        elif key in PATH_LIST_DIRECTIVES:
            out.append(path_list_entry(item, item_where))
        else:
            out.append(plain_value(item, item_where))
    return out


def _is_command_list(value):
    """A list of commands (each a list or dict), as opposed to one command's argv."""
    return isinstance(value, (list, tuple)) and bool(value) and all(
        isinstance(item, (list, tuple, Mapping)) for item in value)


def _directive_items(directives, section):
    if isinstance(directives, Mapping):
        return list(directives.items())
    if isinstance(directives, (list, tuple)):
        items = []
        for i, entry in enumerate(directives):
            if isinstance(entry, Mapping) and len(entry) == 1:
                items.extend(entry.items())
            elif isinstance(entry, (list, tuple)) and len(entry) == 2:
                items.append(tuple(entry))
            else:
                raise SystemdValueError(
                    f"systemd_unit: [{section}] entry {i} must be a one-key dict or a [directive, value] pair")
        return items
    raise SystemdValueError(f"systemd_unit: [{section}] must be a dict of directives")


def _comment(text):
    lines = []
    for line in str(text).splitlines() or [""]:
        if _CONTROL.search(line):
            raise SystemdValueError("systemd_unit: a comment contains a control character")
        lines.append(("# " + line).rstrip())
    return lines


def systemd_unit(sections, header=None):
    """Unit file text from {section: {directive: value}}.

    Values: None (left out), a string, number or boolean (yes/no), a list (the directive
    repeated), {raw: text} (written unescaped: specifiers and variables are expanded). Exec*
    directives take a command (argv list, or {argv, prefix}) or a list of commands. Environment
    takes a dict. A key "#" writes a comment line.
    """
    if not isinstance(sections, Mapping):
        raise SystemdValueError("systemd_unit: expects a dict of sections")
    lines = []
    if header:
        lines.extend(_comment(header))
    for section, directives in sections.items():
        if not isinstance(section, str) or not _SECTION.match(section):
            raise SystemdValueError(f"systemd_unit: {section!r} is not a valid section name")
        if lines:
            lines.append("")
        lines.append(f"[{section}]")
        for key, value in _directive_items(directives, section):
            if isinstance(key, str) and key.startswith("#"):
                lines.extend(_comment(value))
                continue
            if not isinstance(key, str) or not _NAME.match(key):
                raise SystemdValueError(f"systemd_unit: [{section}] {key!r} is not a valid directive name")
            lines.extend(f"{key}={text}" for text in _render(section, key, value))
    return "\n".join(lines) + "\n"


SANDBOX_DEFAULTS = {
    "read_write_paths": [],
    "private_users": True,
    "private_network": False,
    "memory_deny_write_execute": True,
    "remove_ipc": True,
    "address_families": ["AF_UNIX", "AF_INET", "AF_INET6"],
    "ip_address_allow": None,
}


def systemd_sandbox(options=None):
    """The hardening directives of every service unit of the collection (merge into [Service]).

    options: read_write_paths (list), private_users, private_network, memory_deny_write_execute,
    remove_ipc (bool), address_families (list), ip_address_allow (None = no IP access list; a list,
    possibly empty, = IPAddressDeny=any plus IPAddressAllow= for each entry).
    """
    options = dict(options or {})
    unknown = set(options) - set(SANDBOX_DEFAULTS)
    if unknown:
        raise AnsibleFilterError(f"systemd_sandbox: unknown option(s) {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(sorted(SANDBOX_DEFAULTS))}")
    opts = {**SANDBOX_DEFAULTS, **{k: v for k, v in options.items() if v is not None or k == "ip_address_allow"}}
    for name in ("private_users", "private_network", "memory_deny_write_execute", "remove_ipc"):
        if not isinstance(opts[name], bool):
            raise AnsibleFilterError(f"systemd_sandbox: {name} must be a boolean, not {type(opts[name]).__name__}")
    for name in ("read_write_paths", "address_families"):
        if isinstance(opts[name], str) or not isinstance(opts[name], (list, tuple)):
            raise AnsibleFilterError(f"systemd_sandbox: {name} must be a list")
    allow = opts["ip_address_allow"]
    if allow is not None and (isinstance(allow, str) or not isinstance(allow, (list, tuple))):
        raise AnsibleFilterError("systemd_sandbox: ip_address_allow must be a list (or none)")
    families = list(opts["address_families"])
    if not families or any(not re.match(r"^AF_[A-Z0-9]+$", str(f)) for f in families):
        raise AnsibleFilterError("systemd_sandbox: address_families must list AF_* names")

    sandbox = {
        "NoNewPrivileges": True,
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "ProtectSystem": "strict",
        "ReadWritePaths": list(opts["read_write_paths"]) or None,
        "ProtectHome": True,
        "PrivateTmp": True,
        "PrivateDevices": True,
        "PrivateNetwork": True if opts["private_network"] else None,
        "PrivateUsers": opts["private_users"],
        "ProtectKernelTunables": True,
        "ProtectKernelModules": True,
        "ProtectKernelLogs": True,
        "ProtectControlGroups": True,
        "ProtectClock": True,
        "ProtectHostname": True,
        "ProtectProc": "invisible",
        "ProcSubset": "pid",
        "RestrictAddressFamilies": " ".join(families),
        "RestrictNamespaces": True,
        "RestrictRealtime": True,
        "RestrictSUIDSGID": True,
        "LockPersonality": True,
        "MemoryDenyWriteExecute": opts["memory_deny_write_execute"],
        # Removes the IPC objects of the service's user when it stops: right for a user of its own,
        # wrong for a user another service shares (postgres), which then sets remove_ipc false.
        "RemoveIPC": opts["remove_ipc"],
        "DevicePolicy": "closed",
        "SystemCallArchitectures": "native",
        "SystemCallFilter": ["@system-service", "~@privileged @resources"],
        "SystemCallErrorNumber": "EPERM",
    }
    if allow is not None:
        sandbox["IPAddressDeny"] = "any"
        sandbox["IPAddressAllow"] = list(allow) or None
    return {key: value for key, value in sandbox.items() if value is not None}


class FilterModule:
    def filters(self):
        return {
            "systemd_unit": systemd_unit,
            "systemd_sandbox": systemd_sandbox,
        }
