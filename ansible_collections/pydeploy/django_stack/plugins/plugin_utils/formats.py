# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Value formats checked on the controller before anything changes on a host.

Every format is a function ``value -> normalized value`` that raises :class:`FormatError` with a
reason when the value does not fit, plus a sentence saying what the format accepts (used in the
messages of ``pydeploy.django_stack.validate_vars``). Every regular expression is applied with
``fullmatch``: a trailing newline never passes (``re.match('^...$')`` lets ``"x\\n"`` through).

Formats take the value as the user gave it, after Jinja templating: most want a string; ``port``
and ``octal_mode`` also take integers (YAML reads an unquoted ``0660`` as the integer 432).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import keyword
import re
from urllib.parse import urlsplit

__all__ = ["FormatError", "FORMATS", "check", "check_any", "describe", "octal_mode", "known"]


class FormatError(ValueError):
    """The value does not have the format; ``str(err)`` says why."""


class Format:
    __slots__ = ("name", "func", "accepts")

    def __init__(self, name, func, accepts):
        self.name = name
        self.func = func
        self.accepts = accepts

    def __call__(self, value):
        return self.func(value)


FORMATS: dict[str, Format] = {}
_ALIASES: dict[str, str] = {}


def _format(name, accepts, aliases=()):
    def register(func):
        FORMATS[name] = Format(name, func, accepts)
        for alias in aliases:
            _ALIASES[alias] = name
        return func

    return register


def _resolve(name):
    optional = name.endswith("?")
    base = name[:-1] if optional else name
    base = _ALIASES.get(base, base)
    if base not in FORMATS:
        raise KeyError(f"unknown format {name!r} (known: {', '.join(sorted(FORMATS))})")
    return FORMATS[base], optional


def known(name):
    """True when ``name`` (a format name, optionally ending with ``?``) exists."""
    try:
        _resolve(name)
    except KeyError:
        return False
    return True


def describe(name):
    """What the format ``name`` accepts, as a phrase."""
    fmt, optional = _resolve(name)
    return fmt.accepts + (" (or empty)" if optional else "")


def check(name, value):
    """Check ``value`` against the format ``name`` and return the normalized value.

    A name ending with ``?`` also accepts an empty string (an unset optional setting).
    """
    fmt, optional = _resolve(name)
    if optional and (value == "" or value is None):
        return value
    return fmt(value)


