# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Controller-side logic of the postgres role, as filters (unit-tested in tests/unit/plugins/filter;
their documentation is in the YAML files of the same names).

- postgres_objects: the roles and databases to manage, from postgres_users/postgres_databases and
  the app tier's postgres_stack.app_databases, with the checks that both agree.
- postgres_problems: what is wrong with the role's inputs beyond types and formats (pg_hba.conf
  entries and networks, declared roles and databases, settings, certificate names), by variable.
- postgres_tls_plan: whether the server certificate issued from the deployment CA must be
  (re)issued, from the certificate file's text, and the CA certificate clients verify against;
  postgres_tls_provided: checks of a user-provided certificate against its CA;
  postgres_subject_alt_names: the certificate's subjectAltName entries.
- postgres_sync_plan: which roles, databases and privileges differ from what the server reports
  (one query), so that a converge with nothing to do makes no further round trip.
"""

from __future__ import annotations

import datetime
import hmac
import ipaddress
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.pydeploy.django_stack.plugins.filter.scram_verifier import VERIFIER, matches

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
RESERVED_ROLE = re.compile(r"(?i)(pg_.*|postgres|public|none|current_user|session_user|current_role|all)\Z")
# Names a database of pg_hba.conf's database field would be read as a keyword.
RESERVED_DATABASE = {"postgres", "template0", "template1", "all", "sameuser", "samerole", "samegroup", "replication"}
APP_DATABASE_KEYS = {"name", "user", "password"}

HBA_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
# trust (no authentication) and password (clear text on the wire) are not offered.
HBA_METHODS = ("scram-sha-256", "md5", "peer", "ident", "cert", "gss", "sspi", "pam", "ldap", "radius", "bsd",
               "reject")
HBA_KEYS = ("type", "database", "user", "address", "method", "options", "comment")
# One element of a comma-separated database or user list: a plain token (keywords, names, +group,
# @file) or a double-quoted name without quotes, blanks at the ends or control characters inside.
HBA_NAME_TOKEN = re.compile(r'(?:[A-Za-z0-9_.$@+-]+|"[^"\x00-\x1f\x7f]+")\Z')
# name=value options of a method; a value is a plain token or a double-quoted string.
HBA_OPTION = re.compile(r'([a-z_]+)=("[^"\x00-\x1f\x7f]*"|[^\s"#\x00-\x1f\x7f]+)')
HBA_KEYWORD_ADDRESSES = ("all", "samehost", "samenet")
DNS_NAME = re.compile(r"(?=.{1,253}\Z)(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+\Z")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----")


def _text(value, where):
    if not isinstance(value, str):
        raise AnsibleFilterError(f"{where} must be a string")
    return value


# ---- roles and databases -----------------------------------------------------------------------

def _same_password(one, other):
    """Two passwords, each in clear text or as a SCRAM-SHA-256 verifier, are the same password."""
    one_verifier, other_verifier = bool(VERIFIER.match(one)), bool(VERIFIER.match(other))
    if one_verifier and other_verifier:
        return hmac.compare_digest(one, other)
    if one_verifier:
        return matches(other, one)
    if other_verifier:
        return matches(one, other)
    return hmac.compare_digest(one.encode("utf-8"), other.encode("utf-8"))


def _identifier_problem(value, where, what):
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        return f"{where}: {what} must be a PostgreSQL name, [A-Za-z_][A-Za-z0-9_]{{0,62}}"
    return None


def postgres_objects(app_databases, users=None, databases=None):
    """The roles and databases the role manages: postgres_users and postgres_databases, plus one
    login role and one database per entry of postgres_stack.app_databases that they do not list.

    Returns {users, databases, problems}; a problem names the variables involved and never prints
    a password. When both name the same role or database they must agree: the same password
    (clear text or verifier), a role that logs in, and an app role that owns (or is granted) the
    database it connects to.
    """
    users = list(users or [])
    databases = list(databases or [])
    problems = []
    if app_databases is None:
        app_databases = []
    if not isinstance(app_databases, list):
        return {"users": users, "databases": databases,
                "problems": ["postgres_stack.app_databases must be a list of {name, user, password}"]}
    user_index = {u.get("name"): i for i, u in enumerate(users) if isinstance(u, dict)}
    db_index = {d.get("name"): i for i, d in enumerate(databases) if isinstance(d, dict)}
    new_users, new_databases = {}, {}
    seen_db, seen_user = {}, {}
    for i, entry in enumerate(app_databases):
        where = f"postgres_stack.app_databases[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a dict {{name, user, password}}")
            continue
        unknown = sorted(set(entry) - APP_DATABASE_KEYS)
        if unknown:
            problems.append(f"{where}: unknown keys {unknown} (known: name, user, password)")
        name, user, password = entry.get("name"), entry.get("user"), entry.get("password")
        bad = [p for p in (_identifier_problem(name, f"{where}.name", "the database name"),
                           _identifier_problem(user, f"{where}.user", "the role name")) if p]
        if password is None:
            password = ""
        if not isinstance(password, str):
            bad.append(f"{where}.password must be a string")
        if bad:
            problems.extend(bad)
            continue
        if name in RESERVED_DATABASE:
            problems.append(f"{where}.name: the app's database cannot be {name}")
            continue
        if RESERVED_ROLE.match(user):
            problems.append(f"{where}.user: the app's role cannot be {user} (reserved; never a superuser)")
            continue

        if name in seen_db:
            j, other_user = seen_db[name]
            if other_user != user:
                problems.append(f"{where}.user: the app hosts connect to database {name} as {user} and as "
                                f"{other_user} (postgres_stack.app_databases[{j}]); they must use one role")
            continue
        seen_db[name] = (i, user)
        if user in seen_user:
            j, other_password = seen_user[user]
            if password and other_password and not _same_password(password, other_password):
                problems.append(f"{where}.password differs from postgres_stack.app_databases[{j}].password for role "
                                f"{user}: every app host must use the same python_app_database_password")
        else:
            seen_user[user] = (i, password)

        app_user = f"python_app_database.user ({where}.user)"
        app_name = f"python_app_database.name ({where}.name)"
        app_password = f"python_app_database_password ({where}.password)"
        if user in user_index:
            k = user_index[user]
            declared = users[k]
            if not declared.get("login", True):
                problems.append(f"postgres_users[{k}].login is false, but the app logs in as {user} ({app_user})")
            declared_password = declared.get("password") or ""
            if password and isinstance(declared_password, str) and declared_password \
                    and not _same_password(password, declared_password):
                problems.append(f"postgres_users[{k}].password and {app_password} differ for role {user}: write the "
                                f"password once, as python_app_database_password, and drop postgres_users[{k}].password")
            if not password and not declared_password and declared.get("login", True):
                problems.append(f"{app_password} is empty and postgres_users[{k}].password too: the app role {user} "
                                "logs in with a password (set python_app_database_password)")
            if name not in db_index:
                # The role is declared: its database must be too (a name that differs is a typo on one side).
                problems.append(f"{app_name} is {name}, but postgres_users[{k}] ({user}) is declared and postgres_databases "
                                f"has no database {name}: fix the name on one side, or declare {name} in "
                                "postgres_databases")
        elif user not in new_users:
            if not password:
                problems.append(f"{app_password} is empty: the app role {user} logs in with a password (set "
                                "python_app_database_password)")
            new_users[user] = {"name": user, "password": password}

        if name in db_index:
            k = db_index[name]
            owner = databases[k].get("owner")
            granted = users[user_index[user]].get("databases") or [] if user in user_index else []
            if owner != user and name not in granted:
                problems.append(f"{app_user} is {user}, but postgres_databases[{k}].owner of database {name} is {owner}: "
                                f"make {user} the owner, or declare {user} in postgres_users with databases: [{name}]")
        elif name not in new_databases:
            new_databases[name] = {"name": name, "owner": user}
    return {"users": users + list(new_users.values()), "databases": databases + list(new_databases.values()),
            "problems": problems}


def postgres_declared_problems(users, databases, app_databases=None):
    """Problems of postgres_users and postgres_databases themselves, each naming the list index and
    key (postgres_users[1].password, postgres_databases[0].owner, ...); never a password."""
    problems = []
    users = users if isinstance(users, list) else []
    databases = databases if isinstance(databases, list) else []
    app = [a for a in (app_databases or []) if isinstance(a, dict)]
    app_users = {a.get("user") for a in app if a.get("password")}
    roles = {u.get("name") for u in users if isinstance(u, dict)} | {a.get("user") for a in app} | {"postgres"}
    managed = {d.get("name") for d in databases if isinstance(d, dict)} | {a.get("name") for a in app}
    seen = {}
    for i, user in enumerate(users):
        if not isinstance(user, dict):
            continue
        name = user.get("name")
        if isinstance(name, str) and RESERVED_ROLE.match(name):
            problems.append(f"postgres_users[{i}].name: {name} is reserved (postgres, public, all, pg_*...); the role "
                            "manages app roles, never the superuser")
        if name in seen:
            problems.append(f"postgres_users[{i}].name: {name} is also postgres_users[{seen[name]}]")
        seen.setdefault(name, i)
        if user.get("login", True) is not False and not user.get("password") and name not in app_users:
            problems.append(f"postgres_users[{i}].password is missing: {name} logs in (login is true by default), so it "
                            "needs a password from a vault (or the app's python_app_database_password when the app "
                            "connects as it), or login: false")
        for j, db in enumerate(user.get("databases") or []):
            if db not in managed:
                problems.append(f"postgres_users[{i}].databases[{j}]: {db} is not a managed database")
    seen = {}
    for i, database in enumerate(databases):
        if not isinstance(database, dict):
            continue
        name = database.get("name")
        if name in RESERVED_DATABASE:
            problems.append(f"postgres_databases[{i}].name: {name} is reserved ({', '.join(sorted(RESERVED_DATABASE))})")
        if name in seen:
            problems.append(f"postgres_databases[{i}].name: {name} is also postgres_databases[{seen[name]}]")
        seen.setdefault(name, i)
        owner = database.get("owner")
        if owner not in roles:
            problems.append(f"postgres_databases[{i}].owner: {owner} is no role of postgres_users, of the app, nor "
                            "postgres")
        for j, extension in enumerate(database.get("extensions") or []):
            if not isinstance(extension, str) or not re.fullmatch(r"[a-z0-9_-]{1,63}", extension):
                problems.append(f"postgres_databases[{i}].extensions[{j}] must be an extension name ([a-z0-9_-]+, "
                                "e.g. pg_trgm, uuid-ossp)")
    return problems


def postgres_settings_problems(settings):
    """Problems of postgres_settings: setting names, one-line values (each naming postgres_settings.<name>)."""
    if not isinstance(settings, dict):
        return []
    problems = []
    for key, value in settings.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z_][a-z0-9_.]{0,62}", key):
            problems.append(f"postgres_settings: {key!r} is not a setting name ([a-z_][a-z0-9_.]*)")
        elif isinstance(value, (dict, list)) or value is None:
            problems.append(f"postgres_settings.{key} must be a string, a number or a boolean")
        elif isinstance(value, str) and CONTROL.search(value):
            problems.append(f"postgres_settings.{key} holds a newline or another control character (it would add "
                            "settings of its own)")
    return problems


# ---- pg_hba.conf --------------------------------------------------------------------------------

def _network_problem(value, where, keywords=("samehost", "samenet")):
    """None when `value` is a CIDR network (or one of the keywords), else why not."""
    if not isinstance(value, str):
        return f"{where} must be a string such as 10.0.0.0/24"
    if value in keywords:
        return None
    if CONTROL.search(value) or re.search(r"\s", value):
        return f"{where} holds blanks or control characters"
    address, sep, length = value.partition("/")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"{where}: {address} is not an IPv4 or IPv6 address"
    if not sep:
        return f"{where}: {value} has no prefix length (write {value}/{parsed.max_prefixlen} for one host)"
    if not re.fullmatch(r"[0-9]{1,3}", length) or int(length) > parsed.max_prefixlen:
        return f"{where}: /{length} is not a prefix length of an IPv{parsed.version} address (0-{parsed.max_prefixlen})"
    return None


def postgres_network_problems(networks, name):
    """Problems of a list of pg_hba.conf networks (CIDR, samehost, samenet), each naming name[i]."""
    if networks is None:
        return []
    if not isinstance(networks, list):
        return [f"{name} must be a list of CIDR networks such as [10.0.0.11/32]"]
    return [p for p in (_network_problem(n, f"{name}[{i}]") for i, n in enumerate(networks)) if p]


def _split_names(value):
    """Elements of a comma-separated pg_hba.conf name list; commas inside double quotes do not split."""
    elements, current, quoted = [], "", False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            elements.append(current)
            current = ""
        else:
            current += char
    elements.append(current)
    return elements, quoted


def _name_list_problem(value, where):
    if not isinstance(value, str) or not value:
        return f"{where} must be a non-empty string (comma-separated names, all, sameuser, +group...)"
    if CONTROL.search(value):
        return f"{where} holds a line break or another control character"
    elements, unbalanced = _split_names(value)
    if unbalanced or not all(HBA_NAME_TOKEN.match(e) for e in elements):
        return (f"{where} must be comma-separated names without blanks, '#' or stray quotes (quote a name with "
                "special characters as \"My Name\")")
    return None


def _address_problem(value, where):
    if not isinstance(value, str) or not value:
        return f"{where} is required for this type: a CIDR network, a host name, all, samehost or samenet"
    if value in HBA_KEYWORD_ADDRESSES:
        return None
    if CONTROL.search(value) or re.search(r"[\s#\"]", value):
        return f"{where} holds blanks, '#', quotes or control characters"
    if "/" in value or re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*", value):
        return _network_problem(value, where, keywords=())
    host = value[1:] if value.startswith(".") else value
    if not DNS_NAME.match(host):
        return f"{where}: {value} is neither a CIDR network nor a host name"
    return None


def _options_problem(value, where):
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return f"{where} must be a string of name=value options"
    if CONTROL.search(value):
        return f"{where} holds a line break or another control character (it would start a pg_hba.conf line)"
    rest = value.strip()
    while rest:
        found = HBA_OPTION.match(rest)
        if not found or (found.end() < len(rest) and not rest[found.end()].isspace()):
            return (f"{where} must be blank-separated name=value options (a value with blanks in double quotes, "
                    "no '#' or stray quotes)")
        rest = rest[found.end():].lstrip()
    return None


def postgres_hba_problems(entries):
    """Problems of postgres_hba_entries, each naming postgres_hba_entries[i].<key>; values of
    options are never printed (ldapbindpasswd and radiussecrets are secrets)."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        return ["postgres_hba_entries must be a list of dicts"]
    problems = []
    for i, entry in enumerate(entries):
        where = f"postgres_hba_entries[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a dict with type, database, user, address, method")
            continue
        unknown = sorted(set(entry) - set(HBA_KEYS))
        if unknown:
            problems.append(f"{where}: unknown keys {unknown} (known: {', '.join(HBA_KEYS)})")
        kind, method = entry.get("type"), entry.get("method")
        if kind not in HBA_TYPES:
            problems.append(f"{where}.type must be one of {', '.join(HBA_TYPES)}")
        if method not in HBA_METHODS:
            shown = method if isinstance(method, str) and not CONTROL.search(method) and len(method) < 40 else "(invalid)"
            problems.append(f"{where}.method: got {shown}; one of {', '.join(HBA_METHODS)} (trust and password are "
                            "not accepted)")
        for key in ("database", "user"):
            problem = _name_list_problem(entry.get(key), f"{where}.{key}")
            if problem:
                problems.append(problem)
        if kind == "local":
            if entry.get("address") not in (None, ""):
                problems.append(f"{where}.address: a local entry has no address")
        elif kind in HBA_TYPES:
            problem = _address_problem(entry.get("address"), f"{where}.address")
            if problem:
                problems.append(problem)
        problem = _options_problem(entry.get("options"), f"{where}.options")
        if problem:
            problems.append(problem)
        comment = entry.get("comment")
        if comment is not None and (not isinstance(comment, str) or CONTROL.search(comment)):
            problems.append(f"{where}.comment must be one line of text")
    return problems


