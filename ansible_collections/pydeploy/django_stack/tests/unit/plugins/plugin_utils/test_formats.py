"""Unit tests of plugins/plugin_utils/formats.py: every format with values that pass and values that must not."""

import pytest

from ansible_collections.pydeploy.django_stack.plugins.plugin_utils import formats

# Structurally valid PEM (base64 of a DER SEQUENCE); real ones are generated in test_real_pem_material.
_DER = "MAMCAQA="
_CERT = f"-----BEGIN CERTIFICATE-----\n{_DER}\n-----END CERTIFICATE-----"
_KEY = f"-----BEGIN PRIVATE KEY-----\n{_DER}\n-----END PRIVATE KEY-----"

GOOD = {
    "port": [1, 22, 80, 443, 8000, 65535, "1", "8000", "65535"],
    "nice_level": [-20, -5, 0, 19, "-5", "0", "19"],
    "host_port": ["127.0.0.1:8000", "0.0.0.0:80", "[::1]:8000", "[2001:db8::1]:443", "[::]:8000", "localhost:8000",
                  "app1.example.com:8000", "app-1:1", "10.0.0.5:65535", "a.b.c:22"],
    "ip_address": ["127.0.0.1", "0.0.0.0", "10.1.2.3", "255.255.255.255", "::1", "::", "2001:db8::1", "fe80::1%eth0",
                   "::ffff:192.0.2.1"],
    "cidr": ["10.0.0.0/8", "192.168.1.0/24", "127.0.0.1/32", "0.0.0.0/0", "::1/128", "2001:db8::/32", "::/0",
             "192.0.2.21/32", "fd00::/8"],
    "ip_or_cidr": ["10.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/64"],
    "dns_name": ["localhost", "example.com", "www.example.com", "a-b.example.co.uk", "xn--bcher-kva.example", "a",
                 "app1", "A.EXAMPLE.COM", "1a.example.com", "db-1.internal"],
    "host": ["localhost", "db.example.com", "10.0.0.1", "::1", "2001:db8::5", "db1"],
    "cert_host": ["db.example.com", "pydeploy-uvicorn_worker-deb12", "10.0.0.1", "::1", "localhost"],
    "server_name": ["_", "pydeploy-uvicorn_worker-deb12", "example.com", "*.example.com", ".example.com", "example.*", "localhost", "127.0.0.1",
                    "[::1]", "::1", "www.example.com", "nginx"],
    "allowed_host": ["*", ".example.com", "example.com", "127.0.0.1", "[::1]", "::1", "localhost", "box.example.com",
                     "pydeploy-uvicorn_worker-deb12"],
    "rel_path": ["src", "requirements/prod.txt", "a/b/c", "none", "pyproject.toml", "./x"],
    "env_value_unquoted": ["abc", "a b $x \"q\"", 5, "https://x/?a=1&b=2", ""],
    "file_name": ["v1", "2026.11.30-1", "release_3", "a.b"],
    "version": ["0.13.9", "2.1rc1", "1", "1.0+local", "10.2-1"],
    "http_origin": ["https://example.com", "http://localhost", "https://example.com:8443", "http://127.0.0.1:8000",
                    "https://*.example.com", "https://[::1]:8443", "http://a"],
    "url": ["https://pypi.example.com/simple", "http://proxy:3128", "http://user:pass@proxy.example.com:3128",
            "https://example.com", "https://[::1]:8443/x?y=1", "git+https://example.com/repo.git", "ssh://git@host/r"],
    "email": ["ops@example.com", "first.last+tag@sub.example.co.uk", "a_b-c%d@example.org", "x@y.io"],
    "abs_path": ["/", "/srv/app", "/srv/my app/static", "/etc/ssl/x.pem", "/run/gunicorn/demo.sock", "/a;b", "/a$b"],
    "nginx_path": ["/", "/srv/app/shared/static", "/run/gunicorn/demo.sock", "/var/www/acme", "/a-b_c.d/e@f+g"],
    "url_path": ["/", "/ws/", "/accounts/login/", "/api", "/static/css/", "/a-b_c.d/~x/"],
    "url_prefix": ["/", "/static/", "/media/", "/a/b/"],
    "octal_mode": ["0660", "660", "0600", "0755", "0o660", "1777", "0000", 432, 0o600, 0o755, 0, 0o777],
    "python_module": ["demo", "mysite.settings", "a.b.c", "_private", "app2", "Pkg.Mod"],
    "python_callable": ["demo.wsgi:application", "mysite.asgi:application", "app:app", "pkg.mod:obj.attr"],
    "unit_name": ["demo", "my_app", "app-2", "A1", "_x", "a" * 64],
    "user_name": ["demo", "www-data", "_app", "app1", "a" * 32],
    "env_name": ["DJANGO_DEBUG", "_X", "a", "PATH", "X1"],
    "env_value": ["", "plain", "with spaces", "a=b", "https://x/y", 'double "quotes"', "$HOME", "$(not run)", 1, 0,
                  3.5, "utf8 é", "it's", "'$(id)'"],
    "identifier": ["a", "_b", "C_1"],
    "pg_identifier": ["demo", "app_user", "_x", "A1", "a" * 63],
    "header_name": ["X-Frame-Options", "Content-Security-Policy", "X1"],
    "header_value": ["nosniff", "DENY", "default-src 'none'; sandbox", "max-age=63072000", 10, '"cache"',
                     'a\\b'],
    "deb_package": ["nginx", "python3-venv", "libpq-dev", "g++", "postgresql-15-pgvector", "nginx=1.22.1-9"],
    "pip_requirement": ["django==5.2.1", "gunicorn==27.0.1", "uvicorn[standard]==0.54.0", "requests>=2,<3",
                        "psycopg[binary]", "Django", "pkg ; python_version >= '3.8'"],
    "nginx_size": ["10m", "1024", "512k", "1g", "0", "10M", 1024],
    "nginx_time": ["60s", "30d", "1h30m", "500ms", "1y", "10", "2w", "1M", 60],
    "nginx_expires": ["30d", "off", "epoch", "max", "7d", "1h"],
    "rate": ["10r/s", "30r/m", "1r/s", "5000r/s"],
    "pg_size": ["128MB", "4GB", "64kB", "1TB", "0MB"],
    "pg_duration": ["15min", "30s", "500ms", "1h", "1d", "60", 60],
    "systemd_calendar": ["daily", "weekly", "hourly", "*-*-* 03:15:00", "Mon..Fri 09:00", "Mon,Wed *-*-* 00:00:00",
                         "*:0/15", "*-*-1 04:00", "2030-01-01 00:00:00 UTC", "Sat *-*-* 02:30", "monthly",
                         "*-*-* *:00:00", "03:15"],
    "pem_certificate": [_CERT, _CERT + "\n", _CERT + "\n" + _CERT, _CERT.replace("\n", "\r\n")],
    "pem_private_key": [_KEY, _KEY + "\n", _KEY.replace("PRIVATE KEY", "EC PRIVATE KEY"),
                        _KEY.replace("PRIVATE KEY", "RSA PRIVATE KEY")],
    "single_line": ["", "text", "a b c", "tabs\tok", 5, 2.5, "quotes ' \" ok"],
    "no_control": ["abc", "a b"],
}

