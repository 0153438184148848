"""The validate_vars action plugin through real ansible-playbook runs (templating, no_log, warnings, rules).

These do not depend on how each role calls the plugin (the cases of bad_inputs.yml do).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import harness
from conftest import Job

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "plugin.yml"
ROLES = harness.COLLECTION / "roles"
HOST = "box.example.com"

GUNICORN_FORMATS = {"gunicorn_bind_tcp[]": "host_port", "gunicorn_socket_mode": "octal_mode",
                    "gunicorn_environment{}": "env_name", "gunicorn_environment.*": "single_line"}
GUNICORN_RULES = [{"that": "gunicorn_timeout_stop_sec > gunicorn_graceful_timeout",
                   "msg": "must exceed gunicorn_graceful_timeout ({{ gunicorn_graceful_timeout }})",
                   "vars": ["gunicorn_timeout_stop_sec", "gunicorn_graceful_timeout"]}]


def _job(key, role, values, formats=None, rules=None, role_vars=None):
    def build(workdir):
        inventory = harness.build_inventory(workdir, "single", vault=False, base_group_vars={},
                                            group_vars=role_vars or {})
        extra = dict(values, plugin_role=role, plugin_defaults=str(ROLES / role / "defaults" / "main.yml"),
                     plugin_formats=formats or {}, plugin_rules=rules or [])
        return harness.run_playbook(str(PLAYBOOK), inventory, workdir, extra_vars=extra)

    return Job(f"plugin-{key}", build)


def _validated(run):
    return next(r for r in run.records if r["event"] == "validated")


CASES = {
    "gunicorn-good-mode-from-yaml-int": _job("gunicorn-good", "gunicorn",
                                             {"gunicorn_socket_mode": 0o660, "gunicorn_workers": "4",
                                              "gunicorn_bind_tcp": ["127.0.0.1:8000"]}, GUNICORN_FORMATS, GUNICORN_RULES),
    "gunicorn-all-problems-at-once": _job("gunicorn-bad", "gunicorn",
                                          {"gunicorn_bind_tcp": "127.0.0.1:8000", "gunicorn_workers": "many",
                                           "gunicorn_environment": {"A B": "x\nExecStartPre=+/bin/true"},
                                           "gunicorn_timeout_stop_sec": 5}, GUNICORN_FORMATS, GUNICORN_RULES),
    "python_app-secrets-never-printed": _job("python_app-secrets", "python_app",
                                             {"python_app_secret_key": 12.5,
                                              "python_app_secrets": {"API KEY": "hunter2-value\n"}},
                                             {"python_app_secrets{}": "env_name", "python_app_secrets.*": "env_value"},
                                             role_vars={"__python_app_system_packages": ["python3"]}),
    "nginx-index-in-path": _job("nginx-index", "nginx",
                                {"nginx_sites": [{"name": "a", "server_names": ["a.example.com"]},
                                                 {"name": "b", "server_names": ["b.example.com"],
                                                  "static_root": "/srv/b; autoindex on", "hots": 1}]},
                                {"nginx_sites[].static_root": "nginx_path"},
                                role_vars={"__nginx_packages": ["nginx"], "__nginx_user": "www-data"}),
    "typo-warning": _job("typo-warning", "gunicorn", {"gunicorn_worker": 4}),
    "typo-strict": _job("typo-strict", "gunicorn", {"gunicorn_worker": 4, "pydeploy_strict_vars": True}),
}


@pytest.mark.parametrize("job", [CASES["gunicorn-good-mode-from-yaml-int"]], ids=["gunicorn-good-mode-from-yaml-int"])
def test_good_values_are_normalized(job, runs):
    run = runs.get(job)
    assert not run.failures and run.reached is not None, run.summary()
    normalized = _validated(run)["normalized"]
    assert normalized["gunicorn_socket_mode"] == "0660"
    assert normalized["gunicorn_workers"] == 4
    assert normalized["gunicorn_timeout_stop_sec"] == 45  # the default template, templated


@pytest.mark.parametrize("job", [CASES["gunicorn-all-problems-at-once"]], ids=["gunicorn-all-problems-at-once"])
def test_every_problem_is_reported_once_with_variable_and_host(job, runs):
    run = runs.get(job)
    assert run.reached is None and len(run.failures) == 1, run.summary()
    failure = run.failures[0]
    problems = {p["variable"]: p for p in failure["problems"]}
    expected = {"gunicorn_bind_tcp", "gunicorn_workers", "gunicorn_environment['A B']",
                "gunicorn_timeout_stop_sec, gunicorn_graceful_timeout"}
    assert expected <= set(problems), problems
    # The key and the value of gunicorn_environment are two problems: both reported.
    assert len([p for p in failure["problems"] if p["variable"] == "gunicorn_environment['A B']"]) == 2
    assert all(p["host"] == HOST and HOST in p["msg"] for p in failure["problems"])
    assert "never split" in problems["gunicorn_bind_tcp"]["msg"]
    assert "must exceed gunicorn_graceful_timeout (30)" in failure["msg"]
    assert failure["msg"].count("\n- ") == len(failure["problems"])


@pytest.mark.parametrize("job", [CASES["python_app-secrets-never-printed"]], ids=["python_app-secrets-never-printed"])
def test_secrets_are_named_never_printed(job, runs):
    run = runs.get(job)
    assert run.failures, run.summary()
    variables = {p["variable"] for p in run.failures[0]["problems"]}
    assert {"python_app_secret_key", "python_app_secrets['API KEY']"} <= variables, variables
    output = run.stdout + run.stderr + str(run.records)
    assert "hunter2" not in output and "12.5" not in output


@pytest.mark.parametrize("job", [CASES["nginx-index-in-path"]], ids=["nginx-index-in-path"])
def test_list_index_and_unknown_key_in_the_path(job, runs):
    run = runs.get(job)
    variables = {p["variable"]: p["msg"] for p in run.failures[0]["problems"]}
    assert "nginx_sites[1].static_root" in variables
    assert "nginx_sites[1].hots" in variables and "did you mean 'hsts'" in variables["nginx_sites[1].hots"]


@pytest.mark.parametrize("job", [CASES["typo-warning"]], ids=["typo-warning"])
def test_typo_warns_with_closest_name(job, runs):
    run = runs.get(job)
    assert not run.failures and run.reached is not None, run.summary()
    assert any("gunicorn_worker on box.example.com" in w and "gunicorn_workers" in w for w in run.warnings), run.warnings


@pytest.mark.parametrize("job", [CASES["typo-strict"]], ids=["typo-strict"])
def test_typo_is_an_error_in_strict_mode(job, runs):
    run = runs.get(job)
    assert run.reached is None and run.failures, run.summary()
    assert run.failures[0]["problems"][0]["variable"] == "gunicorn_worker"
    assert "did you mean gunicorn_workers" in run.failures[0]["msg"]