# ---- TLS ----------------------------------------------------------------------------------------

def _x509():
    try:
        from cryptography import x509  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise AnsibleFilterError("the postgres role's certificate checks need the Python package cryptography on "
                                 "the controller (ansible-core depends on it)") from exc
    return x509


def _certificates(text):
    x509 = _x509()
    found = []
    for pem in PEM_CERTIFICATE.findall(text or ""):
        pem = pem.replace("\r\n", "\n")
        try:
            found.append((x509.load_pem_x509_certificate(pem.encode("ascii")), pem + "\n"))
        except ValueError:
            found.append((None, pem + "\n"))
    return found


def _not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:  # cryptography < 42
        value = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return value


def _issued_by(cert, issuer):
    """cert carries a valid signature of issuer's key."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except AttributeError:  # cryptography < 40
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # pylint: disable=import-outside-toplevel
        key = issuer.public_key()
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                           cert.signature_hash_algorithm)
            else:
                return False
            return True
        except Exception:  # pylint: disable=broad-except
            return False
    except Exception:  # pylint: disable=broad-except
        return False


def _wanted_names(names):
    wanted = set()
    for name in names or []:
        name = str(name).strip()
        if not name:
            continue
        try:
            wanted.add(("ip", ipaddress.ip_address(name.split("%")[0])))
        except ValueError:
            wanted.add(("dns", name.lower().rstrip(".")))
    return wanted


def _cert_names(cert):
    x509 = _x509()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return ({("dns", n.lower().rstrip(".")) for n in san.get_values_for_type(x509.DNSName)}
            | {("ip", ipaddress.ip_address(a)) for a in san.get_values_for_type(x509.IPAddress)})


def _show(names):
    return ", ".join(sorted(str(value) for unused_kind, value in names))


def postgres_tls_plan(chain_pem, names, renew_days=30, now=None):
    """Whether the server certificate issued from the deployment CA must be (re)issued.

    chain_pem is the text of the certificate file: the server certificate, then the CA's. Returns
    {due, ca_due, reason, ca_pem}: due when there is no certificate, when it does not chain to the
    CA in the file, when its names differ from `names` or when it expires within renew_days;
    ca_due when the CA itself expires within renew_days (a new CA is made). ca_pem is the CA
    certificate clients verify against ("" when the file holds none).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    renew = datetime.timedelta(days=int(renew_days))
    plan = {"due": True, "ca_due": False, "reason": "", "ca_pem": ""}
    certs = _certificates(chain_pem)
    if not certs:
        plan["reason"] = "no server certificate yet"
        return plan
    if any(cert is None for cert, unused_pem in certs):
        plan["reason"] = "the certificate file does not parse"
        return plan
    if len(certs) < 2:
        plan["reason"] = "the certificate file holds no CA certificate after the server's"
        return plan
    leaf, (ca, ca_pem) = certs[0][0], certs[-1]
    plan["ca_pem"] = ca_pem
    if _not_after(ca) - now < renew:
        plan.update(ca_due=True, reason=f"the deployment CA expires on {_not_after(ca):%Y-%m-%d}")
        return plan
    if not _issued_by(leaf, ca):
        plan["reason"] = "the server certificate is not signed by the deployment CA"
        return plan
    wanted, have = _wanted_names(names), _cert_names(leaf)
    if wanted != have:
        added, removed = wanted - have, have - wanted
        plan["reason"] = "the names changed" + (f" (new: {_show(added)})" if added else "") + (
            f" (gone: {_show(removed)})" if removed else "")
        return plan
    if _not_after(leaf) - now < renew:
        plan["reason"] = f"the server certificate expires on {_not_after(leaf):%Y-%m-%d}"
        return plan
    plan.update(due=False, reason="valid")
    return plan


