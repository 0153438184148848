"""systemd_unit / systemd_sandbox (plugins/filter/systemd.py): every value escaped for its directive."""
import pytest

from ansible_collections.pydeploy.django_stack.plugins.filter.systemd import (
    SystemdValueError, exec_argument, systemd_sandbox, systemd_unit)


def lines(text):
    return text.splitlines()


def test_sections_directives_order_and_repeats():
    text = systemd_unit({
        "Unit": {"Description": "App (demo)", "After": ["network-online.target", "app.socket"], "Wants": None},
        "Service": {"Type": "notify", "PrivateUsers": False, "NoNewPrivileges": True, "TimeoutStopSec": 45,
                    "CapabilityBoundingSet": ""},
        "Install": {"WantedBy": "multi-user.target"},
    }, header="Ansible managed\nsecond line")
    assert lines(text) == [
        "# Ansible managed", "# second line", "",
        "[Unit]", "Description=App (demo)", "After=network-online.target", "After=app.socket", "",
        "[Service]", "Type=notify", "PrivateUsers=no", "NoNewPrivileges=yes", "TimeoutStopSec=45",
        "CapabilityBoundingSet=", "",
        "[Install]", "WantedBy=multi-user.target",
    ]
    assert text.endswith("\n")


def test_list_of_pairs_keeps_explicit_order_and_comments():
    text = systemd_unit({"Service": [{"#": "first"}, {"Environment": {"A": "1"}}, ["Environment", {"B": "2"}]]})
    assert lines(text) == ["[Service]", "# first", 'Environment="A=1"', 'Environment="B=2"']


@pytest.mark.parametrize("value, expected", [
    ("plain", '"X=plain"'),
    ("with space", '"X=with space"'),
    ('quote " here', r'"X=quote \" here"'),
    ("back\\slash", r'"X=back\\slash"'),
    ("50% off", '"X=50%% off"'),
    ("$HOME stays", '"X=$HOME stays"'),  # Environment= does not expand variables
    (True, '"X=true"'),
    (8, '"X=8"'),
])
def test_environment_quoting(value, expected):
    assert lines(systemd_unit({"Service": {"Environment": {"X": value}}})) == ["[Service]", f"Environment={expected}"]


def test_environment_list_form_and_none_skipped():
    text = systemd_unit({"Service": {"Environment": ["A=x y", "B=", {"C": None}]}})
    assert lines(text)[1:] == ['Environment="A=x y"', 'Environment="B="']


@pytest.mark.parametrize("bad", [
    {"X": "a\nExecStartPre=+/bin/sh -c id"},
    {"X": "carriage\rreturn"},
    {"X": "tab\there"},
    {"X": "nul\x00"},
    {"BAD NAME": "x"},
    {"1X": "x"},
    {"X=Y": "x"},
])
def test_environment_refuses_injection_and_bad_names(bad):
    with pytest.raises(SystemdValueError) as err:
        systemd_unit({"Service": {"Environment": bad}})
    assert "[Service] Environment" in str(err.value)


def test_exec_arguments_are_quoted_and_not_expanded():
    text = systemd_unit({"Service": {"ExecStart": [
        "/srv/app/venv/bin/python", "/usr/local/lib/x.py", "serve", "demo.asgi:application", "--fd", 3,
        "--forwarded-allow-ips", "*", "with space", "$HOME", "100%", 'say "hi"', "back\\slash", ";", "",
    ]}})
    assert lines(text)[1] == (
        'ExecStart=/srv/app/venv/bin/python /usr/local/lib/x.py serve demo.asgi:application --fd 3 '
        '--forwarded-allow-ips "*" "with space" "$$HOME" "100%%" "say \\"hi\\"" "back\\\\slash" ";" ""')


def test_exec_prefix_raw_and_repeated_commands():
    text = systemd_unit({"Service": {
        "ExecStartPre": [{"argv": ["/bin/true"], "prefix": "-"}, ["/bin/echo", "x"]],
        "ExecReload": {"raw": "/bin/kill -s HUP $MAINPID"},
    }})
    assert lines(text)[1:] == ["ExecStartPre=-/bin/true", "ExecStartPre=/bin/echo x",
                               "ExecReload=/bin/kill -s HUP $MAINPID"]


@pytest.mark.parametrize("bad, message", [
    ("/bin/sh -c id", "list of arguments"),
    (["+/bin/sh", "-c", "id"], "may not be empty or start with"),
    (["-/bin/true"], "may not be empty or start with"),
    ([], "non-empty list"),
    ({"argv": ["/bin/true"], "prefix": "x"}, "prefix must be made of"),
    (["/bin/echo", "a\nb"], "newline"),
])
def test_exec_refusals(bad, message):
    with pytest.raises(SystemdValueError) as err:
        systemd_unit({"Service": {"ExecStart": bad}})
    assert message in str(err.value) and "[Service] ExecStart" in str(err.value)


