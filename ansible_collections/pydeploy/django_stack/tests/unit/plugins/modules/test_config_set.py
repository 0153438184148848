"""config_set's module side (plugins/modules/config_set.py): stage, validate once, go live atomically."""
import base64
import grp
import os
import pathlib
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

from ansible_collections.pydeploy.django_stack.plugins.modules.config_set import (
    ConfigSet, ConfigSetError, identity_env, parse_mode, resolve_identity, searchable_by)

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def run(argv, cwd, env):
    proc = subprocess.run(argv, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


class Recorder:
    """The real runner, remembering what it ran (and the staged tree it saw)."""

    def __init__(self):
        self.calls = []

    def __call__(self, argv, cwd, env):
        self.calls.append({"argv": argv, "cwd": cwd, "tree": sorted(
            os.path.relpath(os.path.join(d, f), cwd) for d, _dirs, files in os.walk(cwd) for f in files)})
        return run(argv, cwd, env)


def f(dest, content, **extra):
    return {"dest": str(dest), "content": content, "owner": USER, "group": GROUP, **extra}


@pytest.fixture(name="live")
def fixture_live(tmp_path):
    live = tmp_path / "etc"
    live.mkdir()
    return live


@pytest.fixture(name="root")
def fixture_root(tmp_path):
    return str(tmp_path / "stage")


def test_first_run_validates_then_writes_with_mode(live, root):
    runner = Recorder()
    result = ConfigSet(runner).apply(
        [f(live / "a.service", "[Service]\n", mode="0640"), f(live / "a.socket", "[Socket]\n", mode=0o600)],
        validate=["sh", "-c", 'test -f "$1/a.service" && test -f a.socket', "x", "%{stage}"], stage_root=root)
    assert result["changed"] and result["validated"] and result["validator_rc"] == 0
    assert result["changed_files"] == [str(live / "a.service"), str(live / "a.socket")]
    assert (live / "a.service").read_text() == "[Service]\n"
    assert stat.S_IMODE((live / "a.service").stat().st_mode) == 0o640
    assert stat.S_IMODE((live / "a.socket").stat().st_mode) == 0o600
    assert runner.calls[0]["tree"] == ["a.service", "a.socket"]
    assert os.listdir(root) == []  # the staging directory is gone
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o711  # searchable, not listable


def test_second_run_changes_nothing_and_skips_the_validator(live, root):
    files = [f(live / "a.conf", "x = 1\n")]
    ConfigSet(run).apply(files, validate=["true"], stage_root=root)
    runner = Recorder()
    result = ConfigSet(runner).apply(files, validate=["false"], stage_root=root)
    assert not result["changed"] and not result["validated"] and runner.calls == []


def test_validate_always_runs_even_without_change(live, root):
    files = [f(live / "a.conf", "x = 1\n")]
    ConfigSet(run).apply(files, stage_root=root)
    runner = Recorder()
    result = ConfigSet(runner).apply(files, validate=["true"], validate_always=True, stage_root=root)
    assert result["validated"] and not result["changed"] and len(runner.calls) == 1


def test_failed_validation_leaves_live_files_untouched(live, root):
    (live / "a.conf").write_text("old\n")
    with pytest.raises(ConfigSetError) as err:
        ConfigSet(run).apply([f(live / "a.conf", "new\n"), f(live / "b.conf", "new\n")],
                             validate=["sh", "-c", "echo bad directive >&2; exit 3"], stage_root=root)
    assert "nothing went live" in err.value.msg and "bad directive" in err.value.msg
    assert err.value.extra["validator_rc"] == 3 and "bad directive" in err.value.extra["validator_stderr"]
    assert (live / "a.conf").read_text() == "old\n" and not (live / "b.conf").exists()
    assert os.listdir(root) == []


def test_fail_on_pattern_fails_a_zero_exit(live, root):
    with pytest.raises(ConfigSetError) as err:
        ConfigSet(run).apply([f(live / "a.service", "x\n")], validate=["sh", "-c", "echo 'Unknown key name'"],
                             validate_fail_on="(?i)unknown key", stage_root=root)
    assert "matched" in err.value.msg
    assert not (live / "a.service").exists()


def test_per_file_validator_gets_the_staged_path_and_runs_only_for_changed_files(live, root):
    (live / "same.conf").write_text("same\n")
    runner = Recorder()
    result = ConfigSet(runner).apply(
        [f(live / "same.conf", "same\n", mode="0644", validate="grep -q same %s"),
         f(live / "new.conf", "fresh\n", validate=["grep", "-q", "fresh", "%s"])], stage_root=root)
    assert [c["argv"][:3] for c in runner.calls] == [["grep", "-q", "fresh"]]
    assert runner.calls[0]["argv"][3].endswith("/new.conf") and runner.calls[0]["argv"][3].startswith(root)
    assert result["file_validators"][0]["dest"] == str(live / "new.conf")


def test_attribute_only_change_is_fixed_without_validation(live, root):
    (live / "a.conf").write_text("x\n")
    os.chmod(live / "a.conf", 0o666)
    runner = Recorder()
    result = ConfigSet(runner).apply([f(live / "a.conf", "x\n", mode="0640")], validate=["false"], stage_root=root)
    assert result["changed_files"] == [str(live / "a.conf")] and result["content_changed"] == []
    assert runner.calls == [] and stat.S_IMODE((live / "a.conf").stat().st_mode) == 0o640


def test_stage_as_and_stage_with_build_the_layout_the_validator_expects(live, root, tmp_path):
    context = tmp_path / "mime.types"
    context.write_text("types {}\n")
    (live / "sites").mkdir()
    runner = Recorder()
    ConfigSet(runner).apply(
        [f(live / "main.conf", "include sites/*.conf;\n"), f(live / "sites/app.conf", "server {}\n", stage_as="sites/app.conf")],
        stage_with=[str(context), {"src": str(tmp_path / "missing"), "required": False},
                    {"src": str(context), "stage_as": "conf.d/mime.types"}],
        validate=["true"], stage_root=root)
    assert runner.calls[0]["tree"] == ["conf.d/mime.types", "main.conf", "mime.types", "sites/app.conf"]


def test_stage_with_missing_required_file_fails_before_any_change(live, root, tmp_path):
    with pytest.raises(ConfigSetError):
        ConfigSet(run).apply([f(live / "a.conf", "x\n")], stage_with=[str(tmp_path / "nope")], validate=["true"],
                             stage_root=root)
    assert not (live / "a.conf").exists()


def test_purge_removes_unmanaged_files_after_validation_without_them(live, root):
    sites = live / "sites"
    sites.mkdir()
    (sites / "old.conf").write_text("server {}\n")
    (sites / "keep.txt").write_text("not managed\n")
    runner = Recorder()
    result = ConfigSet(runner).apply([f(sites / "app.conf", "server {}\n", stage_as="sites/app.conf")],
                                     purge=[{"path": str(sites), "patterns": ["*.conf"]}], validate=["true"],
                                     stage_root=root)
    assert result["removed"] == [str(sites / "old.conf")]
    assert runner.calls[0]["tree"] == ["sites/app.conf"]
    assert sorted(os.listdir(sites)) == ["app.conf", "keep.txt"]


def test_purge_alone_triggers_validation(live, root):
    sites = live / "sites"
    sites.mkdir()
    (sites / "app.conf").write_text("a\n")
    files = [f(sites / "app.conf", "a\n", stage_as="sites/app.conf")]
    (sites / "stale.conf").write_text("b\n")
    runner = Recorder()
    result = ConfigSet(runner).apply(files, purge=[{"path": str(sites)}], validate=["true"], stage_root=root)
    assert result["validated"] and result["removed"] == [str(sites / "stale.conf")] and len(runner.calls) == 1


def test_state_absent_removes_and_validates(live, root):
    (live / "a.socket").write_text("[Socket]\n")
    runner = Recorder()
    result = ConfigSet(runner).apply([f(live / "a.service", "[Service]\n"),
                                      {"dest": str(live / "a.socket"), "state": "absent"}],
                                     validate=["true"], stage_root=root)
    assert result["removed"] == [str(live / "a.socket")] and not (live / "a.socket").exists()
    assert runner.calls[0]["tree"] == ["a.service"]


def test_directories_created_only_after_validation(live, root):
    target = live / "gunicorn"
    with pytest.raises(ConfigSetError):
        ConfigSet(run).apply([f(target / "a.conf", "x\n")],
                             directories=[{"path": str(target), "mode": "0750", "owner": USER, "group": GROUP}],
                             validate=["false"], stage_root=root)
    assert not target.exists()
    result = ConfigSet(run).apply([f(target / "a.conf", "x\n")],
                                  directories=[{"path": str(target), "mode": "0750", "owner": USER, "group": GROUP}],
                                  validate=["true"], stage_root=root)
    assert result["changed_directories"] == [str(target)] and stat.S_IMODE(target.stat().st_mode) == 0o750


def test_missing_parent_directory_is_refused_up_front(live, root):
    with pytest.raises(ConfigSetError) as err:
        ConfigSet(run).apply([f(live / "nope/a.conf", "x\n")], stage_root=root)
    assert "does not exist" in err.value.msg


def test_check_mode_reports_and_changes_nothing(live, root):
    (live / "a.conf").write_text("old\n")
    runner = Recorder()
    result = ConfigSet(runner, check_mode=True, want_diff=True).apply(
        [f(live / "a.conf", "new\n")], validate=["true"], stage_root=root)
    assert result["changed"] and result["changed_files"] == [str(live / "a.conf")]
    assert result["diff"][0]["before"] == "old\n" and result["diff"][0]["after"] == "new\n"
    assert runner.calls == [] and (live / "a.conf").read_text() == "old\n"


def test_atomic_write_replaces_a_symlink_and_leaves_no_temp_files(live, root, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("linked\n")
    (live / "a.conf").symlink_to(target)
    ConfigSet(run).apply([f(live / "a.conf", "real\n")], stage_root=root)
    assert not (live / "a.conf").is_symlink() and (live / "a.conf").read_text() == "real\n"
    assert target.read_text() == "linked\n"
    assert os.listdir(live) == ["a.conf"]


def test_binary_content(live, root):
    data = b"\x00\xffbinary"
    ConfigSet(run).apply([f(live / "b.bin", base64.b64encode(data).decode(), content_encoding="base64")],
                         stage_root=root)
    assert (live / "b.bin").read_bytes() == data


@pytest.mark.parametrize("files, message", [
    ([{"dest": "relative.conf", "content": ""}], "absolute"),
    ([{"dest": "/tmp/x.conf", "template": "x.j2"}], "action plugin"),
    ([{"dest": "/tmp/x.conf"}], "needs template, src or content"),
    ([{"dest": "/tmp/a/x.conf", "content": ""}, {"dest": "/tmp/b/x.conf", "content": ""}], "staged as x.conf"),
    ([{"dest": "/tmp/x.conf", "content": "", "stage_as": "../escape"}], "relative path inside"),
    ([{"dest": "/tmp/x.conf", "content": "", "owner": "no-such-user-pydeploy"}], "does not exist"),
    ([{"dest": "/tmp/x.conf", "content": "", "mode": "u=rw"}], "octal mode"),
])
def test_bad_sets_are_refused(files, message, root):
    with pytest.raises(ConfigSetError) as err:
        ConfigSet(run).apply(files, stage_root=root)
    assert message in err.value.msg


@pytest.mark.parametrize("value, mode", [("0660", 0o660), ("660", 0o660), ("0o640", 0o640), (432, 0o660),
                                         (0o2775, 0o2775)])
def test_modes(value, mode):
    assert parse_mode(value) == mode


@pytest.mark.parametrize("value", [True, "rw-r--r--", "0999", 0o17777, "12345", "0644\n", " 0644"])
def test_bad_modes(value):
    with pytest.raises(ConfigSetError):
        parse_mode(value)


as_root = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges (and chown) needs root")


# validate_user: the validators run as an unprivileged user (a release's interpreter imports
# third-party code): identity, environment, the staging directory it may read, the real drop.

def test_identity_of_a_user_name_and_its_groups():
    nobody = pwd.getpwnam("nobody")
    identity = resolve_identity("nobody")
    assert identity == {"name": "nobody", "uid": nobody.pw_uid, "gid": nobody.pw_gid,
                        "groups": sorted(set(os.getgrouplist("nobody", nobody.pw_gid))), "home": nobody.pw_dir}
    assert 0 not in identity["groups"] or nobody.pw_gid == 0


def test_identity_by_number_and_with_another_group():
    nobody = pwd.getpwnam("nobody")
    other = grp.getgrgid(os.getgid()).gr_name  # any existing group
    identity = resolve_identity(str(nobody.pw_uid), other)
    assert identity["name"] == "nobody" and identity["uid"] == nobody.pw_uid
    assert identity["gid"] == os.getgid() and os.getgid() in identity["groups"]
    assert resolve_identity("nobody", str(nobody.pw_gid))["gid"] == nobody.pw_gid


def test_identity_of_a_number_without_passwd_entry_needs_a_group():
    free = next(uid for uid in range(64000, 65000) if not _has_uid(uid))
    with pytest.raises(ConfigSetError, match="set validate_group"):
        resolve_identity(str(free))
    identity = resolve_identity(str(free), "12345")
    assert identity == {"name": str(free), "uid": free, "gid": 12345, "groups": [12345], "home": "/"}


def _has_uid(uid):
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


@pytest.mark.parametrize("user, group, message", [
    ("no-such-user-pydeploy", None, "validate_user 'no-such-user-pydeploy' does not exist"),
    ("nobody", "no-such-group-pydeploy", "validate_group 'no-such-group-pydeploy' does not exist"),
    ("root", None, "validate_user is root"),
    ("0", None, "validate_user is root"),
    ("", None, "empty"),
])
def test_bad_identities(user, group, message):
    with pytest.raises(ConfigSetError) as err:
        resolve_identity(user, group)
    assert message in err.value.msg


def test_validate_group_alone_is_refused(live, root):
    with pytest.raises(ConfigSetError, match="validate_group needs validate_user"):
        ConfigSet(run).apply([f(live / "a.conf", "x\n")], validate=["true"], validate_group="nogroup", stage_root=root)


@pytest.fixture(name="open_dir")
def fixture_open_dir():
    """A directory every user can search (pytest's tmp_path sits under a 0700 one)."""
    path = tempfile.mkdtemp(prefix="pydeploy-config-set-", dir="/tmp")
    os.chmod(path, 0o711)
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(name="open_root")
def fixture_open_root(open_dir):
    return str(open_dir / "stage")


def test_environment_of_a_validator_run_as_a_user():
    identity = {"name": "app", "uid": 1000, "gid": 1000, "groups": [1000], "home": "/srv/app"}
    base = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "SSH_AUTH_SOCK": "/tmp/agent", "HOME": "/root",
            "ANSIBLE_SECRET": "x", "SUDO_USER": "admin"}
    assert identity_env(identity, {"PYDEPLOY_STAGE": "/run/s"}, base) == {
        "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/srv/app", "USER": "app", "LOGNAME": "app",
        "PYDEPLOY_STAGE": "/run/s"}
    assert identity_env(identity, {}, {})["PATH"].startswith("/usr/local/sbin:")


def test_the_identity_and_stage_reach_the_runner_in_unit(live, open_root):
    """Without touching privileges: the module's run_as gets the identity, the other runner nothing."""
    calls = []

    def fake_run_as(argv, cwd, env, identity):
        calls.append((argv, cwd, env, identity))
        return 0, b"ok", b""

    def no_root_run(argv, cwd, env):
        raise AssertionError(f"ran as root: {argv}")

    result = ConfigSet(no_root_run, run_as=fake_run_as).apply(
        [f(live / "a.conf", "x\n", validate=["check-file", "%s"])], validate=["check-set", "%{stage}"],
        validate_user="nobody", stage_root=open_root)
    assert result["validated"] and [c[0][0] for c in calls] == ["check-file", "check-set"]
    for argv, cwd, env, identity in calls:
        assert identity["name"] == "nobody" and env["USER"] == "nobody" and env["PYDEPLOY_STAGE"] == cwd
        assert argv[-1].startswith(cwd)


def test_unreachable_staging_root_is_refused_before_any_validator(live, tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)
    os.chmod(hidden, 0o700)
    runner = Recorder()
    with pytest.raises(ConfigSetError) as err:
        ConfigSet(runner, run_as=lambda *a: (0, "", "")).apply(
            [f(live / "a.conf", "x\n")], validate=["true"], validate_user="nobody",
            stage_root=str(hidden / "stage"))
    assert "cannot reach the staging root" in err.value.msg and str(hidden) in err.value.msg
    assert not (live / "a.conf").exists()


@as_root
def test_searchable_by_checks_owner_group_and_others(open_dir):
    nobody = resolve_identity("nobody")
    top = open_dir / "top"
    top.mkdir()
    for mode, owner_gid, expected in ((0o711, None, None), (0o710, None, "top"), (0o710, nobody["gid"], None),
                                      (0o700, nobody["gid"], "top")):
        os.chmod(top, mode)
        if owner_gid is not None:
            os.chown(top, -1, owner_gid)
        blocked = searchable_by(str(top), nobody)
        assert (blocked and os.path.basename(blocked)) == expected or blocked is None and expected is None, mode


@as_root
def test_validator_runs_as_the_user_with_its_groups_only(live, open_root):
    nobody = resolve_identity("nobody")
    result = ConfigSet(run).apply(
        [f(live / "a.conf", "x\n", validate=["id", "-u"])],
        validate=["sh", "-c", 'echo "$(id -u) $(id -g) $(id -G) $HOME $USER"; test -z "${SUDO_USER-}"'],
        validate_user="nobody", stage_root=open_root)
    assert result["validated"]
    assert result["file_validators"][0]["stdout"].strip() == str(nobody["uid"])
    uid, gid, *rest = result["validator_stdout"].split()
    assert (int(uid), int(gid)) == (nobody["uid"], nobody["gid"])
    assert sorted(int(g) for g in rest[:-2]) == nobody["groups"]  # root's group 0 is not kept
    assert rest[-2:] == [nobody["home"], "nobody"]


@as_root
def test_validator_reads_what_its_group_may_read_and_nothing_else(live, open_root):
    nobody = resolve_identity("nobody")
    group = grp.getgrgid(nobody["gid"]).gr_name
    readable = {"dest": str(live / "app.conf"), "content": "ok\n", "owner": "root", "group": group, "mode": "0640",
                "stage_as": "sub/app.conf"}
    result = ConfigSet(run).apply([readable], validate=["cat", "%{stage}/sub/app.conf"], validate_user="nobody",
                                  stage_root=open_root)
    assert result["validated"] and result["validator_stdout"] == "ok\n"
    assert stat.S_IMODE(os.stat(open_root).st_mode) == 0o711

    secret = {"dest": str(live / "secret.conf"), "content": "s3cret\n", "owner": "root", "group": "root", "mode": "0600"}
    with pytest.raises(ConfigSetError) as err:
        ConfigSet(run).apply([secret], validate=["cat", "%{stage}/secret.conf"], validate_user="nobody",
                             stage_root=open_root)
    assert "Permission denied" in err.value.msg and "as nobody" in err.value.msg
    assert not (live / "secret.conf").exists()

    # Read, not write: the validator cannot change what it checks, nor leave files in the stage.
    with pytest.raises(ConfigSetError):
        ConfigSet(run).apply([dict(readable, content="changed\n")], validate=["sh", "-c", "echo x > planted"],
                             validate_user="nobody", stage_root=open_root)
    assert (live / "app.conf").read_text() == "ok\n" and os.listdir(open_root) == []


@as_root
def test_validator_missing_executable_fails_the_validation(live, open_root):
    with pytest.raises(ConfigSetError, match="nothing went live") as err:
        ConfigSet(run).apply([f(live / "a.conf", "x\n")], validate=["/nonexistent/python", "--check"],
                             validate_user="nobody", stage_root=open_root)
    assert err.value.extra["validator_rc"] == 127 and not (live / "a.conf").exists()