def postgres_tls_provided(cert_pem, ca_pem="", cert_var="postgres_ssl_cert_file", ca_var="postgres_ssl_ca_pem",
                          now=None):
    """Problems of a user-provided server certificate (the file's text) and its CA (PEM text)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    problems = []
    certs = _certificates(cert_pem)
    if not certs or any(cert is None for cert, unused_pem in certs):
        return [f"{cert_var}: the file holds no PEM certificate that parses"]
    leaf = certs[0][0]
    if _not_after(leaf) < now:
        problems.append(f"{cert_var}: the certificate expired on {_not_after(leaf):%Y-%m-%d}")
    if ca_pem:
        cas = _certificates(ca_pem)
        if not cas or any(cert is None for cert, unused_pem in cas):
            problems.append(f"{ca_var} must be PEM certificate text (-----BEGIN CERTIFICATE-----)")
        else:
            last = certs[-1][0]
            anchors = [cert for cert, unused_pem in cas]
            if not any(last == ca or _issued_by(last, ca) for ca in anchors):
                problems.append(f"{cert_var}: the certificate (or the last of its chain) is not issued by the CA of "
                                f"{ca_var}; clients verifying against it would refuse the server")
    return problems


def postgres_subject_alt_names(names):
    """subjectAltName entries (DNS:name, IP:address) of the server certificate, sorted, unique."""
    return [f"{kind.upper()}:{value}" for kind, value in sorted(_wanted_names(names), key=lambda n: (n[0], str(n[1])))]


def postgres_name_problems(names, name="postgres_ssl_names"):
    """Problems of the server certificate's names (DNS names or IP addresses)."""
    if not isinstance(names, list) or not names:
        return [f"{name} must be a non-empty list of host names and addresses"]
    problems = []
    for i, value in enumerate(names):
        if not isinstance(value, str) or CONTROL.search(value) or not value.strip():
            problems.append(f"{name}[{i}] must be a host name or an address")
            continue
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not DNS_NAME.match(value):
                problems.append(f"{name}[{i}]: {value} is neither a host name nor an IP address")
    return problems


