# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""SCRAM-SHA-256 verifiers for PostgreSQL role passwords, computed on the controller.

PostgreSQL stores a password as a verifier (RFC 5802/7677):
    SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
Handing the server a verifier instead of the password keeps the clear text out of the server
(statement logs, pg_stat_activity) and makes the role idempotent: when the stored verifier
already belongs to the password it is returned unchanged (same salt), so community.postgresql's
postgresql_user compares two equal strings and reports no change.
"""

import base64
import hashlib
import hmac
import os
import re
import stringprep
import unicodedata

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

DOCUMENTATION = r"""
name: scram_verifier
author: pydeploy maintainers
version_added: 0.1.0
short_description: PostgreSQL SCRAM-SHA-256 verifier of a password, reusing the stored one when it matches
description:
  - Returns the SCRAM-SHA-256 verifier PostgreSQL stores for O(_input) (C(pg_authid.rolpassword)).
  - When O(current) is a verifier of the same password, it is returned unchanged, so that passing the result
    to P(community.postgresql.postgresql_user#module) reports no change on re-runs.
  - Otherwise a new verifier with a random 16-byte salt is computed.
  - A password that already is a SCRAM-SHA-256 verifier is returned as it is.
  - The password is normalised with SASLprep the way libpq and the server do (pure ASCII is used as it is;
    strings SASLprep rejects are used unnormalised, as PostgreSQL does).
positional: current, iterations
options:
  _input:
    description: The password in clear text, or a SCRAM-SHA-256 verifier.
    type: str
    required: true
  current:
    description: The verifier stored now (C(pg_authid.rolpassword)); empty or none when the role has none.
    type: str
    default: ""
  iterations:
    description: PBKDF2 iteration count of a new verifier (PostgreSQL's C(scram_iterations) default is 4096).
    type: int
    default: 4096
"""

EXAMPLES = r"""
- name: Role password as a verifier (no change when it already matches)
  community.postgresql.postgresql_user:
    name: app
    password: "{{ vault_app_password | pydeploy.django_stack.scram_verifier(stored_verifier) }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: A verifier C(SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>).
  type: str
"""

VERIFIER = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")
SALT_BYTES = 16  # what the server uses for verifiers it computes itself

# RFC 4013 (SASLprep) with the RFC 3454 tables of Python's stringprep module.
_PROHIBITED = (
    stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22, stringprep.in_table_c3,
    stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6, stringprep.in_table_c7,
    stringprep.in_table_c8, stringprep.in_table_c9, stringprep.in_table_a1,
)


def saslprep(password):
    """The byte string libpq and the server hash: SASLprep'd UTF-8, or the input unchanged when
    it is pure ASCII or when SASLprep rejects it (PostgreSQL's pg_saslprep behaves the same)."""
    if password.isascii():
        return password.encode("utf-8")
    mapped = "".join(" " if stringprep.in_table_c12(ch) else ch for ch in password if not stringprep.in_table_b1(ch))
    normalized = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    if not normalized or any(table(ch) for ch in normalized for table in _PROHIBITED):
        return password.encode("utf-8")
    if any(stringprep.in_table_d1(ch) for ch in normalized):
        if (any(stringprep.in_table_d2(ch) for ch in normalized)
                or not stringprep.in_table_d1(normalized[0]) or not stringprep.in_table_d1(normalized[-1])):
            return password.encode("utf-8")
    return normalized.encode("utf-8")


def _keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def _b64(raw):
    return base64.b64encode(raw).decode("ascii")


def _format(iterations, salt, stored_key, server_key):
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def matches(password, verifier):
    """True when `verifier` is a SCRAM-SHA-256 verifier of `password`."""
    found = VERIFIER.match(verifier or "")
    if not found:
        return False
    try:
        iterations = int(found.group(1))
        salt = base64.b64decode(found.group(2), validate=True)
        stored_key = base64.b64decode(found.group(3), validate=True)
        server_key = base64.b64decode(found.group(4), validate=True)
    except ValueError:
        return False
    if iterations < 1:
        return False
    want_stored, want_server = _keys(password, salt, iterations)
    return hmac.compare_digest(want_stored, stored_key) and hmac.compare_digest(want_server, server_key)


def scram_verifier(password, current="", iterations=4096):
    if password is None:
        raise AnsibleFilterError("scram_verifier: the password is undefined or null")
    password = to_text(password, errors="surrogate_or_strict")
    if password == "":
        raise AnsibleFilterError("scram_verifier: the password is empty")
    if VERIFIER.match(password):
        return password
    current = to_text(current or "")
    if matches(password, current):
        return current
    try:
        iterations = int(iterations)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"scram_verifier: iterations must be an integer, got {iterations!r}")
    if iterations < 4096:
        raise AnsibleFilterError("scram_verifier: iterations below 4096 weaken the verifier")
    salt = os.urandom(SALT_BYTES)
    return _format(iterations, salt, *_keys(password, salt, iterations))


class FilterModule:
    def filters(self):
        return {"scram_verifier": scram_verifier}