def check_any(names, value):
    """Check ``value`` against several formats; the first that accepts it wins.

    ``names`` is a list or a string with ``|`` between names. Raises FormatError with every reason.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split("|")]
    if len(names) == 1:
        return check(names[0], value)
    reasons = []
    for name in names:
        try:
            return check(name, value)
        except FormatError as err:
            reasons.append(str(err))
    unique = list(dict.fromkeys(reasons))
    raise FormatError(" / ".join(unique))


# --------------------------------------------------------------------------------------------
# helpers

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _str(value, what="a string"):
    if isinstance(value, bool) or not isinstance(value, str):
        raise FormatError(f"{what} is expected, got {_typename(value)}")
    return value


def _typename(value):
    if value is None:
        return "null (nothing)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a dict"
    return type(value).__name__


def _no_control(value, what="the value"):
    found = _CONTROL.search(value)
    if found:
        ch = found.group()
        named = {"\n": "a newline", "\r": "a carriage return", "\x00": "a NUL byte", "\t": "a tab"}.get(
            ch, f"the control character {ch!r}")
        raise FormatError(f"{what} contains {named}")


def _nonempty(value, what="the value"):
    if value == "":
        raise FormatError(f"{what} is empty")


# --------------------------------------------------------------------------------------------
# numbers


@_format("nice_level", "a nice level -20 to 19 (0 is the normal priority, below 0 above it)")
def nice_level(value):
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,2}", value))):
        raise FormatError(f"a nice level is expected, got {value!r}" if isinstance(value, str) else
                          f"a nice level is expected, got {_typename(value)}")
    number = int(value)
    if not -20 <= number <= 19:
        raise FormatError(f"nice level {number} is outside -20 to 19")
    return number


@_format("port", "a port number 1-65535")
def port(value):
    if isinstance(value, bool):
        raise FormatError("a port number is expected, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,5}", value) and not (len(value) > 1 and value[0] == "0"):
        number = int(value)
    else:
        raise FormatError("not a port number" if isinstance(value, str) else f"a port number is expected, got {_typename(value)}")
    if not 1 <= number <= 65535:
        raise FormatError(f"port {number} is outside 1-65535")
    return number


def octal_mode(value):
    """A file mode as four octal digits (``"0660"``).

    Accepts a string of 3 or 4 octal digits (``"660"``, ``"0660"``, ``"0o660"``) and an integer
    (YAML reads an unquoted ``0660`` as 432, which is that mode). An integer above 0o777 is refused:
    an unquoted ``660`` is the decimal number 660, which is not what anyone means.
    """
    if isinstance(value, bool):
        raise FormatError("a mode is expected, got a boolean")
    if isinstance(value, int):
        if value < 0 or value > 0o777:
            raise FormatError(
                f"the integer {value} is not a mode (an unquoted 660 is the decimal number 660; "
                "write the mode as a quoted string such as \"0660\")")
        return f"{value:04o}"
    if not isinstance(value, str):
        raise FormatError(f"a mode is expected, got {_typename(value)}")
    text = value[2:] if value[:2] in ("0o", "0O") else value
    if not re.fullmatch(r"[0-7]{3,4}", text):
        raise FormatError("not an octal mode (3 or 4 digits 0-7, no symbolic modes)")
    return f"{int(text, 8):04o}"


_format("octal_mode", 'a file mode in octal, as a quoted string such as "0660" (written back as four digits)',
        aliases=("mode",))(octal_mode)


# --------------------------------------------------------------------------------------------
# names and addresses

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DNS_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def _dns(value, what="name"):
    if len(value) > 253:
        raise FormatError(f"the {what} is longer than 253 characters")
    if not _DNS_RE.fullmatch(value):
        if value.startswith(".") or value.endswith(".") or ".." in value:
            raise FormatError(f"the {what} has an empty label (a leading, trailing or double dot)")
        raise FormatError(f"the {what} has characters other than letters, digits, '-' and '.' (or a label "
                          "starting or ending with '-')")
    last = value.rsplit(".", 1)[-1]
    if last.isdigit():
        raise FormatError(f"{value!r} is neither an IP address nor a DNS name (its last label is a number)")
    return value


@_format("dns_name", "a DNS name such as app.example.com (letters, digits, '-', dots between labels)",
         aliases=("hostname",))
def dns_name(value):
    _str(value)
    _nonempty(value, "the name")
    return _dns(value)


def _ipv4(value):
    if not re.fullmatch(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}", value):
        raise FormatError("not an IPv4 address")
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError as err:
        raise FormatError(f"not an IPv4 address ({err})") from None


def _ipv6(value):
    if not re.fullmatch(r"[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?", value) or ":" not in value:
        raise FormatError("not an IPv6 address")
    try:
        ipaddress.IPv6Address(value)
    except ValueError as err:
        raise FormatError(f"not an IPv6 address ({err})") from None
    return value


@_format("ip_address", "an IPv4 or IPv6 address (IPv6 without brackets)", aliases=("ip",))
def ip_address(value):
    _str(value)
    if ":" in value:
        return _ipv6(value)
    return _ipv4(value)


@_format("host", "a DNS name or an IP address")
def host(value):
    _str(value)
    _nonempty(value, "the host")
    if ":" in value:
        return _ipv6(value)
    if re.fullmatch(r"[0-9.]+", value):
        return _ipv4(value)
    return _dns(value, "host name")


@_format("cert_host", "a DNS name (labels may hold '_', as inventory and container names do) or an IP address")
def cert_host(value):
    """A name for a certificate's subjectAltName: what ``host`` accepts, and names with '_'."""
    _str(value)
    _nonempty(value, "the host")
    _no_control(value)
    host(value.replace("_", "-") if re.fullmatch(r"[A-Za-z0-9_.-]+", value) else value)
    return value


