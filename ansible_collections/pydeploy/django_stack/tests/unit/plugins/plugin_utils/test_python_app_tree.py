"""The files of a path release: exclusions (VCS, .gitignore, user patterns), digest, tarball."""
import os
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[8]))

from ansible_collections.pydeploy.django_stack.plugins.plugin_utils.python_app_tree import (  # noqa: E402
    list_tree, pack, parse_rules, ignored, tree_digest)


def make(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_vcs_bytecode_gitignore_and_user_patterns_are_left_out(tmp_path):
    make(tmp_path, {".git/config": "", ".hg/x": "", "app/__pycache__/a.pyc": "", "app/a.py": "", "app/b.pyc": "",
                    ".gitignore": "*.log\n/media/\n.env\n!keep.log\nbuild/\n", "debug.log": "", "keep.log": "",
                    "media/upload.png": "", "app/media/icon.png": "", ".env": "SECRET=1", "sub/.gitignore": "local_*\n",
                    "sub/local_settings.py": "", "sub/settings.py": "", "build/x.py": "", "docs/build": "",
                    ".envs/.production/.django": "KEY=1", "notes/todo.txt": ""})
    files = list_tree(tmp_path, exclude=["notes/"])
    assert files == [".envs/.production/.django", ".gitignore", "app/a.py", "app/media/icon.png", "docs/build",
                     "keep.log", "sub/.gitignore", "sub/settings.py"]
    assert ".env" in list_tree(tmp_path, gitignore=False)


def test_gitignore_patterns():
    rules = parse_rules("**/cache/\nfoo/**/bar\n*.sqlite3\ndoc/*.txt\n\\#hash\n", base="")
    assert ignored("a/b/cache", True, rules) and not ignored("a/b/cache", False, rules)
    assert ignored("foo/bar", False, rules) and ignored("foo/x/y/bar", False, rules)
    assert ignored("deep/db.sqlite3", False, rules)
    assert ignored("doc/a.txt", False, rules) and not ignored("doc/sub/a.txt", False, rules)
    assert ignored("#hash", False, rules)
    nested = parse_rules("*.tmp\n", base="pkg")
    assert ignored("pkg/a/b.tmp", False, nested) and not ignored("other/b.tmp", False, nested)


def test_digest_follows_content_mode_and_extra(tmp_path):
    make(tmp_path, {"a.py": "print(1)\n", "b/c.py": ""})
    files = list_tree(tmp_path)
    first = tree_digest(tmp_path, files)
    assert first == tree_digest(tmp_path, files)
    (tmp_path / "a.py").write_text("print(2)\n")
    second = tree_digest(tmp_path, files)
    assert second != first
    os.chmod(tmp_path / "a.py", 0o755)
    assert tree_digest(tmp_path, files) != second
    assert tree_digest(tmp_path, files, [("salt", "x")]) != tree_digest(tmp_path, files, [("salt", "y")])


def test_pack_normalizes_owner_and_modes_and_lists_directories(tmp_path):
    src = tmp_path / "src"
    make(src, {"pkg/mod.py": "", "run.sh": ""})
    os.chmod(src / "run.sh", 0o775)
    os.chmod(src / "pkg/mod.py", 0o664)
    extra = tmp_path / "extra"
    make(extra, {"settings.py": ""})
    dest = str(tmp_path / "release.tar.gz")
    pack(src, list_tree(src), dest, [("pydeploy_django", str(extra), ["settings.py"])])
    with tarfile.open(dest) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert set(members) == {"pkg", "pkg/mod.py", "run.sh", "pydeploy_django", "pydeploy_django/settings.py"}
    assert members["pkg"].isdir() and members["pkg/mod.py"].mode == 0o644 and members["run.sh"].mode == 0o755
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())


def test_concurrent_packs_of_one_release_each_give_a_whole_archive(tmp_path):
    """The app hosts of a play pack the same release to the same path at the same time (one controller
    worker per host): each writes its own temporary file and moves it into place whole, so no pack fails
    and the archive any reader opens is complete."""
    import threading

    src = tmp_path / "src"
    make(src, {f"pkg/mod{i}.py": "x = 1\n" * 400 for i in range(150)})
    paths = list_tree(src)
    dest = str(tmp_path / "release.tar.gz")
    start, errors = threading.Barrier(4), []

    def worker():
        start.wait()
        try:
            for _attempt in range(3):
                pack(src, paths, dest)
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with tarfile.open(dest) as archive:
        assert len([m for m in archive.getmembers() if m.isfile()]) == 150
    assert sorted(os.listdir(tmp_path)) == ["release.tar.gz", "src"]  # no temporary file left behind
    assert os.stat(dest).st_mode & 0o077 == 0  # the source may hold secrets: the controller user's only
