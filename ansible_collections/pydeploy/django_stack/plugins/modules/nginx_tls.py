#!/usr/bin/python
# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Every certificate nginx reads on a web host, in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
module: nginx_tls
author: pydeploy maintainers (@pydeploy)
version_added: 0.1.0
short_description: The certificates and keys of every nginx site on a web host, in one round trip
description:
  - Keeps a local CA of the web host (C(<tls_dir>/ca/ca.pem), key C(ca.key) 0600) and signs proper leaf
    certificates with it (Authority and Subject Key Identifiers, C(basicConstraints CA:FALSE), key usage
    C(digitalSignature), extended key usage C(serverAuth)), so that a user trusts one CA file for every site.
  - For each site, C(<tls_dir>/<site>/fullchain.pem) and C(privkey.pem) are what nginx reads.
    C(local_ca) writes a leaf of the local CA (re-issued when the names change, when it expires within
    O(leaf_renew_days) or when the CA changed). C(provided_content) writes the given PEM chain and key.
    C(provided_files) links the given files. C(acme) links certbot's live lineage when there is one, and
    otherwise serves a local CA leaf as a placeholder until the first issuance.
  - Provided certificates are checked before anything is written (PEM, the key belongs to the leaf, the
    leaf is in force).
  - Reports per site whether an ACME issuance is due (no lineage yet, or a lineage for other names), so
    the role asks the CA only then.
  - Files a site only links to (provided as paths) are fingerprinted in C(<tls_dir>/.fingerprints), so a
    certificate replaced behind the link also reports a change (and the role reloads nginx).
  - Runs on the host; needs the Python C(cryptography) package there (Debian's python3-cryptography).
options:
  tls_dir:
    description: Directory of the certificates nginx reads.
    type: path
    required: true
  ca_common_name:
    description: Common name of the local CA, when it is created.
    type: str
    required: true
  ca_days:
    description: Validity of the local CA in days.
    type: int
    default: 3650
  ca_renew_days:
    description: The CA is replaced (and every local CA leaf re-issued) when it expires within this many days.
    type: int
    default: 90
  leaf_days:
    description: Validity of a local CA leaf in days.
    type: int
    default: 365
  leaf_renew_days:
    description: A local CA leaf that expires within this many days is re-issued.
    type: int
    default: 30
  acme_live_dir:
    description: certbot's live directory (C(<acme_live_dir>/<site>/fullchain.pem)).
    type: path
    default: /etc/letsencrypt/live
  directories:
    description: Directories to create (mode 0755, root) as well, such as the ACME webroot's challenge directory.
    type: list
    elements: path
    default: []
  check_inputs_only:
    description:
      - Only check the provided certificates and keys (the files exist and hold PEM, and with C(cryptography) on the
        host, the key belongs to the leaf and the leaf is in force); write nothing. For validation before any change.
    type: bool
    default: false
  sites:
    description: The sites.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Site name (the directory under O(tls_dir)).
        type: str
        required: true
      source:
        description: Where the certificate comes from.
        type: str
        required: true
        choices: [local_ca, provided_content, provided_files, acme]
      names:
        description: Server names of the site (DNS names, C(.domain), C(*.domain) or IP addresses).
        type: list
        elements: str
        required: true
      certificate_content:
        description: C(provided_content), the PEM chain (leaf first).
        type: str
        default: ""
      key_content:
        description: C(provided_content), the PEM private key.
        type: str
        default: ""
      certificate_file:
        description: C(provided_files), the chain on the host.
        type: path
        default: ""
      key_file:
        description: C(provided_files), the key on the host.
        type: path
        default: ""
      upstream_ca_content:
        description: PEM of the CA(s) that sign the app servers' certificates (TLS to the upstream); written to C(upstream-ca.pem).
        type: str
        default: ""
      label:
        description:
          - The variable the site comes from as the user wrote it (C(nginx_sites[0])); messages then name the input as
            C(nginx_sites[0].certificate_file) instead of the site's name.
        type: str
        default: ""
"""

EXAMPLES = r"""
- name: Certificates of every site
  pydeploy.django_stack.nginx_tls:
    tls_dir: /etc/nginx/tls
    ca_common_name: pydeploy local CA web1
    sites:
      - {name: demo, source: local_ca, names: [localhost, 127.0.0.1]}
      - {name: shop, source: acme, names: [shop.example.com, www.shop.example.com]}
"""

RETURN = r"""
ca_pem:
  description: The local CA certificate (PEM) users trust for the C(local_ca) sites.
  returned: always
  type: str
sites:
  description: Per site name, C(source) (what nginx serves now, C(local_ca) for an ACME placeholder), C(acme_due),
    C(changed), C(serial), C(not_after), C(sans).
  returned: always
  type: dict
acme_due:
  description: Names of the ACME sites that need an issuance (no lineage, or one for other names).
  returned: always
  type: list
"""

import datetime
import hashlib
import ipaddress
import json
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - reported by main()
    HAS_CRYPTOGRAPHY = False

PEM_CERT_RE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class TLSError(Exception):
    """A problem with the user's input, reported with the site's name."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def not_after(cert):
    """Naive UTC expiry (cryptography 38 on Debian 12 has no not_valid_after_utc)."""
    value = getattr(cert, "not_valid_after_utc", None)
    return value.replace(tzinfo=None) if value is not None else cert.not_valid_after


def split_names(names):
    """Server names -> (DNS SANs, IP SANs). `.example.com` covers the domain and its subdomains."""
    dns, ips = [], []
    for name in names:
        stripped = name.strip("[]")
        try:
            ips.append(ipaddress.ip_address(stripped))
            continue
        except ValueError:
            pass
        if name.startswith("."):
            dns += [name[1:], "*" + name]
        elif name and name != "_":
            dns.append(name)
    return list(dict.fromkeys(dns)), list(dict.fromkeys(ips))


def san_strings(dns, ips):
    return sorted(["DNS:" + d for d in dns] + ["IP:" + str(i) for i in ips])


def cert_sans(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san_strings(ext.get_values_for_type(x509.DNSName), ext.get_values_for_type(x509.IPAddress))


def load_chain(data):
    """PEM bytes -> list of certificates (leaf first); TLSError when there is none or one is broken."""
    blocks = PEM_CERT_RE.findall(data)
    if not blocks:
        raise TLSError("holds no PEM certificate")
    try:
        return [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError as exc:
        raise TLSError(f"holds a certificate that does not parse ({exc})") from exc


def load_key(data):
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise TLSError("is not an unencrypted PEM private key") from exc


def public_bytes(key_or_cert):
    public = key_or_cert.public_key()
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def ski(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def aki(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def make_ca(key, common_name, days, now=None):
    now = now or utcnow()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def make_leaf(key, ca_cert, ca_key, site_name, names, days, now=None):
    """A server certificate for `names`, signed by the local CA, with the extensions strict
    validators require (Python 3.13's VERIFY_X509_STRICT, rustls)."""
    now = now or utcnow()
    dns, ips = split_names(names)
    common = next((d.lstrip("*.") for d in dns if 0 < len(d.lstrip("*.")) <= 64), site_name)
    alt = [x509.DNSName(d) for d in dns] + [x509.IPAddress(i) for i in ips]
    if not alt:
        alt = [x509.DNSName(site_name)]
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))


def leaf_reasons(cert, key, ca_cert, names, renew_days, now=None):
    """Why a local CA leaf must be re-issued ([] = it is fine)."""
    now = now or utcnow()
    reasons = []
    if cert_sans(cert) != san_strings(*split_names(names)) and split_names(names) != ([], []):
        reasons.append("names changed")
    if not_after(cert) - now < datetime.timedelta(days=renew_days):
        reasons.append("expires soon")
    if aki(cert) is None or aki(cert) != ski(ca_cert):
        reasons.append("not signed by the current local CA")
    if public_bytes(cert) != public_bytes(key):
        reasons.append("key mismatch")
    return reasons


def where(site, what):
    """How a message names a site's input: ``nginx_sites[0].certificate_file`` when the site carries the
    label of the variable it came from, else ``nginx site demo: certificate_file``."""
    if isinstance(site, dict):
        if site.get("label"):
            return f"{site['label']}.{what}:"
        site = site.get("name")
    return f"nginx site {site}: {what}"


def check_pair(site, chain, key, now=None, key_what="certificate_key_file", cert_what="certificate_file"):
    now = now or utcnow()
    leaf = chain[0]
    if public_bytes(leaf) != public_bytes(key):
        raise TLSError(f"{where(site, key_what)} the provided private key does not belong to the provided certificate "
                       f"({leaf.subject.rfc4514_string()})")
    if not_after(leaf) < now:
        raise TLSError(f"{where(site, cert_what)} the provided certificate ({leaf.subject.rfc4514_string()}) expired "
                       f"on {not_after(leaf).isoformat()}")


class Host:
    """File operations on the host (honouring check mode), recording what changed."""

    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.changed = []

    @staticmethod
    def read(path):
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def directory(self, path, mode):
        if os.path.isdir(path) and not os.path.islink(path):
            if (os.stat(path).st_mode & 0o7777) != mode:
                self.changed.append(path)
                if not self.check_mode:
                    os.chmod(path, mode)
            return
        self.changed.append(path)
        if not self.check_mode:
            os.makedirs(path, mode=mode, exist_ok=True)
            os.chmod(path, mode)

    def write(self, path, data, mode):
        """Atomic write of a regular file (a link in its place is replaced, never written through)."""
        if not os.path.islink(path) and self.read(path) == data and (os.stat(path).st_mode & 0o7777) == mode:
            return False
        self.changed.append(path)
        if not self.check_mode:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
            try:
                os.fchmod(fd, mode)
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        return True

    def link(self, path, target):
        if os.path.islink(path) and os.readlink(path) == target:
            return False
        self.changed.append(path)
        if not self.check_mode:
            tmp = f"{path}.tmp-link"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(target, tmp)
            os.replace(tmp, path)
        return True


class Manager:
    def __init__(self, params, host, now=None):
        self.p = params
        self.host = host
        self.now = now or utcnow()
        self.ca_cert = self.ca_key = None

    # The local CA -----------------------------------------------------------------------------
    def ensure_ca(self):
        ca_dir = os.path.join(self.p["tls_dir"], "ca")
        self.host.directory(ca_dir, 0o700)
        key_path, cert_path = os.path.join(ca_dir, "ca.key"), os.path.join(ca_dir, "ca.pem")
        key_data, cert_data = self.host.read(key_path), self.host.read(cert_path)
        key = cert = None
        try:
            key = load_key(key_data) if key_data else None
            cert = load_chain(cert_data)[0] if cert_data else None
        except TLSError:
            key = cert = None
        renew = datetime.timedelta(days=self.p["ca_renew_days"])
        if (key is None or cert is None or public_bytes(cert) != public_bytes(key)
                or not_after(cert) - self.now < renew or ski(cert) is None):
            key = new_key()
            cert = make_ca(key, self.p["ca_common_name"], self.p["ca_days"], self.now)
            self.host.write(key_path, key_pem(key), 0o600)
            self.host.write(cert_path, cert_pem(cert), 0o644)
        self.ca_cert, self.ca_key = cert, key
        # The CA certificate for users, readable beside the site directories.
        self.host.write(os.path.join(self.p["tls_dir"], "local-ca.pem"), cert_pem(cert), 0o644)

    # One site ---------------------------------------------------------------------------------
    def local_leaf(self, site, site_dir):
        key_path, cert_path = os.path.join(site_dir, "privkey.pem"), os.path.join(site_dir, "fullchain.pem")
        key = cert = None
        if not os.path.islink(key_path):
            try:
                data = self.host.read(key_path)
                key = load_key(data) if data else None
            except TLSError:
                key = None
        if key is not None and not os.path.islink(cert_path):
            try:
                data = self.host.read(cert_path)
                cert = load_chain(data)[0] if data else None
            except TLSError:
                cert = None
        if key is None:
            key = new_key()
            cert = None
        if cert is None or leaf_reasons(cert, key, self.ca_cert, site["names"], self.p["leaf_renew_days"], self.now):
            cert = make_leaf(key, self.ca_cert, self.ca_key, site["name"], site["names"], self.p["leaf_days"],
                             self.now)
        self.host.write(key_path, key_pem(key), 0o600)
        self.host.write(cert_path, cert_pem(cert), 0o644)
        return cert

    def site(self, site, fingerprints):
        name = site["name"]
        site_dir = os.path.join(self.p["tls_dir"], name)
        self.host.directory(site_dir, 0o750)
        source, acme_due, served = site["source"], False, None
        cert_path, key_path = os.path.join(site_dir, "fullchain.pem"), os.path.join(site_dir, "privkey.pem")
        if source == "provided_content":
            chain_data = site["certificate_content"].strip().encode() + b"\n"
            key_data = site["key_content"].strip().encode() + b"\n"
            chain = self._checked(site, "certificate_content", lambda: load_chain(chain_data))
            key = self._checked(site, "certificate_key_content", lambda: load_key(key_data))
            check_pair(site, chain, key, self.now, "certificate_key_content", "certificate_content")
            self.host.write(cert_path, chain_data, 0o644)
            self.host.write(key_path, key_data, 0o600)
            served = chain[0]
        elif source == "provided_files":
            chain = self._checked(site, "certificate_file", lambda: load_chain(self._must_read(site["certificate_file"])))
            key = self._checked(site, "certificate_key_file", lambda: load_key(self._must_read(site["key_file"])))
            check_pair(site, chain, key, self.now)
            self.host.link(cert_path, site["certificate_file"])
            self.host.link(key_path, site["key_file"])
            fingerprints[name] = hashlib.sha256(self._must_read(site["certificate_file"])
                                                + self._must_read(site["key_file"])).hexdigest()
            served = chain[0]
        elif source == "acme":
            lineage = os.path.join(self.p["acme_live_dir"], name)
            data = self.host.read(os.path.join(lineage, "fullchain.pem"))
            issued = None
            if data and os.path.exists(os.path.join(lineage, "privkey.pem")):
                try:
                    issued = load_chain(data)[0]
                except TLSError:
                    issued = None
            if issued is None:
                acme_due, source = True, "local_ca"
                served = self.local_leaf(site, site_dir)
            else:
                acme_due = (cert_sans(issued) != san_strings(*split_names(site["names"]))
                            or not_after(issued) < self.now)
                self.host.link(cert_path, os.path.join(lineage, "fullchain.pem"))
                self.host.link(key_path, os.path.join(lineage, "privkey.pem"))
                served = issued
        else:
            served = self.local_leaf(site, site_dir)
        upstream_ca = os.path.join(site_dir, "upstream-ca.pem")
        if site["upstream_ca_content"]:
            data = site["upstream_ca_content"].strip().encode() + b"\n"
            self._checked(site, "upstream_tls.ca_pem", lambda: load_chain(data))
            self.host.write(upstream_ca, data, 0o644)
        return {"source": source, "acme_due": acme_due, "serial": format(served.serial_number, "X"),
                "not_after": not_after(served).isoformat() + "Z", "sans": cert_sans(served)}

    @staticmethod
    def _must_read(path):
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise TLSError(f"cannot be read ({exc.strerror})") from exc

    @staticmethod
    def _checked(site, what, load):
        try:
            return load()
        except TLSError as exc:
            raise TLSError(f"{where(site, what)} {exc}") from exc

    def check_inputs(self):
        for site in self.p["sites"]:
            files = site["source"] == "provided_files"
            cert_what = "certificate_file" if files else "certificate_content"
            key_what = "certificate_key_file" if files else "certificate_key_content"
            if files:
                cert_data = self._checked(site, cert_what, lambda: self._must_read(site["certificate_file"]))
                key_data = self._checked(site, key_what, lambda: self._must_read(site["key_file"]))
            elif site["source"] == "provided_content":
                cert_data = site["certificate_content"].encode()
                key_data = site["key_content"].encode()
            else:
                continue
            if not HAS_CRYPTOGRAPHY:
                if not PEM_CERT_RE.search(cert_data):
                    raise TLSError(f"{where(site, cert_what)} holds no PEM certificate")
                if b"PRIVATE KEY-----" not in key_data:
                    raise TLSError(f"{where(site, key_what)} holds no PEM private key")
                continue
            chain = self._checked(site, cert_what, lambda: load_chain(cert_data))
            key = self._checked(site, key_what, lambda: load_key(key_data))
            check_pair(site, chain, key, self.now, key_what, cert_what)
        return {"changed": False, "ca_pem": "", "sites": {}, "acme_due": []}

    def run(self):
        if self.p.get("check_inputs_only"):
            return self.check_inputs()
        tls_dir = self.p["tls_dir"]
        self.host.directory(tls_dir, 0o750)
        for path in self.p["directories"]:
            self.host.directory(path, 0o755)
        self.ensure_ca()
        fingerprints, sites = {}, {}
        for site in self.p["sites"]:
            before = len(self.host.changed)
            sites[site["name"]] = self.site(site, fingerprints)
            sites[site["name"]]["changed"] = len(self.host.changed) > before
        # Files only linked to can change behind the link: their fingerprints are recorded.
        record = (json.dumps(fingerprints, sort_keys=True, indent=1) + "\n").encode()
        self.host.write(os.path.join(tls_dir, ".fingerprints"), record, 0o600)
        return {
            "changed": bool(self.host.changed),
            "changed_files": self.host.changed,
            "ca_pem": cert_pem(self.ca_cert).decode(),
            "sites": sites,
            "acme_due": [name for name, info in sites.items() if info["acme_due"]],
        }


def main():
    site_options = dict(
        name=dict(type="str", required=True),
        source=dict(type="str", required=True, choices=["local_ca", "provided_content", "provided_files", "acme"]),
        names=dict(type="list", elements="str", required=True),
        certificate_content=dict(type="str", default=""),
        key_content=dict(type="str", default="", no_log=True),
        certificate_file=dict(type="path", default=""),
        key_file=dict(type="path", default="", no_log=False),
        upstream_ca_content=dict(type="str", default=""),
        label=dict(type="str", default=""),
    )
    module = AnsibleModule(
        argument_spec=dict(
            tls_dir=dict(type="path", required=True),
            ca_common_name=dict(type="str", required=True),
            ca_days=dict(type="int", default=3650),
            ca_renew_days=dict(type="int", default=90),
            leaf_days=dict(type="int", default=365),
            leaf_renew_days=dict(type="int", default=30),
            acme_live_dir=dict(type="path", default="/etc/letsencrypt/live"),
            directories=dict(type="list", elements="path", default=[]),
            sites=dict(type="list", elements="dict", required=True, options=site_options),
            check_inputs_only=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY and not module.params["check_inputs_only"]:
        module.fail_json(msg=missing_required_lib("cryptography (python3-cryptography)"))
    old_umask = os.umask(0o077)
    try:
        result = Manager(module.params, Host(module.check_mode)).run()
    except TLSError as exc:
        module.fail_json(msg=str(exc))
    finally:
        os.umask(old_umask)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