BAD = {
    "nice_level": [20, -21, "20", "-21", "high", "-5;\nuser root", True, None, -5.0, "", [0]],
    "port": [0, 65536, 70000, -1, "0", "65536", "080", "http", "80 ", "8000\n", True, None, 80.0, "", [80]],
    "host_port": ["127.0.0.1:70000", "127.0.0.1:0", "127.0.0.1", "::1:8000", "[::1]8000", "[::1", "999.1.2.3:80",
                  "host:port", "127.0.0.1:8000\n", "a b:80", "host:80;", ":8000", "[zz::1]:80", "127.0.0.1:",
                  "-bad.example:80", 8000, "127.0.0.1:8000 ", "1.2.3:80"],
    "ip_address": ["999.1.2.3", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "::g", "localhost", "", "1.2.3.4\n",
                   "1.2.3.4/32", " 1.2.3.4", 1234],
    "cidr": ["10.0.0.0/99", "999.1.2.3/24", "10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "::1/129", "10.0.0.0/024",
             "10.0.0.0/8\n", "samehost", "10.0.0.0/8 ", "10.0.0.0/a", "1.2.3/8", "0.0.0.0/0 trust", ""],
    "ip_or_cidr": ["10.0.0.0/99", "999.1.2.3", "example.com", ""],
    "dns_name": ["", "-a.com", "a-.com", "a..b", ".example.com", "example.com.", "a_b.com", "a b", "x\n",
                 "999.1.2.3", "1.2.3.4", "a" * 64 + ".com", "exa mple.com", "*.example.com", "ex;ample.com",
                 "example.com\n", 5],
    "host": ["", "999.1.2.3", "a b", "host;rm", "::zz", "x\n"],
    "cert_host": ["", "999.1.2.3", "a b", "db;rm", "*.example.com", "db\n", "-db"],
    "server_name": ["", "~^www\\.", "ex ample.com", "example.com;", "*.*.example.com", "a.*.com", "example.com\n",
                    "$host", "{x}", "999.1.2.3", "[::1", "a..b", "w*w.example.com"],
    "allowed_host": ["", "a b", "shop.example.com\n", "*.example.com", "$(id)", "x;y", "999.1.2.3", "a_b;c", "_a.b$"],
    "rel_path": ["", "/abs", "../up", "a/../../b", "a b", "a\nb", 5, "x\r"],
    "env_value_unquoted": ["it's", "a\nb", "x\r", True, [1], "tab\t"],
    "file_name": ["", ".", "..", "a/b", "a b", "v1;rm", "x\n", 3],
    "version": ["", "v1.0", "1.0; rm", "1 0", "1.0\n", "==1.0", 1.0],
    "http_origin": ["example.com", "www.example.com:443", "ftp://example.com", "https://", "https://example.com/",
                    "https://example.com/path", "https://exa mple.com", "https://example.com\n",
                    "https://user@example.com", "https://example.com:99999", "//example.com", "https://a..b",
                    "HTTPS://example.com"],
    "url": ["example.com", "https://", "https://exa mple.com", "https://example.com/\n", "http://x'y",
            "https://example.com:0", "/relative/path", "https://a..b/", 'http://x"y', "https://host/`id`"],
    "email": ["ops", "@example.com", "ops@", "ops@localhost", "o ps@example.com", "ops@example.com\n",
              "ops@@example.com", "ops;rm@example.com", "ops@exa_mple.com", ".ops@example.com", "o..ps@example.com"],
    "abs_path": ["", "relative", "srv/app", "./x", "/srv/app\n", "/srv\rapp", "/srv\x00", "~/x", 5, None, ["/x"]],
    "nginx_path": ["/srv/app; return 200", "/srv/my app", "/srv/{x}", "/srv/$host", "/srv/'x'", '/srv/"x"',
                   "/srv/a#b", "/srv/a\\b", "/srv/app\n", "relative", "/srv\tx"],
    "url_path": ["static/", "https://cdn.example.com/static/", "/a b/", "/a;b/", "/a{b}/", "/x?y", "/x\n", ""],
    "url_prefix": ["/static", "static/", "/a b/", ""],
    "octal_mode": ["660 ", "0660\n", "u=rw", "rw-rw----", "0999", "8", "06600", "", "0x1b0", 660, 777, 1000, -1,
                   True, None, 0o1777, 6.6],
    "python_module": ["", "my-site", "my site", "1site", "a..b", "a.", ".a", "a/b", "import", "a.class",
                      "mysite\n", "mysite.settings;import os", "ü"],
    "python_callable": ["demo.wsgi", "demo.wsgi:", ":app", "demo:app()", "demo:app\n", "de-mo:app", "demo::app",
                        "demo:app:x"],
    "unit_name": ["", "-x", "a b", "a/b", "a.b", "a" * 65, "x\n", "ü", "a@b", "a;b"],
    "user_name": ["", "Demo", "1app", "a b", "a" * 33, "app\n", "app$"],
    "env_name": ["", "1X", "A-B", "A B", "A\n", "a.b", "$X"],
    "env_value": ["line\nbreak", "cr\r", "nul\x00", "tab\there", True, False, None, ["x"], {"a": 1}],
    "identifier": ["", "1a", "a-b", "a b"],
    "pg_identifier": ["", "1demo", "demo-app", "demo app", "demo;drop", "a" * 64, "demo\n", "dé"],
    "header_name": ["", "X Frame", "X:Y", "X\n"],
    "header_value": ["a\nb", "a\rb", "$http_cookie", "x\r\nX-Evil: 1", None],
    "deb_package": ["", "Nginx", "nginx; rm -rf /", "-o", "a", "nginx\n", "nginx pkg"],
    "pip_requirement": ["", "-e git+https://x", "--index-url=https://evil", "django==5.2\n", "django===",
                        "django==5.2 && rm", "?"],
    "nginx_size": ["10mb", "10 m", "ten", "-1", "10m;", "10m\n", "", 1.5, True],
    "nginx_time": ["60 s", "60sec", "1x", "30d;", "30d\n", "", "-5s", True, "s"],
    "nginx_expires": ["30d; add_header X y", "forever", "30 d", "", "30d\n"],
    "rate": ["10r/h", "10/s", "0r/s", "r/s", "10r/s ", "10r/s\n", "10 r/s", "10r/s;", 10, ""],
    "pg_size": ["128mb", "128", "4 GB", "1PB", "", "128MB\n", 128],
    "pg_duration": ["15 min", "15m", "1w", "", "15min\n", "-1s"],
    "systemd_calendar": ["", "every day", "*-*-* 25:00:00", "*-*-* 03:61", "*-13-* 00:00", "Funday 09:00",
                         "daily\n", "*-*-* 03:15:00\nExecStart=/bin/sh", "09:00 Mon", "*-*-* 03:15:00 03:15:00",
                         "*:0/0", "*-*-32 00:00"],
    "pem_certificate": ["", "not pem", _KEY, _CERT.replace(_DER, "!!!!"), _CERT.replace(_DER, "QUJD"),
                        "/etc/ssl/certs/x.pem", _CERT + "\ntrailing garbage", _CERT[:-5]],
    "pem_private_key": ["", _CERT, _KEY + "\n" + _KEY, _KEY.replace(_DER, "%%%%"), "/etc/ssl/private/x.key"],
    "single_line": ["a\nb", "a\rb", "a\x00b", "x\n", None, True, ["x"]],
    "no_control": ["a\tb", "a\nb", 5],
}


