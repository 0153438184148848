"""Unit tests of the nginx role's filters: sites from the stack input, the certificate plan, the
listeners of sites named by address, and the validation messages (each names the variable)."""
import pathlib
import sys
from collections.abc import Mapping

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))

from ansible_collections.pydeploy.django_stack.plugins.filter import nginx as f  # noqa: E402

APP = {"name": "shop", "server_names": ["shop.example.com"], "static_url": "/static/",
       "static_root": "/srv/shop/shared/static", "media_url": "/media/", "media_root": "/srv/shop/shared/media"}
SERVER = {"server": "uvicorn_worker", "socket_path": "/run/gunicorn/shop.sock", "timeout": 45, "keepalive": 3,
          "websocket": True, "tls": {"enabled": True, "ca_pem": "-----BEGIN CERTIFICATE-----x", "server_name": "app.internal"}}


def test_one_box_uses_the_socket_and_no_upstream_tls():
    [site] = f.nginx_stack_sites([{"app": APP, "server": SERVER, "upstream_servers": []}])
    assert site["upstream_socket"] == "/run/gunicorn/shop.sock" and site["upstream_servers"] == []
    assert "upstream_tls" not in site
    assert site["websocket_locations"] == [{"path": "/ws/"}]
    assert site["server_names"] == ["shop.example.com"] and site["static_root"] == "/srv/shop/shared/static"


def test_three_tiers_use_every_app_host_and_tls_when_offered():
    [site] = f.nginx_stack_sites([{"app": APP, "server": SERVER, "upstream_servers": ["10.0.0.2:8000", "10.0.0.3:8000"]}])
    assert site["upstream_servers"] == ["10.0.0.2:8000", "10.0.0.3:8000"]
    assert site["upstream_tls"] == {"enabled": True, "ca_pem": "-----BEGIN CERTIFICATE-----x", "ca_file": "",
                                    "name": "app.internal"}
    apps = [{"app": APP, "server": SERVER}, {"app": dict(APP, name="b"), "server": dict(SERVER, timeout=90, keepalive=2)}]
    assert f.nginx_app_timeout(apps) == 90 and f.nginx_app_keepalive(apps) == 2
    assert f.nginx_app_timeout([]) == 30


def test_ip_named_sites_get_listeners_and_an_address_belongs_to_one_site():
    sites = [{"name": "a", "server_names": ["localhost", "127.0.0.1", "[::1]"]}, {"name": "b", "server_names": ["b.test"]}]
    assert f.nginx_ip_listens(sites, 443) == [
        {"listen": "127.0.0.1:443", "address": "127.0.0.1", "site": "a"},
        {"listen": "[::1]:443", "address": "::1", "site": "a"}]
    assert f.nginx_ip_listens(sites, 443, ipv6=False) == [{"listen": "127.0.0.1:443", "address": "127.0.0.1", "site": "a"}]
    with pytest.raises(Exception, match="both a and b"):
        f.nginx_ip_listens(sites + [{"name": "b", "server_names": ["127.0.0.1"]}], 443)


def test_tls_plan_maps_certificate_sources():
    plan = f.nginx_tls_sites([
        {"name": "a", "certificate": "self_signed", "server_names": ["a.test"]},
        {"name": "b", "certificate": "provided", "server_names": ["b.test"], "certificate_content": "C",
         "certificate_key_content": "K", "certificate_file": "/x"},
        {"name": "c", "certificate": "provided", "server_names": ["c.test"], "certificate_file": "/c.crt",
         "certificate_key_file": "/c.key"},
        {"name": "d", "certificate": "acme", "server_names": ["d.test"]},
    ])
    assert [p["source"] for p in plan] == ["local_ca", "provided_content", "provided_files", "acme"]
    assert plan[1]["key_content"] == "K" and plan[1]["certificate_file"] == ""
    assert plan[2]["key_file"] == "/c.key" and plan[2]["certificate_content"] == ""
    # each entry names the variable it comes from, for the messages of the module
    assert [p["label"] for p in plan] == ["nginx_sites[0]", "nginx_sites[1]", "nginx_sites[2]", "nginx_sites[3]"]


