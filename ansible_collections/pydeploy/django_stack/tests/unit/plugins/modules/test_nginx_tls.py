"""Unit tests of the nginx_tls module: the local CA, its leaves, provided pairs, ACME lineages."""
import datetime
import json
import os
import pathlib
import ssl
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))

from cryptography import x509  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID  # noqa: E402

from ansible_collections.pydeploy.django_stack.plugins.modules import nginx_tls as m  # noqa: E402


def params(tmp_path, sites, **extra):
    base = dict(tls_dir=str(tmp_path / "tls"), ca_common_name="test CA", ca_days=3650, ca_renew_days=90,
                leaf_days=365, leaf_renew_days=30, acme_live_dir=str(tmp_path / "live"), directories=[],
                sites=[dict(dict(certificate_content="", key_content="", certificate_file="", key_file="",
                                 upstream_ca_content=""), **s) for s in sites])
    base.update(extra)
    return base


def run(tmp_path, sites, now=None, check_mode=False, **extra):
    return m.Manager(params(tmp_path, sites, **extra), m.Host(check_mode), now=now).run()


def load(path):
    return x509.load_pem_x509_certificate(pathlib.Path(path).read_bytes())


def test_local_ca_leaf_has_the_extensions_strict_validators_need(tmp_path):
    result = run(tmp_path, [{"name": "demo", "source": "local_ca", "names": ["localhost", "127.0.0.1", ".ex.test"]}])
    assert result["changed"]
    leaf = load(tmp_path / "tls/demo/fullchain.pem")
    ca = load(tmp_path / "tls/ca/ca.pem")
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).critical
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ext.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert ExtendedKeyUsageOID.SERVER_AUTH in ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert m.aki(leaf) == m.ski(ca) and m.ski(leaf)
    assert m.cert_sans(leaf) == ["DNS:*.ex.test", "DNS:ex.test", "DNS:localhost", "IP:127.0.0.1"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert result["sites"]["demo"]["source"] == "local_ca" and result["acme_due"] == []
    assert (tmp_path / "tls/local-ca.pem").read_bytes() == (tmp_path / "tls/ca/ca.pem").read_bytes()
    assert os.stat(tmp_path / "tls/demo/privkey.pem").st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "tls/ca/ca.key").st_mode & 0o777 == 0o600


def test_python_strict_verification_accepts_the_leaf(tmp_path):
    run(tmp_path, [{"name": "demo", "source": "local_ca", "names": ["localhost"]}])
    ctx = ssl.create_default_context(cafile=str(tmp_path / "tls/ca/ca.pem"))
    if hasattr(ssl, "VERIFY_X509_STRICT"):
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "tls/demo/fullchain.pem", tmp_path / "tls/demo/privkey.pem")
    client_in, client_out, server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(client_in, client_out, server_hostname="localhost")
    srv = server.wrap_bio(server_in, server_out, server_side=True)
    for _round in range(10):
        for side in (client, srv):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
    client.do_handshake()  # raises SSLCertVerificationError when the chain is refused


def test_second_run_changes_nothing_and_names_change_reissues(tmp_path):
    site = {"name": "demo", "source": "local_ca", "names": ["a.test"]}
    run(tmp_path, [site])
    serial = load(tmp_path / "tls/demo/fullchain.pem").serial_number
    assert run(tmp_path, [site])["changed"] is False
    result = run(tmp_path, [dict(site, names=["a.test", "b.test"])])
    assert result["changed"] and load(tmp_path / "tls/demo/fullchain.pem").serial_number != serial


def test_leaf_is_renewed_ahead_of_expiry(tmp_path):
    site = {"name": "demo", "source": "local_ca", "names": ["a.test"]}
    run(tmp_path, [site])
    later = m.utcnow() + datetime.timedelta(days=340)
    assert run(tmp_path, [site], now=later)["changed"]
    assert m.not_after(load(tmp_path / "tls/demo/fullchain.pem")) > later + datetime.timedelta(days=300)


def test_check_mode_writes_nothing(tmp_path):
    result = run(tmp_path, [{"name": "demo", "source": "local_ca", "names": ["a.test"]}], check_mode=True)
    assert result["changed"] and not (tmp_path / "tls").exists()


def _pair(tmp_path, name):
    other = m.Manager(params(tmp_path / name, [{"name": name, "source": "local_ca", "names": [f"{name}.test"]}]),
                      m.Host(False))
    other.run()
    base = tmp_path / name / "tls" / name
    return (base / "fullchain.pem").read_text(), (base / "privkey.pem").read_text()


def test_provided_content_is_checked_before_it_is_written(tmp_path):
    cert, key = _pair(tmp_path, "one")
    other_key = _pair(tmp_path, "two")[1]
    with pytest.raises(m.TLSError, match="does not belong"):
        run(tmp_path, [{"name": "v", "source": "provided_content", "names": ["v.test"],
                        "certificate_content": cert, "key_content": other_key}])
    assert not (tmp_path / "tls/v/fullchain.pem").exists()
    with pytest.raises(m.TLSError, match="certificate_content holds no PEM certificate"):
        run(tmp_path, [{"name": "v", "source": "provided_content", "names": ["v.test"],
                        "certificate_content": "garbage", "key_content": key}])
    run(tmp_path, [{"name": "v", "source": "provided_content", "names": ["v.test"],
                    "certificate_content": cert, "key_content": key}])
    assert (tmp_path / "tls/v/fullchain.pem").read_text() == cert.strip() + "\n"