def _cases(table):
    return [pytest.param(name, value, id=f"{name}-{value!r}"[:80]) for name, values in table.items() for value in values]


@pytest.mark.parametrize("name,value", _cases(GOOD))
def test_good_values_pass(name, value):
    formats.check(name, value)


@pytest.mark.parametrize("name,value", _cases(BAD))
def test_bad_values_fail(name, value):
    with pytest.raises(formats.FormatError):
        formats.check(name, value)


def test_every_format_is_tested():
    assert set(GOOD) == set(formats.FORMATS)
    assert set(BAD) == set(formats.FORMATS)


@pytest.mark.parametrize("name", sorted(formats.FORMATS))
def test_trailing_newline_never_passes(name):
    """The bug of re.match('^...$'): "x\\n" passes. Every format must refuse a trailing newline."""
    if name.startswith("pem_"):
        pytest.skip("PEM text is multi-line by nature")
    for value in GOOD[name]:
        if isinstance(value, str) and value:
            with pytest.raises(formats.FormatError):
                formats.check(name, value + "\n")


@pytest.mark.parametrize("name", sorted(formats.FORMATS))
def test_every_format_describes_what_it_accepts(name):
    assert len(formats.describe(name)) > 10


@pytest.mark.parametrize("value,expected", [
    ("0660", "0660"), ("660", "0660"), ("0o660", "0660"), ("600", "0600"), ("0755", "0755"), ("1777", "1777"),
    (432, "0660"), (0o600, "0600"), (0o755, "0755"), (0, "0000"), (0o777, "0777"), ("0000", "0000"),
])
def test_octal_mode_normalizes_to_four_digits(value, expected):
    assert formats.check("octal_mode", value) == expected


