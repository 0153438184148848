"""Good inputs pass validation: the repo's inventories, every Molecule scenario's variables.

A run passes when it reaches the first task after the validation play (where the harness stops it)
without a failure.
"""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import pytest
import yaml

import harness
from conftest import Job

HERE = Path(__file__).resolve().parent
PENDING = yaml.safe_load((HERE / "cases" / "pending.yml").read_text()) or {}
RESTORE_VARS = {"postgres_restore_database": "demo_copy", "postgres_restore_from": "demo"}


def _mark(test_id):
    if test_id in PENDING:
        return [pytest.mark.xfail(strict=True, reason=f"pending: {PENDING[test_id]}")]
    return []


def _inventory_job(layout, playbook):
    def build(workdir):
        inventory = harness.build_inventory(workdir, layout)
        extra = None
        if playbook == "restore":  # the validation play looks for the dump on the db host (here: this machine)
            backups = Path(workdir) / "backups"
            backups.mkdir(parents=True, exist_ok=True)
            (backups / "demo-20260101T031500.000Z.pgc").write_bytes(b"PGDMP")
            extra = dict(RESTORE_VARS, postgres_backup_dir=str(backups))
        return harness.run_playbook(playbook, inventory, workdir, extra_vars=extra)

    return Job(f"good-{layout}-{playbook}", build)


INVENTORY_RUNS = [("prod", p) for p in harness.PLAYBOOKS] + [("single", p) for p in ("site", "deploy", "rollback", "restore")]


def _pem_pair(directory, name):
    """A self-signed certificate and key for the single scenario's content lookups (made now, never committed)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:  # structurally valid PEM is enough for the variable checks
        der = base64.b64encode(b"\x30\x03\x02\x01\x00").decode()
        (directory / f"{name}.crt").write_text(f"-----BEGIN CERTIFICATE-----\n{der}\n-----END CERTIFICATE-----\n")
        (directory / f"{name}.key").write_text(f"-----BEGIN PRIVATE KEY-----\n{der}\n-----END PRIVATE KEY-----\n")
        return
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))


def _scenario_job(scenario, playbook, extra_group_vars=None, suffix=""):
    def build(workdir):
        ephemeral = Path(workdir) / "ephemeral"
        for name in ("vault", "files"):
            _pem_pair(ephemeral / "tls", name)
        # the stack scenario trusts pebble's CA from the file its prepare step writes
        (ephemeral / "pebble-tls-ca.pem").write_bytes((ephemeral / "tls" / "files.crt").read_bytes())
        env = {"MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral), "MOLECULE_SCENARIO_NAME": scenario}
        hosts, group_vars = harness.molecule_scenario(scenario, env)
        group_vars.update(extra_group_vars or {})
        inventory = harness.build_inventory(workdir, hosts=hosts, base_group_vars=group_vars, vault=False)
        return harness.run_playbook(playbook, inventory, workdir, env=env)

    return Job(f"scenario-{scenario}{suffix}", build)


def _scenario_runs():
    out = []
    for molecule_yml in sorted((harness.ROOT / "molecule").glob("*/molecule.yml")):
        scenario = molecule_yml.parent.name
        converge = molecule_yml.parent / "converge.yml"
        out.append((f"{scenario}", _scenario_job(scenario, str(converge))))
        for index, (target, play_vars) in enumerate(harness.converge_variants(scenario), start=1):
            out.append((f"{scenario}-import{index}", _scenario_job(scenario, target, play_vars, f"-import{index}")))
    return out


def test_there_are_scenarios_and_inventories():
    assert len(_scenario_runs()) >= 5
    assert {layout for layout, _ in INVENTORY_RUNS} == {"prod", "single"}


@pytest.mark.parametrize("job", [pytest.param(_inventory_job(layout, playbook), id=f"inventory-{layout}-{playbook}",
                                              marks=_mark(f"inventory-{layout}-{playbook}"))
                                 for layout, playbook in INVENTORY_RUNS])
def test_repo_inventory_passes_validation(job, runs):
    run = runs.get(job)
    assert not run.failures and run.reached is not None, f"good input rejected or not validated:\n{run.summary()}"


@pytest.mark.parametrize("job", [pytest.param(job, id=f"scenario-{name}", marks=_mark(f"scenario-{name}"))
                                 for name, job in _scenario_runs()])
def test_molecule_scenario_variables_pass_validation(job, runs):
    run = runs.get(job)
    assert not run.failures and run.reached is not None, f"good input rejected or not validated:\n{run.summary()}"