GOOD = {
    "nginx_http_port": 80, "nginx_https_port": 443, "nginx_worker_connections": 1024, "nginx_worker_rlimit_nofile": 4096,
    "nginx_worker_processes": "auto", "nginx_client_max_body_size": "10m", "nginx_ssl_session_cache_size": "10m",
    "nginx_rate_limit_zone_size": "10m", "nginx_ssl_session_timeout": "1d", "nginx_static_expires": "30d",
    "nginx_media_expires": "7d", "nginx_keepalive_timeout": 65, "nginx_client_header_timeout": 10,
    "nginx_client_body_timeout": 15, "nginx_send_timeout": 15, "nginx_proxy_connect_timeout": 5,
    "nginx_proxy_read_timeout": 60, "nginx_proxy_send_timeout": 60, "nginx_websocket_read_timeout": 120,
    "nginx_upstream_keepalive_timeout": 4, "nginx_app_timeout": "30", "nginx_hsts_max_age": 63072000,
    "nginx_certificate_days": 365, "nginx_certificate_renew_days": 30, "nginx_local_ca_days": 3650,
    "nginx_server_names_hash_bucket_size": 64, "nginx_ssl_protocols": ["TLSv1.2", "TLSv1.3"],
    "nginx_ssl_ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256", "nginx_ssl_ecdh_curve": "X25519:prime256v1",
    "nginx_tls_dir": "/etc/nginx/tls", "nginx_acme_webroot": "/var/www/acme", "nginx_real_ip_from": ["10.0.0.0/8"],
    "nginx_access_log_format": "$remote_addr", "nginx_http_extra_directives": [], "nginx_gzip_types": ["text/css"],
    "nginx_security_headers": {"X-Frame-Options": "DENY"}, "nginx_media_content_security_policy": "default-src 'none'",
    "nginx_proxy_cleared_headers": ["Forwarded"], "nginx_upstream_down": [], "nginx_local_ca_common_name": "CA",
    "nginx_acme_directory": "https://acme-v02.api.letsencrypt.org/directory", "nginx_acme_ca_certificates": [],
    "nginx_acme_email": "",
}
SITE = {"name": "demo", "server_names": ["localhost", "127.0.0.1"], "certificate": "local_ca", "upstream_servers": [],
        "upstream_socket": "/run/gunicorn/demo.sock", "upstream_keepalive": 16, "upstream_tls": {"enabled": False},
        "static_url": "/static/", "static_root": "/srv/demo/shared/static", "media_url": "/media/",
        "media_root": "/srv/demo/shared/media", "websocket_locations": [{"path": "/ws/"}],
        "websocket_rate_limit": {"rate": "5r/s", "burst": 10}, "rate_limit": {"rate": "10r/s", "burst": 20},
        "rate_limited_locations": [], "limit_conn": 100, "client_max_body_size": "10m", "security_headers": {},
        "extra_directives": []}


def problems(site_override=None, raw_override=None, **top):
    site = dict(SITE, **(site_override or {}))
    raw = dict({"name": "demo"}, **(raw_override or {}))
    return f.nginx_problems(dict(GOOD, nginx_sites=[raw], __sites=[site], **top), "web1")


def test_good_input_passes():
    assert problems() == []
    # A key given as content is named in __with_key (the merged sites carry no key content).
    content = {"certificate": "provided", "certificate_content": "-----BEGIN CERTIFICATE-----x"}
    assert problems(content, {}, __with_key=["demo"]) == []
    assert any("certificate_key_content" in p for p in problems(content, {}))


@pytest.mark.parametrize("site,raw,top,expected", [
    ({"server_names": "shop.example.com"}, {"server_names": "shop.example.com"}, {},
     "nginx_sites[0].server_names: must be a non-empty list"),
    ({"server_names": ["_"]}, {"server_names": ["_"]}, {}, "catch-all"),
    ({"server_names": ["a.test\nreturn 200"]}, {"server_names": ["a.test\nreturn 200"]}, {}, "not a host name"),
    ({"static_root": "/srv/x;\n} server {"}, {}, {}, "nginx_static_root: must be an absolute path"),
    ({"upstream_servers": ["10.0.0.2:70000"]}, {"upstream_servers": ["10.0.0.2:70000"]}, {}, "outside 1-65535"),
    ({"upstream_servers": ["999.1.2.3:8000"]}, {}, {}, "nginx_upstream_servers[0]: '999.1.2.3:8000'"),
    ({"upstream_socket": "/run/x.sock; evil"}, {}, {}, "nginx_upstream_socket"),
    ({"certificate": "acme", "server_names": ["192.0.2.10"]}, {"certificate": "acme"}, {"nginx_acme_email": "a@b.org"},
     "an ACME certificate (HTTP-01) needs DNS names"),
    ({"certificate": "acme"}, {"certificate": "acme"}, {}, "nginx_acme_email"),
    ({"extra_directives": "return 200;"}, {"extra_directives": "return 200;"}, {}, "must be a list of directives"),
    ({"security_headers": {"X-A": 'x" always; return 200; #'}}, {}, {}, "value must be one line"),
    ({"rate_limit": {"rate": "10/s", "burst": 5}}, {}, {}, "nginx_rate_limit: rate must look like"),
    ({"client_max_body_size": "10m;\nreturn 200"}, {}, {}, "must be a size"),
    ({"certificate": "provided"}, {"certificate": "provided"}, {}, "provided needs"),
    ({"upstream_tls": {"enabled": True, "name": "app.internal"}, "upstream_servers": ["a:1"]}, {}, {}, "needs ca_pem"),
    ({}, {}, {"nginx_proxy_read_timeout": 20}, "must exceed the app server's timeout"),
    ({}, {}, {"nginx_static_expires": "30d;\nreturn 200"}, "nginx_static_expires"),
    ({}, {}, {"nginx_real_ip_from": ["10.0.0.0/99"]}, "nginx_real_ip_from[0]"),
    ({}, {}, {"nginx_acme_directory": "http://acme.test/dir"}, "nginx_acme_directory"),
    ({}, {}, {"nginx_ssl_ciphers": "HIGH;\nreturn 200"}, "nginx_ssl_ciphers"),
])
def test_bad_input_names_the_variable_and_the_host(site, raw, top, expected):
    found = problems(site, raw, **top)
    assert any(expected in p and p.endswith("host web1)") for p in found), found