# ---- what differs on the server -----------------------------------------------------------------

def _acl_grants(acl, grantee, privileges):
    """aclitem texts (grantee=privs/grantor; PUBLIC is the empty grantee) grant one of privileges."""
    for item in acl or []:
        who, unused_sep, rest = str(item).partition("=")
        who = who.strip('"').replace('""', '"')
        privs = rest.partition("/")[0]
        if who == grantee and any(p in privs for p in privileges):
            return True
    return False


def postgres_sync_plan(state, users, databases, locale="C.UTF-8"):
    """What the role must change, from one query of the server's catalogs (tasks/databases.yml).

    state: {roles: [{name, login, createdb, superuser, createrole, replication, bypassrls,
    conn_limit, password}], databases: [{name, owner, encoding, collate, ctype, acl, acl_default}]}.
    Returns {users: [names], databases: [names], revoke_public: bool, grants: [[user, db]]}:
    every role whose attributes, connection limit or password differ (the password compared with
    the stored verifier), every database that is missing or differs (an encoding or locale that
    differs is handed to the module, which refuses it), whether PUBLIC still has CONNECT or
    TEMPORARY on a managed database, and the CONNECT grants that are missing.
    """
    state = state or {}
    roles = {r["name"]: r for r in state.get("roles") or []}
    dbs = {d["name"]: d for d in state.get("databases") or []}
    plan = {"users": [], "databases": [], "revoke_public": False, "grants": []}
    for user in users or []:
        have = roles.get(user["name"])
        password = user.get("password") or ""
        want = {"login": bool(user.get("login", True)), "createdb": bool(user.get("createdb", False)),
                "superuser": False, "createrole": False, "replication": False, "bypassrls": False,
                "conn_limit": int(user.get("conn_limit", -1))}
        if have is None or any(have.get(key) != value for key, value in want.items()):
            plan["users"].append(user["name"])
            continue
        stored = have.get("password") or ""
        if password and not (stored == password if VERIFIER.match(password) else matches(password, stored)):
            plan["users"].append(user["name"])
    for database in databases or []:
        have = dbs.get(database["name"])
        db_locale = database.get("locale") or locale
        if (have is None or have.get("owner") != database.get("owner")
                or have.get("encoding") != (database.get("encoding") or "UTF8")
                or have.get("collate") != db_locale or have.get("ctype") != db_locale):
            plan["databases"].append(database["name"])
        if have is None or have.get("acl_default") or _acl_grants(have.get("acl"), "", "cT"):
            plan["revoke_public"] = True
    for user in users or []:
        for name in user.get("databases") or []:
            have = dbs.get(name)
            if have is None or have.get("acl_default") or not _acl_grants(have.get("acl"), user["name"], "c"):
                plan["grants"].append([user["name"], name])
    return plan


