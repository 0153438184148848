"""Unit tests of plugins/plugin_utils/varspec.py: strict types, suboptions, formats by path, secrets, typos."""

import pytest

from ansible_collections.pydeploy.django_stack.plugins.plugin_utils import varspec

SPEC = {
    "app_hosts": {"type": "list", "elements": "str", "default": []},
    "app_workers": {"type": "int", "default": 3},
    "app_ratio": {"type": "float", "default": 0.9},
    "app_debug": {"type": "bool", "default": False},
    "app_name": {"type": "str", "default": "demo"},
    "app_root": {"type": "path", "default": "/srv/demo"},
    "app_mode": {"type": "str", "default": "0660"},
    "app_level": {"type": "str", "default": "info", "choices": ["debug", "info", "warning"]},
    "app_env": {"type": "dict", "default": {}},
    "app_password": {"type": "str", "default": "", "no_log": True},
    "app_token_holder": {"type": "str", "default": ""},
    "app_required": {"type": "str"},
    "app_db": {"type": "dict", "default": {}, "options": {
        "engine": {"type": "str", "required": True, "choices": ["sqlite", "postgresql"]},
        "host": {"type": "str"},
        "port": {"type": "int", "default": 5432},
        "password": {"type": "str", "no_log": True},
    }},
    "app_sites": {"type": "list", "elements": "dict", "default": [], "options": {
        "name": {"type": "str", "required": True},
        "root": {"type": "path"},
        "binds": {"type": "list", "elements": "str"},
        "key": {"type": "str", "no_log": True},
    }},
    "app_protocols": {"type": "list", "elements": "str", "choices": ["a", "b"], "default": []},
    "app_anything": {"type": "raw"},
}


def run(values, formats=None, spec=None):
    checker = varspec.SpecChecker(spec or SPEC, formats or {})
    return checker.check(values)


def problems_of(values, formats=None, spec=None):
    return run(values, formats, spec)[1]


def paths(problems):
    return [p.path for p in problems]


# ---------------------------------------------------------------------------------------- types
@pytest.mark.parametrize("name,value,expected", [
    ("app_hosts", ["a", "b"], ["a", "b"]),
    ("app_hosts", [], []),
    ("app_hosts", [1], ["1"]),
    ("app_workers", 4, 4),
    ("app_workers", "4", 4),
    ("app_workers", "-1", -1),
    ("app_workers", " 7 ", 7),
    ("app_ratio", 1, 1.0),
    ("app_ratio", "0.5", 0.5),
    ("app_ratio", 0.25, 0.25),
    ("app_debug", True, True),
    ("app_debug", "yes", True),
    ("app_debug", "False", False),
    ("app_debug", "on", True),
    ("app_debug", "0", False),
    ("app_debug", 1, True),
    ("app_name", "x", "x"),
    ("app_name", 15, "15"),
    ("app_root", "/srv/x", "/srv/x"),
    ("app_level", "debug", "debug"),
    ("app_env", {"A": 1}, {"A": 1}),
    ("app_anything", ["x", 1], ["x", 1]),
    ("app_protocols", ["a", "b"], ["a", "b"]),
])
def test_accepted_and_converted(name, value, expected):
    normalized, problems = run({name: value})
    assert problems == []
    assert normalized[name] == expected
    assert type(normalized[name]) is type(expected)


@pytest.mark.parametrize("name,value,words", [
    ("app_hosts", "shop.example.com", "never split"),
    ("app_hosts", {"a": 1}, "a dict where a list"),
    ("app_hosts", 5, "an integer where a list"),
    ("app_hosts", [["x"]], "a list where a string"),
    ("app_workers", "many", "not an integer"),
    ("app_workers", 4.5, "float where an integer"),
    ("app_workers", True, "boolean where an integer"),
    ("app_workers", [4], "a list where an integer"),
    ("app_ratio", "fast", "not a number"),
    ("app_ratio", False, "boolean where a number"),
    ("app_debug", "maybe", "not a boolean"),
    ("app_debug", 2, "an integer where a boolean"),
    ("app_debug", [True], "a list where a boolean"),
    ("app_name", 1.10, "quote it"),
    ("app_name", True, "quote it"),
    ("app_name", ["x"], "a list where a string"),
    ("app_name", {"a": "b"}, "a dict where a string"),
    ("app_root", 5, "a number where a path"),
    ("app_level", "warn", "did you mean 'warning'"),
    ("app_level", True, "quote it"),
    ("app_env", "A=1", "where a dict"),
    ("app_env", ["A=1"], "where a dict"),
    ("app_protocols", ["a", "c"], "not one of"),
    ("app_name", None, "no value"),
])
def test_rejected_with_reason(name, value, words):
    normalized, problems = run({name: value})
    assert len(problems) == 1, problems
    assert words in problems[0].reason
    assert problems[0].path.startswith(name)
    assert name not in normalized


