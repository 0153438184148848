# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""The files of a source directory that make a release (controller side).

Excluded: version control metadata, byte code, whatever the tree's .gitignore files (and
.git/info/exclude) ignore, and the user's own patterns (gitignore syntax). The digest covers
every path, its executable bit and its content, so that the same tree always gives the same
release id and any change gives another one.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
import tempfile

VCS_DIRS = {".git", ".hg", ".svn", ".bzr", "_darcs", "CVS"}
ALWAYS_EXCLUDED = ["__pycache__/", "*.py[cod]", ".DS_Store"]


def _glob_to_regex(glob):
    """gitignore glob (no slashes handled here beyond '**') -> regex source."""
    out, i = [], 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = glob.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = glob[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif char == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


class Rule:
    """One gitignore line, relative to the directory of its file ('' = the tree's root)."""

    def __init__(self, line, base=""):
        self.negate = line.startswith("!")
        if self.negate:
            line = line[1:]
        self.dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        source = _glob_to_regex(line)
        prefix = re.escape(base + "/") if base else ""
        if anchored:
            self.regex = re.compile("^" + prefix + source + "$")
        else:
            self.regex = re.compile("^" + prefix + "(?:.*/)?" + source + "$")

    def matches(self, path, is_dir):
        if self.dir_only and not is_dir:
            return False
        return bool(self.regex.match(path))


def parse_rules(text, base=""):
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if raw.endswith("\\ "):
            line = raw[:-2] + " "
        if not line or line.startswith("#"):
            continue
        if line.startswith("\\#") or line.startswith("\\!"):
            line = line[1:]
        rules.append(Rule(line, base))
    return rules


def ignored(path, is_dir, rules):
    """The last rule that matches decides (gitignore semantics)."""
    result = False
    for rule in rules:
        if rule.matches(path, is_dir):
            result = not rule.negate
    return result


def list_tree(root, exclude=(), gitignore=True):
    """Sorted relative paths (files and symlinks) of the release, with the exclusions applied."""
    root = os.path.abspath(root)
    rules = parse_rules("\n".join(ALWAYS_EXCLUDED))
    if gitignore:
        info = os.path.join(root, ".git", "info", "exclude")
        if os.path.isfile(info):
            with open(info, encoding="utf-8", errors="replace") as handle:
                rules += parse_rules(handle.read())
    user_rules = parse_rules("\n".join(exclude))
    found = []
    scoped = {"": rules}

    for directory, dirs, names in os.walk(root, followlinks=False):
        relative = os.path.relpath(directory, root)
        relative = "" if relative == "." else relative.replace(os.sep, "/")
        own = list(scoped.pop(relative, scoped.get(relative, [])))
        if gitignore and ".gitignore" in names:
            with open(os.path.join(directory, ".gitignore"), encoding="utf-8", errors="replace") as handle:
                own += parse_rules(handle.read(), relative)
        active = own + user_rules
        kept_dirs = []
        for name in sorted(dirs):
            path = f"{relative}/{name}" if relative else name
            full = os.path.join(directory, name)
            if name in VCS_DIRS or ignored(path, True, active):
                continue
            if os.path.islink(full):
                found.append(path)  # a symlink to a directory is kept as a link
                continue
            kept_dirs.append(name)
            scoped[path] = own
        dirs[:] = kept_dirs
        for name in names:
            path = f"{relative}/{name}" if relative else name
            if not ignored(path, False, active):
                found.append(path)
    return sorted(found)


def tree_digest(root, paths, extra=()):
    """sha256 over every path, its type/executable bit and content; `extra` is (name, text) pairs."""
    sha = hashlib.sha256()
    for path in paths:
        full = os.path.join(root, path)
        info = os.lstat(full)
        sha.update(path.encode("utf-8", "surrogateescape") + b"\0")
        if stat.S_ISLNK(info.st_mode):
            sha.update(b"L" + os.readlink(full).encode("utf-8", "surrogateescape"))
        else:
            sha.update(b"X" if info.st_mode & 0o111 else b"F")
            with open(full, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    sha.update(chunk)
        sha.update(b"\0")
    for name, text in extra:
        sha.update(name.encode() + b"\0" + text.encode() + b"\0")
    return sha.hexdigest()


def pack(root, paths, dest, extra_trees=()):
    """A gzip tarball of the paths (owner root, modes 0644/0755: the role sets the final ones).

    extra_trees: (prefix in the archive, directory, paths) added as well (the role's own files)."""
    def add(archive, full, arcname):
        info = archive.gettarinfo(full, arcname)
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if info.isreg():
            info.mode = 0o755 if info.mode & 0o111 else 0o644
            with open(full, "rb") as handle:
                archive.addfile(info, handle)
        else:
            info.mode = 0o755 if info.isdir() else info.mode
            archive.addfile(info)

    def add_dir(archive, arcname):
        info = tarfile.TarInfo(arcname)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.uname = info.gname = "root"
        archive.addfile(info)

    entries = [(os.path.join(root, path), path) for path in paths]
    for prefix, directory, names in extra_trees:
        entries += [(os.path.join(directory, name), f"{prefix}/{name}" if prefix else name) for name in names]
    # Every directory is in the archive itself, so that unpacking gives all of them the same owner.
    directories = sorted({"/".join(arc.split("/")[:i]) for _full, arc in entries for i in range(1, arc.count("/") + 1)})
    # The app hosts of a play pack the same release to the same path at once (a controller worker per
    # host): each writes a temporary file of its own (mode 0600: the source may hold secrets) and moves
    # it into place whole, so that no pack removes another's file and a reader never sees a partial one.
    handle, tmp = tempfile.mkstemp(prefix=os.path.basename(dest) + ".", suffix=".tmp",
                                   dir=os.path.dirname(dest) or ".")
    try:
        with os.fdopen(handle, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as archive:
            for directory in directories:
                add_dir(archive, directory)
            for full, arcname in entries:
                add(archive, full, arcname)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dest


def reader(root):
    """path -> text (or None when the file does not exist): the inspection's file access."""
    def read(path):
        full = os.path.join(root, path)
        try:
            with io.open(full, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
    return read