def postgres_problems(inputs):
    """Every problem of the role's inputs that types and formats cannot see, by the variable it
    belongs to: {variable: [problem, ...]} with the variables postgres_hba_app_networks,
    postgres_stack (the app's databases against the declared ones),
    postgres_hba_entries, postgres_ssl_names (when given), postgres_users/postgres_databases
    (as "postgres_users, postgres_databases") and postgres_settings."""
    app_databases = (inputs.get("stack") or {}).get("app_databases") or []
    stack = postgres_objects(app_databases, inputs.get("users"), inputs.get("databases"))["problems"]
    return {
        "postgres_hba_app_networks": postgres_network_problems(inputs.get("hba_app_networks"),
                                                               "postgres_hba_app_networks"),
        "postgres_stack": stack,
        "postgres_hba_entries": postgres_hba_problems(inputs.get("hba_entries")),
        "postgres_ssl_names": postgres_name_problems(inputs["ssl_names"]) if inputs.get("ssl_names") is not None else [],
        "postgres_users, postgres_databases": postgres_declared_problems(inputs.get("users"), inputs.get("databases"),
                                                                         app_databases),
        "postgres_settings": postgres_settings_problems(inputs.get("settings")),
    }


class FilterModule:
    def filters(self):
        return {
            "postgres_objects": postgres_objects,
            "postgres_problems": postgres_problems,
            "postgres_subject_alt_names": postgres_subject_alt_names,
            "postgres_tls_plan": postgres_tls_plan,
            "postgres_tls_provided": postgres_tls_provided,
            "postgres_sync_plan": postgres_sync_plan,
        }
