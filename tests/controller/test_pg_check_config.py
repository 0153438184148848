"""The postgres role's staged-configuration checker (roles/postgres/files/pg_check_config.py),
driven with a recorded runner: what it copies, what it runs, how it reads PostgreSQL's verdict.
Its run against a real server is tested by molecule/single (a rejected file never goes live)."""
import importlib.util
import os
import pathlib

import pytest

SCRIPT = (pathlib.Path(__file__).resolve().parents[2]
          / "ansible_collections/pydeploy/django_stack/roles/postgres/files/pg_check_config.py")
spec = importlib.util.spec_from_file_location("pg_check_config", SCRIPT)
pgc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pgc)

BIN = "/usr/lib/postgresql/15/bin"
SINGLE_USER_OUTPUT = """
PostgreSQL stand-alone backend 15.20 (Debian 15.20-0+deb12u1)
backend> 105\tinvalid authentication method "trust2"
106\tinvalid CIDR mask in address "10.0.0.0/99"
backend> """


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(name="dirs")
def fixture_dirs(tmp_path):
    live, stage, check = tmp_path / "live", tmp_path / "stage", tmp_path / "check"
    write(live / "postgresql.conf", "include_dir = 'conf.d'\n")
    write(live / "pg_hba.conf", "local all postgres peer\n")
    write(live / "pg_ident.conf", "")
    write(live / "start.conf", "auto\n")
    write(live / "environment", "")
    write(live / "server.key", "PRIVATE")
    write(live / "conf.d" / "10-other.conf", "work_mem = '8MB'\n")
    write(live / "conf.d" / "50-pydeploy.conf", "old\n")
    write(live / "conf.d" / "README", "not a drop-in\n")
    write(stage / "conf.d" / "50-pydeploy.conf", "new\n")
    write(stage / "pg_hba.conf", "local all postgres peer\nlocal all demo scram-sha-256\n")
    check.mkdir()
    return live, stage, check


def test_check_directory_is_live_configuration_with_the_staged_files_over_it(dirs):
    live, stage, check = dirs
    pgc.assemble(str(live), str(stage), str(check), os.getuid(), os.getgid())
    got = sorted(str(p.relative_to(check)) for p in check.rglob("*") if p.is_file())
    assert got == ["conf.d/10-other.conf", "conf.d/50-pydeploy.conf", "pg_hba.conf", "pg_ident.conf",
                   "postgresql.conf", "start.conf"]
    assert (check / "conf.d" / "50-pydeploy.conf").read_text() == "new\n"
    assert (check / "conf.d" / "10-other.conf").read_text() == "work_mem = '8MB'\n"
    assert "demo" in (check / "pg_hba.conf").read_text()
    # Never the private key, and nothing readable by others.
    assert not (check / "server.key").exists()
    assert all((p.stat().st_mode & 0o077) == 0 for p in check.rglob("*") if p.is_file())


def test_commands_point_every_file_at_the_check_directory():
    assert pgc.config_argv(BIN, "/tmp/c") == [
        f"{BIN}/postgres", "-D", "/tmp/c", "-C", "data_directory",
        "-c", "hba_file=/tmp/c/pg_hba.conf", "-c", "ident_file=/tmp/c/pg_ident.conf"]
    argv = pgc.single_user_argv(BIN, "/tmp/c", "/var/lib/x/15")
    assert argv[:6] == [f"{BIN}/postgres", "--single", "-D", "/tmp/c", "-c", "data_directory=/var/lib/x/15"]
    assert "hba_file=/tmp/c/pg_hba.conf" in argv and argv[-1] == "postgres"
    assert "shared_buffers=8MB" in argv
    assert pgc.initdb_argv(BIN, "/s")[:3] == [f"{BIN}/initdb", "-D", "/s"]


def test_hba_rows_are_read_from_the_single_user_output():
    assert pgc.hba_errors(SINGLE_USER_OUTPUT) == [
        (105, 'invalid authentication method "trust2"'), (106, 'invalid CIDR mask in address "10.0.0.0/99"')]
    assert pgc.hba_errors("PostgreSQL stand-alone backend 15\nbackend> ") == []


class Recorder:
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv, input_text):
        self.calls.append((argv, input_text))
        for key, answer in self.answers.items():
            if key in argv:
                return answer
        return 0, "", ""


def test_accepted_configuration_runs_both_checks_and_makes_the_scratch_cluster_once(tmp_path):
    scratch = tmp_path / "scratch"
    run = Recorder({"-C": (0, "/var/lib/postgresql/15/main\n", ""), "--single": (0, "backend> ", "")})
    checker = pgc.Checker(run, BIN, str(scratch))
    checker.check("/tmp/c")
    assert [argv[0].rsplit("/", 1)[1] for argv, _ in run.calls] == ["postgres", "initdb", "postgres"]
    assert run.calls[2][1] == pgc.HBA_QUERY
    (scratch).mkdir()
    (scratch / "PG_VERSION").write_text("15\n")
    run.calls.clear()
    checker.check("/tmp/c")
    assert [argv[1] for argv, _ in run.calls] == ["-D", "--single"]


def test_rejected_settings_stop_before_the_hba_check(tmp_path):
    err = ('2030-01-01 FATAL:  invalid value for parameter "shared_buffers": "1XB"\n'
           'HINT:  Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".\n')
    run = Recorder({"-C": (1, "", err)})
    with pytest.raises(pgc.Rejected) as rejected:
        pgc.Checker(run, BIN, str(tmp_path / "s")).check("/tmp/c")
    assert str(rejected.value).startswith("PostgreSQL rejected the new configuration (postgres -C)")
    assert 'invalid value for parameter "shared_buffers"' in str(rejected.value)
    assert len(run.calls) == 1


def test_rejected_hba_lines_are_reported_with_their_numbers(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "PG_VERSION").write_text("15\n")
    run = Recorder({"--single": (0, SINGLE_USER_OUTPUT, "LOG: checkpoint starting")})
    with pytest.raises(pgc.Rejected) as rejected:
        pgc.Checker(run, BIN, str(tmp_path / "s")).check("/tmp/c")
    assert str(rejected.value) == ('PostgreSQL rejected the new configuration (pg_hba.conf): pg_hba.conf line 105: '
                                   'invalid authentication method "trust2"; pg_hba.conf line 106: invalid CIDR mask '
                                   'in address "10.0.0.0/99"')


def test_a_failing_single_user_start_is_a_rejection(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "PG_VERSION").write_text("15\n")
    err = 'FATAL:  could not access file "nonexistent_lib": No such file or directory\n'
    run = Recorder({"--single": (1, "", err)})
    with pytest.raises(pgc.Rejected, match="postgres --single.*nonexistent_lib"):
        pgc.Checker(run, BIN, str(tmp_path / "s")).check("/tmp/c")
