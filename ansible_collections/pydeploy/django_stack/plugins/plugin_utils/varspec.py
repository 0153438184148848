# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Strict checks of role variables against an argument spec, on plain Python values.

Used by the action plugin ``pydeploy.django_stack.validate_vars``; kept free of Ansible's runtime
so that it can be unit-tested directly. Differences from Ansible's own argument spec validation,
which validates a converted copy while the role keeps the raw value:

* a string where a list or dict is expected is an error (never split, never parsed);
* a float or boolean where a string is expected is an error ("quote it"); an integer is accepted
  and becomes its decimal string;
* ``int`` accepts integers and decimal strings (``-e`` values are strings), not floats or booleans;
  ``bool`` accepts booleans, 0/1 and the usual strings (yes/no, true/false, on/off, 1/0, y/n);
* null (a YAML key without a value) is an error for a top-level option whose default is not null,
  and means "absent" for a suboption;
* every problem is collected (not only the first) with the path as the user wrote it
  (``nginx_sites[1].static_root``, ``python_app_env.DEBUG``);
* values of options marked ``no_log`` (or named like secrets) are never shown, only their path.
"""

from __future__ import annotations

import difflib
import re

from ansible_collections.pydeploy.django_stack.plugins.plugin_utils import formats as _formats

__all__ = ["MISSING", "Problem", "SpecChecker", "closest", "format_path", "parse_format_path", "show_value",
           "is_secret_name"]


class _Missing:
    def __repr__(self):
        return "MISSING"

    def __bool__(self):
        return False


MISSING = _Missing()

_TRUE = frozenset(("yes", "on", "1", "true", "y", "t"))
_FALSE = frozenset(("no", "off", "0", "false", "n", "f"))
_SECRET_NAME = re.compile(r"(password|passwd|secret|token|passphrase|private_key|key_content)", re.I)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_secret_name(name):
    """Options named like secrets are treated as no_log even when the spec does not say so."""
    return bool(_SECRET_NAME.search(str(name)))


def redact_secrets(value):
    """A copy of ``value`` where every dict entry named like a secret (at any depth) is masked."""
    if isinstance(value, dict):
        return {k: ("********" if is_secret_name(k) and v not in (None, "") else redact_secrets(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_secrets(v) for v in value]
    return value


def format_path(parts):
    """``['nginx_sites', 1, 'static_root']`` -> ``nginx_sites[1].static_root``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out:
            out = str(part)
        elif _IDENT.fullmatch(str(part)):
            out += f".{part}"
        else:
            out += f"[{str(part)!r}]"
    return out