@_format("cidr", "a network in CIDR notation such as 10.0.0.0/24 or 2001:db8::/64 (prefix 0-32 for IPv4, 0-128 for IPv6)")
def cidr(value):
    _str(value)
    if "/" not in value:
        raise FormatError("no /prefix (write a single address as a.b.c.d/32 or ::1/128)")
    address, prefix = value.split("/", 1)
    if ":" in address:
        _ipv6(address)
        limit = 128
    else:
        _ipv4(address)
        limit = 32
    if not re.fullmatch(r"0|[1-9][0-9]{0,2}", prefix):
        raise FormatError(f"the prefix {prefix!r} is not a number")
    if int(prefix) > limit:
        raise FormatError(f"the prefix /{prefix} is larger than {limit}")
    return value


@_format("ip_or_cidr", "an IP address or a network in CIDR notation (10.0.0.0/24)")
def ip_or_cidr(value):
    _str(value)
    if "/" in value:
        return cidr(value)
    return ip_address(value)


@_format("host_port", "host:port with an IPv4 address, [IPv6] address or DNS name and a port 1-65535")
def host_port(value):
    _str(value)
    _no_control(value)
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise FormatError("an IPv6 address opened with '[' is not closed with ']'")
        address, rest = value[1:end], value[end + 1:]
        _ipv6(address)
        if not rest.startswith(":"):
            raise FormatError("no :port after the [IPv6] address")
        number = rest[1:]
    else:
        if value.count(":") > 1:
            raise FormatError("an IPv6 address needs brackets: [2001:db8::1]:8000")
        if ":" not in value:
            raise FormatError("no :port")
        address, number = value.rsplit(":", 1)
        host(address)
    port(number)
    return value


@_format("server_name", "an nginx server name: a DNS name, *.example.com, example.*, .example.com, an IP address or _")
def server_name(value):
    _str(value)
    _nonempty(value, "the server name")
    _no_control(value)
    if value == "_":
        return value
    if value.startswith("~"):
        raise FormatError("regular expression server names are not supported")
    if value.startswith("[") and value.endswith("]"):
        _ipv6(value[1:-1])
        return value
    if ":" in value:
        _ipv6(value)
        return value
    name = value
    if name.startswith("*."):
        name = name[2:]
    elif name.startswith("."):
        name = name[1:]
    elif name.endswith(".*"):
        name = name[:-2]
    if "*" in name:
        raise FormatError("a wildcard is only allowed as the first or last label (*.example.com, example.*)")
    if re.fullmatch(r"[0-9.]+", name) and name == value:
        _ipv4(name)
        return value
    # nginx matches '_' in names like any other character; inventory and container names hold it
    # (the app's default server names include the inventory host name).
    _dns(name.replace("_", "-") if re.fullmatch(r"[A-Za-z0-9_.-]+", name) else name, "server name")
    return value


@_format("allowed_host", "a Django ALLOWED_HOSTS entry: a DNS name, .example.com (with subdomains), an IP address or *")
def allowed_host(value):
    _str(value)
    _nonempty(value, "the host")
    _no_control(value)
    if value == "*":
        return value
    if value.startswith("[") and value.endswith("]"):
        _ipv6(value[1:-1])
        return value
    name = value[1:] if value.startswith(".") else value
    # Inventory and container names often hold '_' (pydeploy-uvicorn_worker-deb12, the role's default
    # lists inventory_hostname): harmless in ALLOWED_HOSTS and in nginx's server_name, so accepted.
    host(name.replace("_", "-") if re.fullmatch(r"[A-Za-z0-9_.-]+", name) else name)
    return value


# --------------------------------------------------------------------------------------------
# URLs


def _url_host(netloc, what):
    if "@" in netloc:
        netloc = netloc.rsplit("@", 1)[1]
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise FormatError(f"{what}: '[' without ']'")
        _ipv6(netloc[1:end])
        rest = netloc[end + 1:]
    else:
        name, sep, number = netloc.partition(":")
        rest = sep + number
        if name.startswith("*."):
            name = name[2:]
        host(name)
    if rest:
        if not rest.startswith(":"):
            raise FormatError(f"{what}: unexpected {rest!r} after the host")
        port(rest[1:])


