"""The local side of a folder sync: include/exclude rules and a tree scan.

Filter rules (``--include GLOB`` / ``--exclude GLOB``, repeatable, rclone-like)
-----------------------------------------------------------------------------
* Each rule is matched against the **slash path relative to the synced
  root** (``photos/2026/a.jpg``; ``/`` separators on every OS, no leading
  slash).
* **First match wins**, in the order the rules were given (``--include``
  and ``--exclude`` interleaved).  A file no rule matches is included,
  unless at least one ``--include`` rule exists: then it is excluded
  (``--include '*.jpg'`` alone means "only JPEGs").
* Glob syntax: ``*`` any run of characters except ``/``; ``**`` any run
  including ``/`` (``**/`` also matches nothing, so ``a/**/b`` matches
  ``a/b``); ``?`` one character except ``/``; ``[abc]`` / ``[!abc]`` a
  character class; ``{jpg,png}`` alternatives; ``\\`` escapes the next
  character.  Matching is case-sensitive.
* A rule starting with ``/`` is anchored at the root and must match the
  whole path; any other rule matches the whole path or any tail of it that
  starts after a ``/`` (``*.jpg`` matches at every depth, ``2026/*.jpg``
  matches ``photos/2026/a.jpg``).
* A rule ending with ``/`` matches directories only (``--exclude
  node_modules/``); a rule ending with ``/**`` also decides for the
  directory it names (``--exclude cache/**`` does not even enter
  ``cache``).  Other rules decide for files only.  A directory whose
  deciding rule excludes it is not entered.  A directory no rule decides is
  entered; it is kept (created remotely, even when empty) when there is no
  ``--include`` rule, or when it holds an included file, or when an
  ``--include`` rule decides for it.

The scan (:func:`scan_tree`)
----------------------------
* Symbolic links are skipped with a note unless ``follow_symlinks``; when
  followed, a link back into its own ancestry (a loop) and a dangling link
  are skipped with a note.
* Special files (FIFOs, sockets, devices) are skipped with a note.
* Names KooDrive forbids (``< > | : " * ? / \\``, control characters,
  ``.``/``..``, more than 250 characters, not valid UTF-8) are reported in
  ``skipped`` (kind ``forbidden``); a directory with such a name is not
  entered, so its files are not uploaded under a changed name.
* Unreadable directories and files that vanish mid-scan are ``error``
  entries; the scan goes on.
* Every loop is bounded: ``max_entries`` entries, ``max_depth`` levels.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Optional, Union

from ._exceptions import ValidationError
from ._source import FileIdentity
from ._validate import check_file_name

__all__ = [
    "FilterRule", "PathFilter", "FileIdentity", "LocalFile", "SkippedEntry", "LocalTree",
    "scan_tree", "check_remote_name",
]

SkipKind = Literal["symlink", "special", "forbidden", "error"]
_MAX_DEPTH = 256


# --------------------------------------------------------------------------- globs


def _glob_to_regex(glob: str, field: str) -> str:
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValidationError(field, f"{glob!r} ends with a lone backslash")
            out.append(re.escape(glob[i + 1]))
            i += 2
        elif glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 2 if glob.startswith("[!", i) or glob.startswith("[]", i) else i + 1)
            if end < 0:
                raise ValidationError(field, f"{glob!r} has an unclosed '['")
            body = glob[i + 1 : end]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^")
            out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
            i = end + 1
        elif c == "{":
            end = glob.find("}", i)
            if end < 0:
                raise ValidationError(field, f"{glob!r} has an unclosed '{{'")
            inner = glob[i + 1 : end]
            if "{" in inner:
                raise ValidationError(field, f"{glob!r}: nested '{{' is not supported")
            out.append("(?:" + "|".join(_glob_to_regex(a, field) for a in inner.split(",")) + ")")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _compile(glob: str, anchored: bool, field: str) -> re.Pattern[str]:
    body = _glob_to_regex(glob, field)
    try:
        return re.compile(("^" if anchored else "^(?:.*/)?") + body + "$", re.DOTALL)
    except re.error as exc:
        raise ValidationError(field, f"{glob!r} is not a valid pattern: {exc}") from None


@dataclasses.dataclass(frozen=True)
class FilterRule:
    """One ``--include`` / ``--exclude`` rule, compiled."""

    include: bool
    glob: str
    file_regex: Optional[re.Pattern[str]]
    dir_regex: Optional[re.Pattern[str]]

    @classmethod
    def parse(cls, include: bool, glob: str, field: str = "filter") -> FilterRule:
        if not isinstance(glob, str) or not glob or glob in ("/", "//"):
            raise ValidationError(field, f"must be a non-empty glob, got {glob!r}")
        anchored = glob.startswith("/")
        text = glob[1:] if anchored else glob
        if text.endswith("/"):
            return cls(include, glob, None, _compile(text.rstrip("/"), anchored, field))
        dir_regex = None
        if text.endswith("/**") and len(text) > 3:
            dir_regex = _compile(text[:-3], anchored, field)
        return cls(include, glob, _compile(text, anchored, field), dir_regex)


class PathFilter:
    """Ordered include/exclude rules; first match wins (see the module docstring)."""

    def __init__(self, rules: Sequence[tuple[bool, str]] = ()) -> None:
        self.rules = tuple(
            FilterRule.parse(include, glob, f"filters[{i}]") for i, (include, glob) in enumerate(rules)
        )
        self.has_includes = any(r.include for r in self.rules)

    @classmethod
    def from_lists(cls, includes: Sequence[str] = (), excludes: Sequence[str] = ()) -> PathFilter:
        """Excludes first, then includes (for callers that lost the command-line order)."""
        return cls([(False, g) for g in excludes] + [(True, g) for g in includes])

    def file_included(self, rel_path: str) -> bool:
        for rule in self.rules:
            if rule.file_regex is not None and rule.file_regex.match(rel_path):
                return rule.include
        return not self.has_includes

    def dir_decision(self, rel_path: str) -> Optional[bool]:
        """True: include the directory; False: do not enter it; None: no rule decides."""
        for rule in self.rules:
            if rule.dir_regex is not None and rule.dir_regex.match(rel_path):
                return rule.include
        return None


# --------------------------------------------------------------------------- tree scan


@dataclasses.dataclass(frozen=True)
class LocalFile:
    rel_path: str
    path: Path
    identity: FileIdentity


@dataclasses.dataclass(frozen=True)
class SkippedEntry:
    rel_path: str
    kind: SkipKind
    reason: str


@dataclasses.dataclass(frozen=True)
class LocalTree:
    """A scan: files (sorted by path), folders to exist remotely (parents first), notes."""

    root: Path
    files: tuple[LocalFile, ...]
    folders: tuple[str, ...]
    skipped: tuple[SkippedEntry, ...]
    excluded: tuple[str, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.identity.size for f in self.files)


def check_remote_name(name: str) -> Optional[str]:
    """Why KooDrive would refuse ``name`` (its name rules), or None when it is fine."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    try:
        check_file_name(name)
    except ValidationError as exc:
        return exc.rule
    return None


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def scan_tree(
    root: Union[str, os.PathLike[str]],
    *,
    filters: Optional[PathFilter] = None,
    follow_symlinks: bool = False,
    max_entries: int = 10_000_000,
    max_depth: int = _MAX_DEPTH,
) -> LocalTree:
    """Scan ``root`` (see the module docstring); raises :class:`ValidationError` if it is
    not a directory."""
    base = Path(os.fspath(root))
    if not base.is_dir():
        raise ValidationError("root", f"not a directory: {base}")
    rules = filters if filters is not None else PathFilter()
    files: list[LocalFile] = []
    skipped: list[SkippedEntry] = []
    excluded: list[str] = []
    forced: set[str] = set()  # directories an --include rule decided for
    seen_dirs: list[str] = []
    top = base.stat()
    # (relative path, absolute path, depth, (dev, ino) of its ancestors incl. itself)
    stack: list[tuple[str, Path, int, frozenset[tuple[int, int]]]] = [
        ("", base, 0, frozenset({(top.st_dev, top.st_ino)}))
    ]
    count = 0
    while stack:
        rel_dir, abs_dir, depth, ancestry = stack.pop()
        try:
            with os.scandir(abs_dir) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            skipped.append(SkippedEntry(rel_dir or ".", "error", f"cannot read directory: {exc.strerror}"))
            continue
        for entry in entries:
            count += 1
            if count > max_entries:
                raise ValidationError("max_entries", f"the tree has more than {max_entries} entries")
            rel = _join(rel_dir, entry.name)
            is_link = False
            try:
                is_link = entry.is_symlink()
                if is_link and not follow_symlinks:
                    skipped.append(SkippedEntry(rel, "symlink", "symbolic link (not followed)"))
                    continue
                st = entry.stat(follow_symlinks=True) if is_link else entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                kind: SkipKind = "error"
                skipped.append(SkippedEntry(rel, kind, "broken symbolic link" if is_link else "vanished during the scan"))
                continue
            except OSError as exc:
                skipped.append(SkippedEntry(rel, "error", f"cannot stat: {exc.strerror}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in ancestry:
                    skipped.append(SkippedEntry(rel, "symlink", "symbolic link loop"))
                    continue
                decision = rules.dir_decision(rel)
                if decision is False:
                    excluded.append(rel + "/")
                    continue
                problem = check_remote_name(entry.name)
                if problem is not None:
                    skipped.append(SkippedEntry(rel, "forbidden", f"folder name: {problem}"))
                    continue
                if depth + 1 > max_depth:
                    skipped.append(SkippedEntry(rel, "error", f"deeper than {max_depth} levels"))
                    continue
                if decision is True:
                    forced.add(rel)
                seen_dirs.append(rel)
                stack.append((rel, Path(entry.path), depth + 1, ancestry | {key}))
            elif stat.S_ISREG(st.st_mode):
                if not rules.file_included(rel):
                    excluded.append(rel)
                    continue
                problem = check_remote_name(entry.name)
                if problem is not None:
                    skipped.append(SkippedEntry(rel, "forbidden", f"file name: {problem}"))
                    continue
                files.append(LocalFile(rel, Path(entry.path), FileIdentity.of(st)))
            else:
                skipped.append(SkippedEntry(rel, "special", f"special file ({_special_kind(st.st_mode)})"))
    files.sort(key=lambda f: f.rel_path)
    if rules.has_includes:
        keep = set(forced)
        for f in files:
            parts = f.rel_path.split("/")[:-1]
            keep.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        for rel in list(forced):
            parts = rel.split("/")
            keep.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        folders = sorted(d for d in seen_dirs if d in keep)
    else:
        folders = sorted(seen_dirs)
    folders.sort(key=lambda d: (d.count("/"), d))
    return LocalTree(base, tuple(files), tuple(folders), tuple(sorted(skipped, key=lambda s: s.rel_path)),
                     tuple(sorted(excluded)))


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "unknown type"