def test_safe_arguments_left_bare():
    assert exec_argument("/srv/app/current/venv/bin/gunicorn") == "/srv/app/current/venv/bin/gunicorn"
    assert exec_argument("--ws-max-size") == "--ws-max-size"
    assert exec_argument("127.0.0.1,::1") == "127.0.0.1,::1"


@pytest.mark.parametrize("value, expected", [
    ("/run/gunicorn/%i.sock", "/run/gunicorn/%%i.sock"),  # a specifier is doubled: the literal path
    ("20%", "20%"),  # a plain percentage stays (CPUQuota=, MemoryMax=)
    ("0660", "0660"),
])
def test_plain_values(value, expected):
    assert lines(systemd_unit({"Socket": {"ListenStream": value}}))[1] == f"ListenStream={expected}"


@pytest.mark.parametrize("value, message", [
    ("/run/x.sock\nExecStartPre=+/bin/sh", "newline"),
    (" leading", "leading or trailing blanks"),
    ("trailing\\", "ends with a backslash"),
    ({"nested": 1}, "must be a string"),
])
def test_plain_value_refusals(value, message):
    with pytest.raises(SystemdValueError) as err:
        systemd_unit({"Socket": {"ListenStream": value}})
    assert message in str(err.value) and "[Socket] ListenStream" in str(err.value)


def test_list_item_errors_name_the_index():
    with pytest.raises(SystemdValueError) as err:
        systemd_unit({"Socket": {"ListenStream": ["/run/a.sock", "10.0.0.1:80\n"]}})
    assert "[Socket] ListenStream[1]" in str(err.value)


def test_path_lists_quoted_and_absolute():
    text = systemd_unit({"Service": {"ReadWritePaths": ["/srv/app/media", "/srv/with space", "-/opt/x"]}})
    assert lines(text)[1:] == ["ReadWritePaths=/srv/app/media", 'ReadWritePaths="/srv/with space"',
                               "ReadWritePaths=-/opt/x"]
    with pytest.raises(SystemdValueError):
        systemd_unit({"Service": {"ReadWritePaths": ["relative/path"]}})


@pytest.mark.parametrize("sections", [
    {"Bad Section": {}},
    {"Service": {"Bad-Key": "x"}},
    {"Service": "not a dict"},
    ["not", "a", "dict"],
])
def test_structure_refusals(sections):
    with pytest.raises(SystemdValueError):
        systemd_unit(sections)


def test_sandbox_default_is_the_app_servers_sandbox():
    sandbox = systemd_sandbox({})
    assert sandbox["NoNewPrivileges"] is True and sandbox["CapabilityBoundingSet"] == ""
    assert sandbox["ProtectSystem"] == "strict" and "ReadWritePaths" not in sandbox
    assert sandbox["PrivateUsers"] is True and sandbox["MemoryDenyWriteExecute"] is True
    assert sandbox["RemoveIPC"] is True
    assert sandbox["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    assert sandbox["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert "IPAddressDeny" not in sandbox and "PrivateNetwork" not in sandbox
    text = systemd_unit({"Service": sandbox})
    assert "RemoveIPC=yes" in text and "SystemCallFilter=~@privileged @resources" in text


def test_sandbox_options():
    sandbox = systemd_sandbox({"read_write_paths": ["/srv/a/media", "/srv/a/data"], "private_users": False,
                               "memory_deny_write_execute": False, "remove_ipc": False, "private_network": True,
                               "address_families": ["AF_UNIX"], "ip_address_allow": ["localhost", "10.0.0.5"]})
    text = systemd_unit({"Service": sandbox})
    for line in ("ReadWritePaths=/srv/a/media", "ReadWritePaths=/srv/a/data", "PrivateUsers=no",
                 "MemoryDenyWriteExecute=no", "RemoveIPC=no", "PrivateNetwork=yes", "RestrictAddressFamilies=AF_UNIX",
                 "IPAddressDeny=any", "IPAddressAllow=localhost", "IPAddressAllow=10.0.0.5"):
        assert line in lines(text), line


def test_sandbox_empty_allow_list_denies_everything():
    sandbox = systemd_sandbox({"ip_address_allow": []})
    assert sandbox["IPAddressDeny"] == "any" and "IPAddressAllow" not in sandbox


@pytest.mark.parametrize("options, message", [
    ({"read_write_path": []}, "unknown option"),
    ({"private_users": "yes"}, "must be a boolean"),
    ({"read_write_paths": "/srv"}, "must be a list"),
    ({"ip_address_allow": "localhost"}, "must be a list"),
    ({"address_families": ["inet"]}, "AF_"),
])
def test_sandbox_refusals(options, message):
    with pytest.raises(Exception) as err:
        systemd_sandbox(options)
    assert message in str(err.value)
