"""The stack contract's wiring (plugins/filter/stack.py): plain data in, plain data out."""
import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.pydeploy.django_stack.plugins.filter import stack


def app_exports(name="shop", db_host="db1", engine="postgresql", password="s3cret"):
    return {
        "name": name, "static_root": f"/srv/{name}/shared/static",
        "database": {"engine": engine, "name": name, "user": name, "host": db_host, "port": 5432, "password": password},
    }


def server_exports(binds=("0.0.0.0:8000",), connections=5):
    return {"server": "gunicorn", "tcp_binds": list(binds), "socket_path": "/run/gunicorn/shop.sock",
            "db_connections": connections}


def three_tiers():
    return {
        "web1": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.10"}}},
        "app1": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.21"}},
                 "python_app_exports": app_exports(), "gunicorn_exports": server_exports(connections=5)},
        "app2": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.22"}}, "pydeploy_address": "10.1.0.22",
                 "python_app_exports": app_exports(), "gunicorn_exports": server_exports(("10.1.0.22:8000",), 7)},
        "db1": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.30"}},
                "postgres_exports": {"ca_pem": "PEM", "sslmode": "verify-full", "port": 5432, "ssl": True}},
    }


TIERS = {"db_hosts": ["db1"], "app_hosts": ["app1", "app2"], "web_hosts": ["web1"]}


def test_nginx_dials_every_app_host_with_wildcards_replaced_by_the_host_address():
    got = stack.stack_input(three_tiers(), "web1", "nginx", **TIERS)
    assert got["apps"][0]["upstream_servers"] == ["10.0.0.21:8000", "10.1.0.22:8000"]
    assert got["apps"][0]["app"]["name"] == "shop"


def test_one_box_nginx_uses_the_socket():
    hv = three_tiers()
    got = stack.stack_input(hv, "app1", "nginx", db_hosts=["app1"], app_hosts=["app1"], web_hosts=["app1"])
    assert got["apps"][0]["upstream_servers"] == []


def test_remote_app_without_tcp_bind_is_an_error_naming_the_host():
    hv = three_tiers()
    hv["app2"]["gunicorn_exports"]["tcp_binds"] = []
    with pytest.raises(Exception, match="app2.*TCP"):
        stack.stack_input(hv, "web1", "nginx", **TIERS)


def test_postgres_gets_each_app_database_once_the_connection_sum_and_the_app_networks():
    got = stack.stack_input(three_tiers(), "db1", "postgres", **TIERS)
    assert got["app_databases"] == [{"name": "shop", "user": "shop", "password": "s3cret"}]
    assert got["app_connections"] == 12
    assert got["app_networks"] == ["10.0.0.21/32", "10.1.0.22/32"]


def test_postgres_ignores_apps_on_sqlite_or_another_db_host():
    hv = three_tiers()
    hv["app1"]["python_app_exports"] = app_exports(engine="sqlite")
    hv["app2"]["python_app_exports"] = app_exports(db_host="db2.example")
    hv["db2"] = {"ansible_host": "db2.example", "ansible_facts": {"default_ipv4": {"address": "10.0.0.31"}}}
    got = stack.stack_input(hv, "db1", "postgres", db_hosts=["db1", "db2"], app_hosts=["app1", "app2"], web_hosts=[])
    assert got == {"app_databases": [], "app_connections": 0, "app_networks": []}


def test_single_box_postgres_over_the_unix_socket_needs_no_network():
    hv = {"box": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}},
                  "python_app_exports": app_exports(db_host="/var/run/postgresql"),
                  "gunicorn_exports": server_exports((), 3)}}
    got = stack.stack_input(hv, "box", "postgres", db_hosts=["box"], app_hosts=["box"], web_hosts=["box"])
    assert got["app_networks"] == [] and got["app_connections"] == 3 and got["app_databases"][0]["name"] == "shop"


def test_app_server_allows_the_web_hosts_but_not_itself():
    got = stack.stack_input(three_tiers(), "app1", "gunicorn", **TIERS)
    assert got["web_clients"] == ["10.0.0.10"] and got["app"]["name"] == "shop"
    one_box = stack.stack_input(three_tiers(), "app1", "gunicorn", app_hosts=["app1"], web_hosts=["app1"])
    assert one_box["web_clients"] == []


def test_python_app_gets_its_server_and_the_database_ca_across_hosts_only():
    got = stack.stack_input(three_tiers(), "app1", "python_app", **TIERS)
    assert got["server"]["server"] == "gunicorn"
    assert got["database_tls"] == {"ca_pem": "PEM", "sslmode": "verify-full"}
    assert got["web_clients"] == ["10.0.0.10"]
    hv = three_tiers()
    hv["app1"]["python_app_exports"] = app_exports(db_host="/var/run/postgresql")
    assert stack.stack_input(hv, "app1", "python_app", **TIERS)["database_tls"] == {}


def test_missing_exports_say_how_to_run():
    hv = three_tiers()
    del hv["app2"]["gunicorn_exports"]
    with pytest.raises(Exception, match="app2 has no gunicorn_exports.*--limit"):
        stack.stack_input(hv, "web1", "nginx", **TIERS)