@_format("http_origin", "an origin scheme://host[:port] with scheme http or https, such as https://example.com "
         "(*.example.com allowed, no path)")
def http_origin(value):
    _str(value)
    _no_control(value)
    if "://" not in value:
        raise FormatError("no scheme (write https://" + value + ")")
    scheme, rest = value.split("://", 1)
    if scheme not in ("http", "https"):
        raise FormatError(f"the scheme {scheme!r} is not http or https")
    if rest == "":
        raise FormatError("no host after the scheme")
    if "/" in rest or "?" in rest or "#" in rest:
        raise FormatError("an origin has no path, query or fragment (not even a trailing /)")
    if "@" in rest:
        raise FormatError("an origin has no user name")
    if re.search(r"\s", rest):
        raise FormatError("the origin contains blanks")
    _url_host(rest, "the host")
    return value


@_format("url", "an absolute URL scheme://host[:port][/path] without blanks or quotes")
def url(value):
    _str(value)
    _no_control(value)
    if re.search(r"[\s\"'<>\\`]", value):
        raise FormatError("the URL contains blanks, quotes, '<', '>', '`' or a backslash")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://.+", value):
        raise FormatError("not an absolute URL with a scheme (such as https://)")
    parts = urlsplit(value)
    if not parts.netloc:
        raise FormatError("no host in the URL")
    _url_host(parts.netloc, "the URL's host")
    return value