def test_octal_mode_explains_unquoted_decimal():
    with pytest.raises(formats.FormatError, match="quoted"):
        formats.check("octal_mode", 660)


@pytest.mark.parametrize("value,expected", [("8000", 8000), (8000, 8000), ("1", 1)])
def test_port_normalizes_to_int(value, expected):
    assert formats.check("port", value) == expected


@pytest.mark.parametrize("value,reason", [
    ("127.0.0.1:70000", "outside 1-65535"),
    ("10.0.0.0/99", "larger than 32"),
    ("999.1.2.3/24", "IPv4"),
    ("example.com", "no scheme"),
    ("[::1", "not closed"),
])
def test_reasons_say_what_is_wrong(value, reason):
    name = {"127.0.0.1:70000": "host_port", "10.0.0.0/99": "cidr", "999.1.2.3/24": "cidr",
            "example.com": "http_origin", "[::1": "host_port"}[value]
    with pytest.raises(formats.FormatError, match=reason):
        formats.check(name, value)


def test_optional_suffix_accepts_empty():
    assert formats.check("url?", "") == ""
    assert formats.check("url?", None) is None
    with pytest.raises(formats.FormatError):
        formats.check("url?", "not a url")
    assert formats.describe("url?").endswith("(or empty)")


def test_alternatives():
    assert formats.check_any("nginx_path|host_port", "/run/x.sock") == "/run/x.sock"
    assert formats.check_any(["nginx_path", "host_port"], "10.0.0.1:8000") == "10.0.0.1:8000"
    with pytest.raises(formats.FormatError) as err:
        formats.check_any("nginx_path|host_port", "/run/x.sock; return 200")
    assert "/" in str(err.value)


def test_aliases():
    assert formats.check("mode", "644") == "0644"
    assert formats.check("abs_path_nginx", "/x") == "/x"
    assert formats.check("hostname", "a.example") == "a.example"


def test_unknown_format_is_a_key_error():
    with pytest.raises(KeyError):
        formats.check("no_such_format", "x")
    assert not formats.known("no_such_format")
    assert formats.known("port?")


def test_secret_values_never_appear_in_pem_errors():
    secret = "-----BEGIN PRIVATE KEY-----\nnot base64 !!! topsecret\n-----END PRIVATE KEY-----"
    with pytest.raises(formats.FormatError) as err:
        formats.check("pem_private_key", secret)
    assert "topsecret" not in str(err.value)


def test_real_pem_material():
    crypto = pytest.importorskip("cryptography")
    del crypto
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    assert formats.check("pem_certificate", cert_pem) == cert_pem
    assert formats.check("pem_private_key", key_pem) == key_pem
    with pytest.raises(formats.FormatError):
        formats.check("pem_certificate", key_pem)