def test_the_string_is_never_split():
    problems = problems_of({"app_hosts": "shop.example.com"})
    text = problems[0].render("app1")
    assert text.startswith("app_hosts on app1: ")
    assert "'shop.example.com'" in text
    assert "['shop.example.com']" in text  # what to write instead


def test_required_option():
    problems = problems_of({}, spec={"app_required": {"type": "str", "required": True}})
    assert paths(problems) == ["app_required"]
    assert problems[0].kind == "required"


def test_absent_options_are_not_normalized():
    normalized, problems = run({})
    assert problems == [] and normalized == {}


def test_every_problem_is_collected():
    problems = problems_of({"app_hosts": "x", "app_workers": "many", "app_level": "loud",
                            "app_sites": [{"name": "a", "nope": 1}, {"root": 5}]})
    assert sorted(paths(problems)) == sorted(["app_hosts", "app_workers", "app_level", "app_sites[0].nope",
                                              "app_sites[1].root", "app_sites[1].name"])


# ---------------------------------------------------------------------------------------- suboptions
def test_suboptions_defaults_and_conversion():
    normalized, problems = run({"app_db": {"engine": "postgresql", "port": "6432"}})
    assert problems == []
    assert normalized["app_db"] == {"engine": "postgresql", "port": 6432}


def test_suboption_defaults_filled():
    normalized = run({"app_db": {"engine": "sqlite"}})[0]
    assert normalized["app_db"]["port"] == 5432


def test_unknown_key_names_the_closest():
    problems = problems_of({"app_db": {"engine": "sqlite", "hots": "db1"}})
    assert paths(problems) == ["app_db.hots"]
    assert "did you mean 'host'" in problems[0].reason
    assert problems[0].kind == "unknown"


def test_required_suboption_and_choices_in_list_items():
    problems = problems_of({"app_sites": [{"name": "a"}, {"root": "/x"}], "app_db": {"engine": "mysql"}})
    assert sorted(paths(problems)) == ["app_db.engine", "app_sites[1].name"]


def test_list_item_types_are_strict():
    problems = problems_of({"app_sites": [{"name": "a", "binds": "127.0.0.1:80"}]})
    assert paths(problems) == ["app_sites[0].binds"]
    assert "never split" in problems[0].reason


def test_null_suboption_is_absent():
    normalized, problems = run({"app_db": {"engine": "sqlite", "host": None}})
    assert problems == []
    assert "host" not in normalized["app_db"]


def test_keys_that_are_not_identifiers_are_quoted_in_paths():
    problems = problems_of({"app_env": {"A B": "x"}}, formats={"app_env{}": "env_name"})
    assert paths(problems) == ["app_env['A B']"]


# ---------------------------------------------------------------------------------------- secrets
@pytest.mark.parametrize("values,path", [
    ({"app_password": 12.5}, "app_password"),
    ({"app_token_holder": ["x"]}, "app_token_holder"),
    ({"app_db": {"engine": "sqlite", "password": ["hunter2"]}}, "app_db.password"),
    ({"app_sites": [{"name": "a", "key": {"hunter2": 1}}]}, "app_sites[0].key"),
])
def test_secrets_are_named_never_shown(values, path):
    problems = problems_of(values)
    assert paths(problems) == [path]
    text = problems[0].render("h")
    assert "hunter2" not in text and "12.5" not in text and "'x'" not in text
    assert problems[0].given is None


def test_secret_dict_keys_named_values_hidden():
    spec = {"app_secrets": {"type": "dict", "default": {}}}
    problems = problems_of({"app_secrets": {"API_KEY": "bad\nvalue-hunter2"}},
                           formats={"app_secrets.*": "env_value"}, spec=spec)
    assert paths(problems) == ["app_secrets.API_KEY"]
    assert "hunter2" not in problems[0].render("h")


def test_format_error_on_no_log_suboption_hides_value():
    spec = {"app_sites": {"type": "list", "elements": "dict", "options": {
        "name": {"type": "str"}, "certificate_key_content": {"type": "str", "no_log": True}}}}
    problems = problems_of({"app_sites": [{"name": "a", "certificate_key_content": "PRIVATE-hunter2"}]},
                           formats={"app_sites[].certificate_key_content": "pem_private_key"}, spec=spec)
    assert paths(problems) == ["app_sites[0].certificate_key_content"]
    assert "hunter2" not in problems[0].render("h")