def test_site_problems_name_the_path_first_then_the_site():
    found = problems({"certificate": "acme", "server_names": ["shop.example.com", "192.0.2.10"]},
                     {"certificate": "acme", "server_names": ["shop.example.com", "192.0.2.10"]},
                     nginx_acme_email="a@b.org")
    assert [p for p in found if p.startswith("nginx_sites[0].server_names[1]: '192.0.2.10'")], found
    assert all(p.endswith("(site demo; host web1)") for p in found), found
    found = problems({"upstream_servers": ["999.1.2.3:8000"]}, {})
    assert [p for p in found if p.startswith("nginx_upstream_servers[0]:")
            and p.endswith("(used by site demo; host web1)")], found


def test_server_names_may_hold_underscores_but_acme_names_may_not():
    names = ["pydeploy-uvicorn_worker-deb12", "app_1.internal"]
    assert problems({"server_names": names}, {"server_names": names}) == []
    found = problems({"certificate": "acme", "server_names": ["app_1.example.com"]}, {"certificate": "acme"},
                     nginx_acme_email="a@b.org")
    assert any("'app_1.example.com': an ACME certificate (HTTP-01) needs DNS names" in p for p in found), found


# ---- nginx_site_defaults ------------------------------------------------------------------------

def test_site_defaults_fill_what_a_site_leaves_out_and_the_site_wins():
    defaults = {"certificate": "self_signed", "rate_limit": {"rate": "10r/s"}, "extra_directives": []}
    sites = [{"name": "a", "certificate": "acme"}, {"name": "b", "rate_limit": {}}]
    assert f.nginx_site_defaults(sites, defaults) == [
        {"name": "a", "certificate": "acme", "rate_limit": {"rate": "10r/s"}, "extra_directives": []},
        {"name": "b", "certificate": "self_signed", "rate_limit": {}, "extra_directives": []},
    ]
    # A shallow merge (combine without recursive): a site's dict replaces the default's, keys are not merged.
    assert f.nginx_site_defaults([{"rate_limit": {"burst": 5}}], defaults)[0]["rate_limit"] == {"burst": 5}
    # The inputs are left as they were; each site gets its own dict.
    assert defaults == {"certificate": "self_signed", "rate_limit": {"rate": "10r/s"}, "extra_directives": []}
    assert sites[0] == {"name": "a", "certificate": "acme"}
    assert f.nginx_site_defaults([], defaults) == []


def test_site_defaults_read_the_defaults_once_whatever_the_number_of_sites():
    class Counting(Mapping):  # as Ansible's lazy dicts: every read of a value may evaluate a template
        reads = 0

        def __init__(self, **values):
            self.values_ = values

        def __getitem__(self, key):
            Counting.reads += 1
            return self.values_[key]

        def __iter__(self):
            return iter(self.values_)

        def __len__(self):
            return len(self.values_)

    sites = f.nginx_site_defaults([{"name": str(i)} for i in range(5)], Counting(certificate="acme", rate_limit={}))
    assert [s["certificate"] for s in sites] == ["acme"] * 5
    assert Counting.reads == 2  # each default once


@pytest.mark.parametrize("site", ["x.test", ["x.test"], None])
def test_site_defaults_name_the_site_that_is_not_a_dict(site):
    with pytest.raises(f.AnsibleFilterError, match=r"nginx_sites\[1\]: is a \w+ where a dict is expected"):
        f.nginx_site_defaults([{"name": "a"}, site], {})
