"""Unit tests of the validate_vars action plugin's spec loading (the whole plugin runs in tests/controller)."""

import os

import pytest

from ansible_collections.pydeploy.django_stack.plugins.action import validate_vars
from ansible_collections.pydeploy.django_stack.plugins.plugin_utils import varspec

ROLES = sorted(d for d in os.listdir(os.path.join(validate_vars._COLLECTION_ROOT, "roles")) if not d.startswith("_"))


@pytest.mark.parametrize("role", ROLES)
def test_every_role_spec_loads_and_checks_its_own_defaults(role):
    specs, names = validate_vars.role_spec(role)
    assert "main" in specs
    options = specs["main"]["options"]
    assert set(options) <= names | set(options)
    checker = varspec.SpecChecker(options)
    # Literal (non-template) defaults of the spec pass the strict checks.
    values = {k: v["default"] for k, v in options.items()
              if "default" in v and "{{" not in repr(v["default"])}
    problems = checker.check(values)[1]
    assert problems == []


def test_unknown_role_is_an_error():
    with pytest.raises(Exception, match="no role"):
        validate_vars.role_spec("no_such_role")


def test_a_derived_default_left_out_of_the_spec_still_refuses_null():
    # gunicorn_workers is an int whose default (2 x vCPU + 1) is a Jinja expression of defaults/main.yml: the spec
    # has no `default:` for it (scripts/check_specs.py), the plugin takes the expression as its default.
    specs, _names = validate_vars.role_spec("gunicorn")
    option = specs["main"]["options"]["gunicorn_workers"]
    assert "{{" in option["default"]
    problems = varspec.SpecChecker(specs["main"]["options"]).check({"gunicorn_workers": None})[1]
    assert [(p.path, p.kind) for p in problems] == [("gunicorn_workers", "type")]
