"""Escaping per format (plugins/filter/escape.py), each checked against the real reader where one is at hand
(/bin/sh for env files, Python's own parser for literals)."""
import ast
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pydeploy.django_stack.plugins.filter.octal_mode import octal_mode
from ansible_collections.pydeploy.django_stack.plugins.filter.escape import (
    env_file_value, nginx_string, pg_hba_field, python_literal)

NASTY = ["plain", "with space", "it's", "$(touch /tmp/pwned)", "`id`", "${HOME}", 'dq " and \\ bs', "a;b&c|d", "",
         "'", "''", "trailing\\"]


@pytest.mark.parametrize("value", NASTY)
def test_env_file_value_is_literal_for_sh(value, tmp_path):
    env = tmp_path / "env"
    env.write_text(f"X={env_file_value(value)}\n")
    out = subprocess.run(["/bin/sh", "-c", f'. "{env}"; printf %s "$X"'], capture_output=True, text=True, check=True)
    assert out.stdout == value
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("value", ["a\nEVIL=1", "cr\r", "nul\x00", ["list"], None, True])
def test_env_file_value_refuses(value):
    with pytest.raises(AnsibleFilterError) as err:
        env_file_value(value, "python_app_secret_key")
    assert "python_app_secret_key" in str(err.value)
    if isinstance(value, str):
        assert value not in str(err.value)  # the value (maybe a secret) is never printed


def test_nginx_string():
    assert nginx_string("/srv/app/static/") == '"/srv/app/static/"'
    assert nginx_string('a"b\\c;}') == '"a\\"b\\\\c;}"'
    assert nginx_string("$host", variables=True) == '"$host"'
    for bad in ("/srv/$x", "a\n}", "tab\t"):
        with pytest.raises(AnsibleFilterError) as err:
            nginx_string(bad, "nginx_sites[0].static_root")
        assert "nginx_sites[0].static_root" in str(err.value)


@pytest.mark.parametrize("value, expected", [
    ("demo", "demo"), ("10.0.0.5/32", "10.0.0.5/32"), ("::1/128", "::1/128"), ("all", '"all"'),
    ("Replication", '"Replication"'), ("+admins", '"+admins"'), ("@file", '"@file"'), ("a b", '"a b"'),
    ("a,b", '"a,b"'), ("x#y", '"x#y"'),
])
def test_pg_hba_field(value, expected):
    assert pg_hba_field(value) == expected


def test_pg_hba_keyword_allowed_bare():
    assert pg_hba_field("all", keyword=True) == "all"


@pytest.mark.parametrize("value", ["a\nhost all all 0.0.0.0/0 trust", 'x" trust', ""])
def test_pg_hba_field_refuses(value):
    with pytest.raises(AnsibleFilterError):
        pg_hba_field(value, "postgres_hba_entries[0].options")


@pytest.mark.parametrize("value", [
    "plain", 'quote " and \' and \\', "__import__('os').system('id')", "line\nbreak", 0, -5, 1.5, True, False, None,
    [1, "a", [None]], {"k": {"nested": [1, 2]}, 3: "int key"}, (1,), (), {"": ""},
])
def test_python_literal_round_trips(value):
    text = python_literal(value)
    assert ast.literal_eval(text) == value


def test_python_literal_is_never_code():
    text = python_literal("'); import os; os.system('id'); ('")
    tree = ast.parse(f"x = {text}")
    assert isinstance(tree.body[0].value, ast.Constant) and len(tree.body) == 1


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1.5: "float key"}, object(), {"k": {object()}}])
def test_python_literal_refuses(value):
    with pytest.raises(AnsibleFilterError):
        python_literal(value, "gunicorn_settings.x")


@pytest.mark.parametrize("value, expected", [("0660", "0660"), ("660", "0660"), ("0o640", "0640"), (432, "0660"),
                                             ("2775", "2775"), (0, "0000")])
def test_octal_mode(value, expected):
    assert octal_mode(value) == expected


# An integer above 0o777 is refused: an unquoted 660 is the decimal number 660 (0o1224).
@pytest.mark.parametrize("value", [True, "u=rw", "0999", 0o17777, 660, "12345", None, "0660\n"])
def test_octal_mode_refuses(value):
    with pytest.raises(AnsibleFilterError) as err:
        octal_mode(value, "gunicorn_socket_mode")
    assert "gunicorn_socket_mode" in str(err.value)
