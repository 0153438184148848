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