def test_provided_files_are_linked_and_fingerprinted(tmp_path):
    cert, key = _pair(tmp_path, "one")
    (tmp_path / "u.crt").write_text(cert)
    (tmp_path / "u.key").write_text(key)
    site = {"name": "f", "source": "provided_files", "names": ["f.test"],
            "certificate_file": str(tmp_path / "u.crt"), "key_file": str(tmp_path / "u.key")}
    run(tmp_path, [site])
    assert os.readlink(tmp_path / "tls/f/fullchain.pem") == str(tmp_path / "u.crt")
    assert run(tmp_path, [site])["changed"] is False
    cert2, key2 = _pair(tmp_path, "two")
    (tmp_path / "u.crt").write_text(cert2)
    (tmp_path / "u.key").write_text(key2)
    assert run(tmp_path, [site])["changed"]  # replaced behind the link: nginx must reload
    with pytest.raises(m.TLSError, match="certificate_file cannot be read"):
        run(tmp_path, [dict(site, certificate_file=str(tmp_path / "missing.crt"))])


def test_check_inputs_names_the_variable_of_a_labelled_site(tmp_path):
    cert, key = _pair(tmp_path, "one")
    other_key = _pair(tmp_path, "two")[1]
    (tmp_path / "u.crt").write_text(cert)
    (tmp_path / "u.key").write_text(key)
    files = {"name": "f", "source": "provided_files", "names": ["f.test"], "label": "nginx_sites[1]",
             "certificate_file": str(tmp_path / "u.crt"), "key_file": str(tmp_path / "u.key")}
    assert run(tmp_path, [files], check_inputs_only=True)["changed"] is False
    with pytest.raises(m.TLSError, match=r"^nginx_sites\[1\]\.certificate_file: cannot be read"):
        run(tmp_path, [dict(files, certificate_file=str(tmp_path / "missing.crt"))], check_inputs_only=True)
    with pytest.raises(m.TLSError, match=r"^nginx_sites\[1\]\.certificate_key_file: cannot be read"):
        run(tmp_path, [dict(files, key_file=str(tmp_path / "missing.key"))], check_inputs_only=True)
    content = {"name": "c", "source": "provided_content", "names": ["c.test"], "label": "nginx_sites[0]",
               "certificate_content": cert, "key_content": other_key}
    with pytest.raises(m.TLSError, match=r"^nginx_sites\[0\]\.certificate_key_content: the provided private key "
                       "does not belong"):
        run(tmp_path, [content], check_inputs_only=True)
    # Without a label (a site given to the module directly) the site's name is used.
    with pytest.raises(m.TLSError, match=r"^nginx site c: certificate_key_content the provided private key"):
        run(tmp_path, [dict(content, label="")], check_inputs_only=True)
    # check_inputs_only writes nothing
    assert not (tmp_path / "tls" / "c").exists() and not (tmp_path / "tls" / "f").exists()


def test_acme_placeholder_then_lineage_then_names_change(tmp_path):
    site = {"name": "shop", "source": "acme", "names": ["shop.test", "www.shop.test"]}
    first = run(tmp_path, [site])
    assert first["acme_due"] == ["shop"] and first["sites"]["shop"]["source"] == "local_ca"
    assert not os.path.islink(tmp_path / "tls/shop/fullchain.pem")
    # certbot's lineage appears (a leaf for the same names from another CA will do here).
    cert, key = _pair(tmp_path, "shop")
    lineage = tmp_path / "live/shop"
    lineage.mkdir(parents=True)
    issued = m.Manager(params(tmp_path / "x", [site]), m.Host(False))
    issued.run()
    (lineage / "fullchain.pem").write_bytes((tmp_path / "x/tls/shop/fullchain.pem").read_bytes())
    (lineage / "privkey.pem").write_bytes((tmp_path / "x/tls/shop/privkey.pem").read_bytes())
    second = run(tmp_path, [site])
    assert second["acme_due"] == [] and second["sites"]["shop"]["source"] == "acme"
    assert os.readlink(tmp_path / "tls/shop/fullchain.pem") == str(lineage / "fullchain.pem")
    assert run(tmp_path, [site])["changed"] is False
    third = run(tmp_path, [dict(site, names=["shop.test"])])
    assert third["acme_due"] == ["shop"]  # the old lineage keeps serving until the new issuance
    # Back to local_ca: the link is replaced by a file, certbot's lineage untouched.
    run(tmp_path, [dict(site, source="local_ca")])
    assert not os.path.islink(tmp_path / "tls/shop/fullchain.pem")
    assert (lineage / "fullchain.pem").exists()


def test_fingerprint_file_is_json(tmp_path):
    run(tmp_path, [{"name": "demo", "source": "local_ca", "names": ["a.test"]}])
    assert json.loads((tmp_path / "tls/.fingerprints").read_text()) == {}
