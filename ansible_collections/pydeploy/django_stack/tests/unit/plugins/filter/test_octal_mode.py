"""Unit tests of the octal_mode filter."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.pydeploy.django_stack.plugins.filter.octal_mode import FilterModule

octal_mode = FilterModule().filters()["octal_mode"]


@pytest.mark.parametrize("value,expected", [
    ("0660", "0660"), ("660", "0660"), (432, "0660"), (0o640, "0640"), ("0o600", "0600"), ("2775", "2775"),
    ("0027", "0027"), (0o27, "0027"),
])
def test_renders_four_digits(value, expected):
    assert octal_mode(value) == expected


@pytest.mark.parametrize("value", [660, "u=rw", "0999", True, None, "0660\n", 4096])
def test_refuses_what_is_not_a_mode(value):
    with pytest.raises(AnsibleFilterError):
        octal_mode(value)