def test_ipv6_addresses_are_bracketed_and_networks_are_host_routes():
    hv = three_tiers()
    hv["app1"]["pydeploy_address"] = "2001:db8::21"
    assert stack.stack_input(hv, "web1", "nginx", **TIERS)["apps"][0]["upstream_servers"][0] == "[2001:db8::21]:8000"
    assert "2001:db8::21/128" in stack.stack_input(hv, "db1", "postgres", **TIERS)["app_networks"]


def test_batch_upstream_lists_what_nginx_lists():
    assert stack.batch_upstream(three_tiers(), ["app2"]) == ["10.1.0.22:8000"]


def test_unknown_server_is_rejected():
    with pytest.raises(Exception, match="pydeploy_app_server"):
        stack.stack_input(three_tiers(), "app1", "python_app", server="waitress", **TIERS)


def test_several_apps_and_names_of_one_machine():
    box = {"ansible_host": "box-1", "ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}}}
    hv = {
        "shop": {**box, "python_app_exports": app_exports("shop", db_host="/var/run/postgresql"),
                 "gunicorn_exports": server_exports((), 3)},
        "blog": {**box, "python_app_exports": app_exports("blog", db_host="pg"),
                 "gunicorn_exports": server_exports(("127.0.0.1:8002",), 2)},
        "pg": {**box, "postgres_exports": {"ca_pem": "PEM", "sslmode": "verify-full"}},
        "www": dict(box),
    }
    tiers = {"db_hosts": ["pg"], "app_hosts": ["shop", "blog"], "web_hosts": ["www"]}
    nginx = stack.stack_input(hv, "www", "nginx", **tiers)
    assert [a["app"]["name"] for a in nginx["apps"]] == ["shop", "blog"]
    assert [a["upstream_servers"] for a in nginx["apps"]] == [[], []]
    pg = stack.stack_input(hv, "pg", "postgres", **tiers)
    assert [d["name"] for d in pg["app_databases"]] == ["shop", "blog"] and pg["app_networks"] == []
    assert stack.stack_input(hv, "blog", "python_app", **tiers)["database_tls"] == {}
    assert stack.stack_input(hv, "shop", "gunicorn", **tiers)["web_clients"] == []


def _one_box_apps():
    box = {"ansible_host": "box-1", "ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}}}
    tcp_only = {"server": "gunicorn", "tcp_binds": ["0.0.0.0:8101", "[::]:8101"], "socket_path": "", "db_connections": 2}
    return {
        "shop": {**box, "python_app_exports": app_exports("shop"), "gunicorn_exports": server_exports((), 3)},
        "blog": {**box, "python_app_exports": app_exports("blog"), "gunicorn_exports": tcp_only},
        "shop2": {**box, "python_app_exports": app_exports("shop"), "gunicorn_exports": server_exports((), 3)},
        "www": dict(box),
        "web1": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.10"}}},
    }


def test_one_machine_app_server_without_a_socket_is_dialed_on_loopback():
    nginx = stack.stack_input(_one_box_apps(), "www", "nginx", app_hosts=["shop", "blog"], web_hosts=["www"])
    assert [a["upstream_servers"] for a in nginx["apps"]] == [[], ["127.0.0.1:8101", "[::1]:8101"]]


def test_remote_hosts_are_those_on_no_machine_of_the_others():
    hv = _one_box_apps()
    assert stack.remote_hosts(hv, ["www", "web1"], ["shop", "blog"]) == ["web1"]
    assert stack.remote_hosts(hv, ["www"], []) == ["www"]


def test_first_of_app_is_once_per_app_in_the_run():
    hv = _one_box_apps()
    run = ["blog", "shop", "shop2"]
    assert [stack.first_of_app(hv, run, h) for h in run] == [True, True, False]


def _tier_state(**states):
    return {host: ({} if state is None else {"__pydeploy_app_tier": state}) for host, state in states.items()}


@pytest.mark.parametrize("states, source", [
    # Every app host finished: the first.
    ({"app1": "done", "app2": "done"}, "app1"),
    # The first failed in this run: the next that finished, never the failed one.
    ({"app1": "started", "app2": "done"}, "app2"),
    # A deploy limited to app2 (pydeploy_deploy_hosts): the host that has the new release.
    ({"app1": None, "app2": "done"}, "app2"),
    # The web tier on its own: no app host ran, the first serves the live release.
    ({"app1": None, "app2": None}, "app1"),
])
def test_static_source_is_the_first_app_host_that_finished(states, source):
    hv = _tier_state(**states)
    assert stack.static_source(hv, list(states)) == source


def test_static_source_fails_naming_the_app_hosts_when_every_one_that_ran_failed():
    hv = _tier_state(app1="started", app2="started", app3=None)
    with pytest.raises(AnsibleFilterError, match=r"No app host finished the app tier in this run \(app1, app2 failed"):
        stack.static_source(hv, ["app1", "app2", "app3"])


def test_static_source_needs_an_app_host():
    with pytest.raises(AnsibleFilterError, match="the app tier has no host"):
        stack.static_source({}, [])