@_format("email", "an e-mail address such as ops@example.com")
def email(value):
    _str(value)
    _no_control(value)
    local, sep, domain = value.rpartition("@")
    if not sep or not local:
        raise FormatError("not an e-mail address (no user@)")
    if not re.fullmatch(r"[A-Za-z0-9._%+-]+", local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise FormatError("the part before @ may only hold letters, digits and . _ % + -")
    if "." not in domain:
        raise FormatError("the domain after @ needs a dot")
    _dns(domain, "domain")
    return value


# --------------------------------------------------------------------------------------------
# paths and strings


@_format("abs_path", "an absolute path (starting with /) without control characters or newlines")
def abs_path(value):
    _str(value)
    _no_control(value, "the path")
    if not value.startswith("/"):
        raise FormatError("not an absolute path (it must start with /)")
    return value


@_format("rel_path", "a relative path inside a tree (no leading /, no '..' part, no control characters, no blanks)")
def rel_path(value):
    _str(value)
    _no_control(value, "the path")
    _nonempty(value, "the path")
    if value.startswith("/"):
        raise FormatError("an absolute path where a path relative to the source is expected")
    if re.search(r"\s", value):
        raise FormatError("the path contains blanks")
    if ".." in value.split("/"):
        raise FormatError("the path leaves the tree ('..')")
    return value


@_format("file_name", "one file or directory name: letters, digits, '.', '_' and '-' (not '.' or '..')")
def file_name(value):
    _str(value)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", value) or value in (".", ".."):
        raise FormatError("only letters, digits, '.', '_' and '-' are allowed (and not '.' or '..')")
    return value


@_format("version", "a version such as 0.13.9 or 2.1rc1 (digits first, then letters, digits, '.', '+', '-')")
def version(value):
    _str(value)
    if not re.fullmatch(r"[0-9][0-9A-Za-z.+-]{0,63}", value):
        raise FormatError("not a version (digits first, then letters, digits, '.', '+' or '-')")
    return value


@_format("nginx_path", "an absolute path safe for nginx without quotes: no blanks, ';', '{', '}', quotes, '$', '#' "
         "or backslash", aliases=("abs_path_nginx",))
def nginx_path(value):
    abs_path(value)
    bad = re.search(r"[\s;{}\"'$#\\]", value)
    if bad:
        raise FormatError(f"the path contains {bad.group()!r}, which nginx would read as syntax")
    return value


@_format("url_path", "a URL path starting with / without blanks, quotes, ';', '{', '}', '$', '#', '?' or backslash")
def url_path(value):
    _str(value)
    _no_control(value, "the path")
    if not value.startswith("/"):
        raise FormatError("not a URL path (it must start with /; a full URL such as a CDN is not served here)")
    bad = re.search(r"[\s;{}\"'$#?\\]", value)
    if bad:
        raise FormatError(f"the path contains {bad.group()!r}")
    return value


@_format("url_prefix", "a URL path that starts and ends with /, such as /static/")
def url_prefix(value):
    url_path(value)
    if not value.endswith("/"):
        raise FormatError("a URL prefix must end with /")
    return value


@_format("single_line", "a single line of text (no newline, carriage return or NUL)")
def single_line(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    _str(value)
    for ch, name in (("\n", "a newline"), ("\r", "a carriage return"), ("\x00", "a NUL byte")):
        if ch in value:
            raise FormatError(f"the text contains {name}")
    return value


@_format("no_control", "text without control characters (no newline, tab, NUL...)")
def no_control(value):
    _str(value)
    _no_control(value)
    return value


@_format("unit_name", "a name part for systemd units and files: letters, digits, '_' and '-', at most 64, "
         "not starting with '-'")
def unit_name(value):
    _str(value)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}", value):
        raise FormatError("only letters, digits, '_' and '-' are allowed (at most 64, not starting with '-')")
    return value


@_format("user_name", "a Unix user or group name: lowercase letter or _ first, then lowercase letters, digits, _ "
         "and -, at most 32")
def user_name(value):
    _str(value)
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
        raise FormatError("not a Unix user name ([a-z_][a-z0-9_-], at most 32)")
    return value


@_format("env_name", "an environment variable name: letters, digits and _, not starting with a digit")
def env_name(value):
    _str(value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise FormatError("not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
    return value


@_format("env_value", "a value for the environment file: one line of text or a number, without control characters "
         "(quotes and $ are fine: filter env_file_value quotes them for systemd and the shell)")
def env_value(value):
    if isinstance(value, bool):
        raise FormatError('a boolean would be written as True/False: quote it ("true", "1", ...)')
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise FormatError(f"a string is expected, got {_typename(value)}")
    _no_control(value)
    return value


@_format("env_value_unquoted", "a value for an environment file written in single quotes without escapes (read by "
         "systemd and sourced by sh): one line of text or a number, without control characters or single quotes")
def env_value_unquoted(value):
    text = env_value(value)
    if "'" in text:
        raise FormatError("the value contains a single quote, which the environment file cannot carry")
    return text


@_format("identifier", "an identifier: letters, digits and _, not starting with a digit")
def identifier(value):
    _str(value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise FormatError("not an identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return value


@_format("python_module", "an importable Python module path such as mysite or mysite.settings")
def python_module(value):
    _str(value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*", value):
        raise FormatError("not an importable dotted name (identifiers separated by dots; no '-', blanks or slashes)")
    for part in value.split("."):
        if keyword.iskeyword(part):
            raise FormatError(f"{part!r} is a Python keyword and cannot be imported")
    return value


@_format("python_callable", "a Python callable as module:attribute, such as mysite.wsgi:application")
def python_callable(value):
    _str(value)
    module, sep, attr = value.partition(":")
    if not sep:
        raise FormatError("no ':' between the module and the attribute")
    try:
        python_module(module)
        python_module(attr)
    except FormatError as err:
        raise FormatError(f"{err} in {value!r}") from None
    return value


@_format("pg_identifier", "a PostgreSQL name: a letter or _ first, then letters, digits and _, at most 63")
def pg_identifier(value):
    _str(value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", value):
        raise FormatError("not a PostgreSQL identifier ([A-Za-z_][A-Za-z0-9_]{0,62})")
    return value


@_format("header_name", "an HTTP header name (letters, digits and -)")
def header_name(value):
    _str(value)
    if not re.fullmatch(r"[A-Za-z0-9-]+", value):
        raise FormatError("not an HTTP header name ([A-Za-z0-9-]+)")
    return value


@_format("header_value", "an HTTP header value: one line without control characters or '$' (quotes are fine: "
         "filter nginx_string escapes them)")
def header_value(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    _str(value)
    _no_control(value)
    if "$" in value:
        raise FormatError("the value contains '$', which nginx reads as a variable and cannot escape")
    return value


@_format("deb_package", "a Debian package name, optionally with =version (lowercase letters, digits, + - .)")
def deb_package(value):
    _str(value)
    if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+~:-]+)?", value):
        raise FormatError("not a Debian package name")
    return value


_REQ_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"


@_format("pip_requirement", "a pip requirement such as django==5.2.1 or uvicorn[standard]>=0.30 (no pip options)")
def pip_requirement(value):
    _str(value)
    _no_control(value)
    if value.startswith("-"):
        raise FormatError("pip options are not requirements (the value starts with '-')")
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # pragma: no cover - packaging ships with ansible-core
        if not re.fullmatch(rf"{_REQ_NAME}(\[[A-Za-z0-9_,.-]+\])?\s*([<>=!~]=?[^\s;]+(,\s*[<>=!~]=?[^\s,;]+)*)?", value):
            raise FormatError("not a requirement specifier") from None
        return value
    try:
        Requirement(value)
    except InvalidRequirement as err:
        raise FormatError(f"not a requirement specifier ({str(err).splitlines()[0]})") from None
    return value


# --------------------------------------------------------------------------------------------
# nginx values


@_format("nginx_size", "an nginx size: a number with an optional unit k, m or g, such as 10m")
def nginx_size(value):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    _str(value, "a size")
    if not re.fullmatch(r"[0-9]+[kKmMgG]?", value):
        raise FormatError("not an nginx size (a number with an optional k, m or g)")
    return value


_NGINX_TIME = r"(?:[0-9]+(?:ms|[smhdwMy]))+|[0-9]+"


@_format("nginx_time", "an nginx time such as 60s, 30d or 1h30m (units ms s m h d w M y)")
def nginx_time(value):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    _str(value, "a time")
    if not re.fullmatch(_NGINX_TIME, value):
        raise FormatError("not an nginx time (a number and a unit, such as 60s or 30d, no blanks)")
    return value


@_format("nginx_expires", "an nginx expires value: a time such as 30d, or off, epoch or max")
def nginx_expires(value):
    if value in ("off", "epoch", "max"):
        return value
    try:
        return nginx_time(value)
    except FormatError:
        raise FormatError("not an expires value (a time such as 30d, or off, epoch, max)") from None


@_format("rate", "a request rate such as 10r/s or 30r/m")
def rate(value):
    _str(value, "a rate")
    if not re.fullmatch(r"[1-9][0-9]{0,8}r/[sm]", value):
        raise FormatError("not a rate (a number of requests per second or minute, such as 10r/s or 30r/m)")
    return value


# --------------------------------------------------------------------------------------------
# PostgreSQL values


@_format("pg_size", "a PostgreSQL memory size: an integer and a unit kB, MB, GB or TB, such as 256MB")
def pg_size(value):
    _str(value, "a size")
    if not re.fullmatch(r"[0-9]+(?:kB|MB|GB|TB)", value):
        raise FormatError("not a size with a unit kB, MB, GB or TB (units are case-sensitive)")
    return value


@_format("pg_duration", "a PostgreSQL duration: an integer and a unit ms, s, min, h or d, such as 15min")
def pg_duration(value):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    _str(value, "a duration")
    if not re.fullmatch(r"[0-9]+(?:ms|s|min|h|d)?", value):
        raise FormatError("not a duration with a unit ms, s, min, h or d")
    return value


# --------------------------------------------------------------------------------------------
# systemd


_CAL_SHORTHANDS = {"minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly",
                   "semiannually"}
_WEEKDAYS = {"mon", "tue", "wed", "thu", "fri", "sat", "sun", "monday", "tuesday", "wednesday", "thursday",
             "friday", "saturday", "sunday"}


def _cal_component(text, low, high, what):
    for item in text.split(","):
        match = re.fullmatch(r"(\*|[0-9]{1,4})(?:\.\.([0-9]{1,4}))?(?:/([0-9]{1,4}))?", item)
        if not match:
            raise FormatError(f"{what} {item!r} is not *, a number, a range a..b or a repetition x/n")
        first, last, step = match.groups()
        for number in (first, last):
            if number not in (None, "*") and not low <= int(number) <= high:
                raise FormatError(f"{what} {number} is outside {low}-{high}")
        if step is not None and int(step) == 0:
            raise FormatError(f"{what}: a repetition of 0")


@_format("systemd_calendar", "a systemd calendar expression such as daily, Mon..Fri 09:00 or *-*-* 03:15:00 "
         "(weekdays, date Y-M-D, time H:M[:S], optional UTC)")
def systemd_calendar(value):
    _str(value)
    _no_control(value)
    tokens = value.split()
    if not tokens:
        raise FormatError("the expression is empty")
    if len(tokens) == 1 and tokens[0].lower() in _CAL_SHORTHANDS:
        return value
    if tokens[-1] == "UTC":
        tokens = tokens[:-1]
    seen = []
    for token in tokens:
        if re.fullmatch(r"[A-Za-z]+(?:\.\.[A-Za-z]+)?(?:,[A-Za-z]+(?:\.\.[A-Za-z]+)?)*", token):
            kind = "weekday"
            for day in re.split(r",|\.\.", token):
                if day.lower() not in _WEEKDAYS:
                    raise FormatError(f"{day!r} is not a weekday (Mon, Tue, ...)")
        elif ":" in token:
            kind = "time"
            parts = token.split(":")
            if len(parts) not in (2, 3):
                raise FormatError(f"the time {token!r} is not H:M or H:M:S")
            for part, (low, high, what) in zip(parts, ((0, 23, "hour"), (0, 59, "minute"), (0, 59, "second"))):
                _cal_component(part, low, high, what)
        elif "-" in token:
            kind = "date"
            parts = token.split("-")
            if len(parts) not in (2, 3):
                raise FormatError(f"the date {token!r} is not Y-M-D or M-D")
            limits = ((1970, 2200, "year"), (1, 12, "month"), (1, 31, "day"))[3 - len(parts):]
            for part, (low, high, what) in zip(parts, limits):
                _cal_component(part, low, high, what)
        else:
            raise FormatError(f"{token!r} is not a weekday, a date or a time")
        if kind in seen:
            raise FormatError(f"two {kind} parts")
        if seen and ["weekday", "date", "time"].index(kind) < ["weekday", "date", "time"].index(seen[-1]):
            raise FormatError("the parts must come in the order weekday, date, time")
        seen.append(kind)
    if not seen:
        raise FormatError("no weekday, date or time")
    return value


# --------------------------------------------------------------------------------------------
# PEM


def _pem(value, labels, what):
    _str(value)
    text = value.strip()
    block_re = r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----"
    blocks = re.findall(block_re, text, re.S)
    rest = re.sub(block_re, "", text, flags=re.S).strip()
    if not blocks or rest:
        raise FormatError(f"not PEM text (-----BEGIN {labels[0]}----- ... -----END {labels[0]}-----)")
    for label, body in blocks:
        if label not in labels:
            raise FormatError(f"a PEM block {label!r} where {what} is expected")
        data = "".join(body.split())
        try:
            der = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise FormatError(f"the PEM block {label!r} is not valid base64") from None
        if not der or der[0] != 0x30:
            raise FormatError(f"the PEM block {label!r} does not hold DER data")
    return value


@_format("pem_certificate", "one or more PEM certificates (-----BEGIN CERTIFICATE-----)")
def pem_certificate(value):
    return _pem(value, ("CERTIFICATE",), "a certificate")


@_format("pem_private_key", "a PEM private key (-----BEGIN PRIVATE KEY----- or EC/RSA PRIVATE KEY)")
def pem_private_key(value):
    _pem(value, ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"), "a private key")
    if value.strip().count("-----BEGIN") != 1:
        raise FormatError("more than one PEM block where one private key is expected")
    return value
