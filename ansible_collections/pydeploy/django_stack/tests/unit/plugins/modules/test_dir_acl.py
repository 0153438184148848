"""Unit tests of dir_acl's parsing and comparison (the getfacl/setfacl calls are the host's)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))

from ansible_collections.pydeploy.django_stack.plugins.modules import dir_acl as m  # noqa: E402

GETFACL = """user::rwx
user:www-data:r-x
group::r-x
mask::r-x
other::---
default:user::rwx
default:user:www-data:r-x	#effective:r-x
default:group::r-x
default:other::r-x
"""


def test_normalize_expands_capital_x_for_directories():
    assert m.normalize("default:user:www-data:rX") == ("default:user:www-data", "r-x")
    assert m.normalize("default:other::---") == ("default:other:", "---")
    with pytest.raises(ValueError):
        m.normalize("user:www-data:rw;rm -rf")


def test_only_missing_or_different_entries_are_set():
    acl = m.parse_getfacl(GETFACL)
    wanted = [m.normalize(e) for e in ("user:www-data:rX", "default:user:www-data:rX", "default:other::---")]
    assert m.missing(acl, wanted) == ["default:other::---"]
    acl["default:other:"] = "---"
    assert m.missing(acl, wanted) == []