# ---------------------------------------------------------------------------------------- formats
def test_formats_by_path_with_index():
    problems = problems_of({"app_sites": [{"name": "a", "root": "/ok", "binds": ["127.0.0.1:80"]},
                                          {"name": "b", "root": "/x; return 200", "binds": ["a:1", "b:70000"]}]},
                           formats={"app_sites[].root": "nginx_path", "app_sites[].binds[]": "host_port"})
    assert sorted(paths(problems)) == ["app_sites[1].binds[1]", "app_sites[1].root"]


def test_format_normalizes_mode_from_yaml_integer():
    normalized, problems = run({"app_mode": 432}, formats={"app_mode": "octal_mode"})
    assert problems == []
    assert normalized["app_mode"] == "0660"


def test_format_normalizes_inside_lists():
    spec = {"m": {"type": "list", "elements": "str"}}
    normalized, problems = run({"m": [432, "600"]}, formats={"m[]": "octal_mode"}, spec=spec)
    assert problems == [] and normalized["m"] == ["0660", "0600"]


def test_formats_skip_values_with_type_errors():
    problems = problems_of({"app_hosts": "x\n"}, formats={"app_hosts[]": "dns_name"})
    assert len(problems) == 1 and problems[0].kind == "type"


def test_bad_key_does_not_hide_bad_value():
    problems = problems_of({"app_env": {"A B": "x\ny"}}, formats={"app_env{}": "env_name", "app_env.*": "single_line"})
    assert len(problems) == 2


def test_format_alternatives_and_optional():
    spec = {"u": {"type": "list", "elements": "str"}, "o": {"type": "str", "default": ""}}
    problems = problems_of({"u": ["/run/x.sock", "10.0.0.1:80", "nope"], "o": ""},
                           formats={"u[]": "nginx_path|host_port", "o": "url?"}, spec=spec)
    assert paths(problems) == ["u[2]"]


def test_unknown_format_name_is_refused_early():
    with pytest.raises(ValueError):
        varspec.SpecChecker(SPEC, {"app_name": "nope"})
    with pytest.raises(ValueError):
        varspec.SpecChecker(SPEC, {"app name": "single_line"})


@pytest.mark.parametrize("text,expected", [
    ("a", ("a", [])),
    ("a[]", ("a", ["[]"])),
    ("a[].b", ("a", ["[]", ".b"])),
    ("a.b.c[]", ("a", [".b", ".c", "[]"])),
    ("a.*", ("a", [".*"])),
    ("a{}", ("a", ["{}"])),
    ("nginx_sites[].websocket_locations[].upstream", ("nginx_sites", ["[]", ".websocket_locations", "[]", ".upstream"])),
])
def test_parse_format_path(text, expected):
    assert varspec.parse_format_path(text) == expected


@pytest.mark.parametrize("parts,expected", [
    (["a"], "a"), (["a", 1], "a[1]"), (["a", 1, "b"], "a[1].b"), (["a", "b c"], "a['b c']"), (["a", "x", 0], "a.x[0]"),
])
def test_format_path(parts, expected):
    assert varspec.format_path(parts) == expected


# ---------------------------------------------------------------------------------------- unknown names
def test_unknown_names_with_closest():
    known = ["gunicorn_workers", "gunicorn_threads", "gunicorn_timeout"]
    found = varspec.unknown_names(["gunicorn_worker", "gunicorn_threads", "__gunicorn_x", "nginx_x", "gunicorn_zzzzzzzzz"],
                                  known, "gunicorn_")
    assert found == [("gunicorn_worker", "gunicorn_workers"), ("gunicorn_zzzzzzzzz", None)]


@pytest.mark.parametrize("value,shown", [
    ("a\nb", "'a\\nb'"), (True, "true"), (None, "null"), (5, "5"), ("x" * 200, None),
])
def test_show_value(value, shown):
    text = varspec.show_value(value)
    if shown is None:
        assert text.endswith("...") and len(text) <= 80
    else:
        assert text == shown


def test_nested_secrets_are_redacted_at_any_depth():
    stack = {"app": {"name": "shop", "database": {"user": "shop", "password": "s3cret"}},
             "apps": [{"app": {"secret_key": "k", "database": {"password": ""}}}]}
    out = varspec.redact_secrets(stack)
    assert out["app"]["database"] == {"user": "shop", "password": "********"}
    assert out["apps"][0]["app"]["secret_key"] == "********"
    assert out["apps"][0]["app"]["database"]["password"] == ""  # an empty value shows that none is set
    assert "s3cret" not in repr(out) and stack["app"]["database"]["password"] == "s3cret"