def show_value(value, limit=80):
    """A short, unambiguous rendering of a value for messages (newlines visible)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, str):
        text = repr(str(value))
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        text = repr(_plain(value))
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def closest(name, candidates):
    """The candidate closest to ``name`` (difflib), or None."""
    found = difflib.get_close_matches(str(name), sorted(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def typename(value):
    return _formats._typename(value)


class Problem:
    """One thing wrong with one variable."""

    __slots__ = ("path", "reason", "given", "accepted", "kind")

    def __init__(self, path, reason, given=None, accepted=None, kind="type"):
        self.path = path
        self.reason = reason
        self.given = given  # already rendered (show_value) or None when secret / not useful
        self.accepted = accepted
        self.kind = kind

    def render(self, host=None):
        where = f"{self.path} on {host}" if host else self.path
        text = f"{where}: {self.reason}"
        if self.given is not None:
            text += f" (given: {self.given})"
        if self.accepted:
            text += f"; accepted: {self.accepted}"
        return text

    def as_dict(self, host=None):
        return {"variable": self.path, "host": host, "problem": self.reason, "given": self.given,
                "accepted": self.accepted, "kind": self.kind, "msg": self.render(host)}

    def __repr__(self):
        return f"Problem({self.render()!r})"


def parse_format_path(text):
    """``nginx_sites[].websocket_locations[].upstream`` -> ``('nginx_sites', ['[]', '.websocket_locations', ...])``.

    Segments: ``[]`` every list item, ``.key`` one dict key, ``.*`` every dict value, ``{}`` every dict key.
    """
    match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\]|\{\}|\.\*|\.[A-Za-z0-9_-]+)*)", text)
    if not match:
        raise ValueError(f"bad variable path {text!r} in formats (use name, name[], name.key, name.*, name{{}})")
    segments = re.findall(r"\[\]|\{\}|\.\*|\.[A-Za-z0-9_-]+", match.group(2))
    return match.group(1), segments


_TYPE_WORDS = {
    "str": "a string", "path": "a path (string)", "int": "an integer", "float": "a number", "bool": "a boolean",
    "list": "a list", "dict": "a dict", "raw": "any value",
}


def _expected(spec):
    kind = spec.get("type") or "raw"
    if kind == "list":
        elements = spec.get("elements")
        if elements:
            words = _TYPE_WORDS.get(elements, elements)
            plural = {"a string": "strings", "a path (string)": "paths", "an integer": "integers", "a number": "numbers",
                      "a boolean": "booleans", "a dict": "dicts", "a list": "lists"}.get(words, words)
            return f"a list of {plural}"
        return "a list"
    return _TYPE_WORDS.get(kind, kind)


class SpecChecker:
    """Check values against the options of an argument spec.

    ``options``: the ``options`` mapping of an entry point. ``formats``: mapping of variable paths to
    format names (see :func:`parse_format_path`; a name may be ``a|b`` or a list for alternatives, and
    end with ``?`` to allow an empty string). ``secret_names``: extra option names whose values are
    never shown.
    """

    def __init__(self, options, formats=None, secret_names=()):
        self.options = options or {}
        self.secret_names = set(secret_names)
        self.formats = {}
        for path, names in (formats or {}).items():
            top, segments = parse_format_path(path)
            if isinstance(names, str):
                names = [n.strip() for n in names.split("|")]
            for name in names:
                if not _formats.known(name):
                    raise ValueError(f"unknown format {name!r} for {path}")
            self.formats.setdefault(top, []).append((segments, list(names)))

    # ---------------------------------------------------------------------------------------
    def check(self, values):
        """``values``: mapping name -> value (MISSING or absent for undefined).

        Returns ``(normalized, problems)``; ``normalized`` has every option that has a usable value.
        """
        problems = []
        normalized = {}
        for name, spec in self.options.items():
            spec = spec or {}
            value = values.get(name, MISSING)
            secret = self._secret(name, spec)
            if value is MISSING:
                if spec.get("required"):
                    problems.append(Problem(name, "is required but not set", accepted=_expected(spec),
                                            kind="required"))
                continue
            if value is None and spec.get("default") is not None:
                problems.append(Problem(name, "has no value (null: a key without a value in YAML)", given=None,
                                        accepted=_expected(spec) + ' (write "" for an empty string, [] or {} for '
                                        'an empty list or dict)', kind="type"))
                continue
            errors_before = len(problems)
            bad_paths = set()
            converted = self._value(value, spec, [name], secret, problems, bad_paths)
            if name in self.formats and value is not None:
                converted = self._apply_formats(name, value, converted, secret, problems, bad_paths)
            if len(problems) == errors_before:
                normalized[name] = converted
        return normalized, problems

    def _secret(self, name, spec):
        return bool(spec.get("no_log")) or name in self.secret_names or is_secret_name(name)

    # ---------------------------------------------------------------------------------------
    def _value(self, value, spec, path, secret, problems, bad_paths):
        kind = spec.get("type") or "raw"
        given = None if secret else show_value(value)

        def fail(reason, accepted=None, kind_="type"):
            problems.append(Problem(format_path(path), reason, given=given,
                                    accepted=accepted or _expected(spec), kind=kind_))
            bad_paths.add(tuple(path))
            return MISSING

        converted = self._convert(value, kind, fail)
        if converted is MISSING:
            return MISSING

        if kind == "list":
            elements = spec.get("elements")
            out = []
            for index, item in enumerate(converted):
                if elements:
                    sub = {"type": elements}
                    if "options" in spec:
                        sub["options"] = spec["options"]
                    for key in ("mutually_exclusive", "required_together", "required_one_of", "required_if",
                                "required_by"):
                        if key in spec:
                            sub[key] = spec[key]
                    if "choices" in spec:
                        sub["choices"] = spec["choices"]
                    item_secret = secret
                    out.append(self._value(item, sub, path + [index], item_secret, problems, bad_paths))
                else:
                    out.append(item)
                    if "choices" in spec:
                        self._choices(item, spec["choices"], path + [index], secret, problems, bad_paths)
            return out

        if kind == "dict" and spec.get("options") is not None:
            return self._suboptions(converted, spec, path, secret, problems, bad_paths)

        if "choices" in spec and kind != "list":
            if not self._choices(converted, spec["choices"], path, secret, problems, bad_paths):
                return MISSING
        return converted

    def _choices(self, value, choices, path, secret, problems, bad_paths):
        plain = [_plain(c) for c in choices]
        if _plain(value) in plain:
            return True
        reason = "is not one of the choices"
        hint = closest(value, [str(c) for c in plain]) if isinstance(value, str) else None
        if hint and not secret:
            reason += f" (did you mean {hint!r}?)"
        problems.append(Problem(format_path(path), reason, given=None if secret else show_value(value),
                                accepted=", ".join(str(c) for c in plain), kind="choices"))
        bad_paths.add(tuple(path))
        return False

    def _convert(self, value, kind, fail):
        if kind in ("str", "path", "bytes", "bits"):
            if isinstance(value, bool):
                return fail("is a boolean where a string is expected: quote it (YAML reads unquoted yes/no/on/off/"
                            "true/false as booleans)")
            if isinstance(value, float):
                return fail("is a float where a string is expected: quote it (YAML reads 1.10 as 1.1)")
            if isinstance(value, int):
                if kind == "path":
                    return fail("is a number where a path is expected")
                return str(int(value))
            if isinstance(value, str):
                return str(value)
            return fail(f"is {typename(value)} where a string is expected")
        if kind == "int":
            if isinstance(value, bool):
                return fail("is a boolean where an integer is expected")
            if isinstance(value, int):
                return int(value)
            if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
                return int(value.strip())
            if isinstance(value, float):
                return fail("is a float where an integer is expected (a whole number without a decimal point)")
            return fail(f"is {typename(value)} where an integer is expected" if not isinstance(value, str)
                        else "is not an integer")
        if kind == "float":
            if isinstance(value, bool):
                return fail("is a boolean where a number is expected")
            if isinstance(value, (int, float)):
                return float(value)
            if isinstance(value, str) and re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?",
                                                       value.strip()):
                return float(value.strip())
            return fail("is not a number" if isinstance(value, str) else f"is {typename(value)} where a number is expected")
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and int(value) in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in _TRUE:
                return True
            if isinstance(value, str) and value.strip().lower() in _FALSE:
                return False
            return fail(("is not a boolean" if isinstance(value, str) else f"is {typename(value)} where a boolean is expected"),
                        accepted="true or false (also yes/no, on/off, 1/0)")
        if kind == "list":
            if isinstance(value, (list, tuple)):
                return list(value)
            if isinstance(value, str):
                example = show_value(str(value), 40)
                return fail("is a string where a list is expected; a string is never split into a list",
                            accepted=None if example is None else f"a list, e.g. [{example}]")
            return fail(f"is {typename(value)} where a list is expected")
        if kind == "dict":
            if isinstance(value, dict):
                return dict(value)
            return fail(f"is {typename(value)} where a dict is expected (keys and values, e.g. {{key: value}})")
        return value  # raw, json, jsonarg and unknown types: anything

    def _suboptions(self, value, spec, path, secret, problems, bad_paths):
        options = spec.get("options") or {}
        aliases = {}
        for key, sub in options.items():
            for alias in (sub or {}).get("aliases", []) or []:
                aliases[alias] = key
        out = {}
        present = set()
        for key, item in value.items():
            canonical = aliases.get(key, key)
            if canonical not in options:
                hint = closest(key, options)
                reason = "is not a known key" + (f" (did you mean {hint!r}?)" if hint else "")
                problems.append(Problem(format_path(path + [key]), reason, given=None,
                                        accepted="keys " + ", ".join(sorted(options)), kind="unknown"))
                bad_paths.add(tuple(path + [key]))
                continue
            sub = options[canonical] or {}
            if item is None and not sub.get("required"):
                continue
            present.add(canonical)
            item_secret = secret or self._secret(canonical, sub)
            out[canonical] = self._value(item, sub, path + [key], item_secret, problems, bad_paths)
        for key, sub in options.items():
            sub = sub or {}
            if key in present:
                continue
            if sub.get("required"):
                problems.append(Problem(format_path(path + [key]), "is required but missing",
                                        accepted=_expected(sub), kind="required"))
                bad_paths.add(tuple(path + [key]))
            elif sub.get("default") is not None:
                out[key] = _plain(sub["default"])
        self._relations(spec, present, path, problems, bad_paths, value)
        return out

    def _relations(self, spec, present, path, problems, bad_paths, value):
        where = format_path(path)
        for group in spec.get("mutually_exclusive", []) or []:
            both = [k for k in group if k in present]
            if len(both) > 1:
                problems.append(Problem(where, f"sets {', '.join(both)}, which exclude each other", kind="rule"))
        for group in spec.get("required_together", []) or []:
            some = [k for k in group if k in present]
            if some and len(some) != len(group):
                problems.append(Problem(where, f"sets {', '.join(some)} without {', '.join(k for k in group if k not in present)}",
                                        accepted=f"{', '.join(group)} together", kind="rule"))
        for group in spec.get("required_one_of", []) or []:
            if not any(k in present for k in group):
                problems.append(Problem(where, f"needs one of {', '.join(group)}", kind="required"))
        for rule in spec.get("required_if", []) or []:
            key, expected, needed = rule[0], rule[1], rule[2]
            any_of = len(rule) > 3 and rule[3]
            if key in present and _plain(value.get(key)) == _plain(expected):
                missing = [k for k in needed if k not in present]
                if missing and (not any_of or len(missing) == len(needed)):
                    problems.append(Problem(where, f"has {key}={expected} and needs {', '.join(missing)}",
                                            kind="required"))

    # ---------------------------------------------------------------------------------------
    def _apply_formats(self, name, raw, converted, secret, problems, bad_paths):
        for segments, names in self.formats[name]:
            for cpath, raw_leaf, conv_leaf, setter in self._walk(raw, converted, segments, [name]):
                if any(tuple(cpath[:i]) in bad_paths for i in range(1, len(cpath) + 1)):
                    continue
                if raw_leaf is None or raw_leaf is MISSING:
                    continue
                leaf_secret = secret or any(is_secret_name(p) for p in cpath if isinstance(p, str)) or \
                    self._path_secret(cpath)
                # Formats see the value as written (an integer mode stays an integer), except that
                # an integer becomes a string where the spec converts it to one.
                subject = raw_leaf
                if "octal_mode" not in names and "mode" not in names and isinstance(conv_leaf, str) \
                        and isinstance(raw_leaf, int) and not isinstance(raw_leaf, bool):
                    subject = conv_leaf
                try:
                    result = _formats.check_any(names, subject)
                except _formats.FormatError as err:
                    accepted = " or ".join(_formats.describe(n) for n in names)
                    problems.append(Problem(format_path(cpath), str(err), given=None if leaf_secret else show_value(raw_leaf),
                                            accepted=accepted, kind="format"))
                    if not segments or segments[-1] != "{}":  # a bad key does not hide its value's problems
                        bad_paths.add(tuple(cpath))
                    continue
                if conv_leaf is not MISSING and _same_kind(result, conv_leaf):
                    if setter == "root":
                        converted = result
                    elif setter is not None:
                        setter(result)
        return converted

    def _path_secret(self, cpath):
        spec = self.options.get(cpath[0]) or {}
        for part in cpath[1:]:
            if isinstance(part, int):
                continue
            spec = (spec.get("options") or {}).get(part) or {}
            if spec.get("no_log"):
                return True
        return False

    def _walk(self, raw, conv, segments, path):
        """Yield (concrete path, raw leaf, converted leaf, setter) for every match of segments."""
        if not segments:
            if len(path) == 1:
                yield path, raw, conv, "root"
            else:
                yield path, raw, conv, None
            return
        seg, rest = segments[0], segments[1:]
        if seg == "[]":
            if isinstance(raw, (list, tuple)):
                for index, item in enumerate(raw):
                    citem = conv[index] if isinstance(conv, list) and index < len(conv) else MISSING
                    if not rest and isinstance(conv, list) and index < len(conv):
                        def setter(value, _c=conv, _i=index):
                            _c[_i] = value
                        yield path + [index], item, citem, setter
                    else:
                        yield from self._walk(item, citem, rest, path + [index])
        elif seg == ".*":
            if isinstance(raw, dict):
                for key, item in raw.items():
                    citem = conv.get(key, MISSING) if isinstance(conv, dict) else MISSING
                    if not rest and isinstance(conv, dict) and key in conv:
                        def setter(value, _c=conv, _k=key):
                            _c[_k] = value
                        yield path + [key], item, citem, setter
                    else:
                        yield from self._walk(item, citem, rest, path + [key])
        elif seg == "{}":
            if isinstance(raw, dict):
                for key in raw:
                    yield path + [key], key, key, None
        else:
            key = seg[1:]
            if isinstance(raw, dict) and key in raw:
                citem = conv.get(key, MISSING) if isinstance(conv, dict) else MISSING
                if not rest and isinstance(conv, dict) and key in conv:
                    def setter(value, _c=conv, _k=key):
                        _c[_k] = value
                    yield path + [key], raw[key], citem, setter
                else:
                    yield from self._walk(raw[key], citem, rest, path + [key])


def _same_kind(a, b):
    for kind in (bool, str, int, float, list, dict):
        if isinstance(b, kind):
            return isinstance(a, kind) and (kind is not int or not isinstance(a, bool))
    return False


def unknown_names(names, known, prefix, ignore_prefixes=("__",)):
    """Role-prefixed names that the role does not know: list of ``(name, closest known name or None)``."""
    out = []
    known = set(known)
    for name in sorted(names):
        if not name.startswith(prefix) or name in known:
            continue
        if any(name.startswith(p) for p in ignore_prefixes):
            continue
        out.append((name, closest(name, known)))
    return out
