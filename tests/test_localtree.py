"""Local building blocks of sync: include/exclude rules, the tree scan, the hash snapshot."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from pathlib import Path

import pytest

from koodrive_fast._exceptions import ValidationError
from koodrive_fast import FileIdentity
from koodrive_fast._localtree import PathFilter, check_remote_name, scan_tree
from koodrive_fast._snapshot import SNAPSHOT_FILE, Snapshot

# ---------------------------------------------------------------- rules


@pytest.mark.parametrize("rules, path, included", [
    # no rules: everything
    ([], "a/b/c.txt", True),
    # unanchored patterns match at any depth, "*" stays inside one component
    ([(False, "*.tmp")], "x.tmp", False),
    ([(False, "*.tmp")], "deep/er/x.tmp", False),
    ([(False, "*.tmp")], "x.tmp.keep", True),
    ([(False, "b/*.txt")], "a/b/c.txt", False),
    ([(False, "b/*.txt")], "a/b/x/c.txt", True),
    ([(False, "a*")], "ba", True),  # a tail starts after a "/" only
    # anchored patterns match from the root
    ([(False, "/c.txt")], "c.txt", False),
    ([(False, "/c.txt")], "a/c.txt", True),
    # "**" crosses folders; "**/" may match nothing
    ([(False, "/a/**/z")], "a/z", False),
    ([(False, "/a/**/z")], "a/b/c/z", False),
    ([(False, "/a/**.log")], "a/b/c.log", False),
    ([(False, "/a/*.log")], "a/b/c.log", True),
    # ?, classes, alternatives, escapes
    ([(False, "?.txt")], "a.txt", False),
    ([(False, "?.txt")], "ab.txt", True),
    ([(False, "[ab].txt")], "b.txt", False),
    ([(False, "[!ab].txt")], "b.txt", True),
    ([(False, "[!ab].txt")], "c.txt", False),
    ([(False, "*.{jpg,png}")], "p/q.png", False),
    ([(False, "*.{jpg,png}")], "p/q.gif", True),
    ([(False, r"\*.txt")], "*.txt", False),
    ([(False, r"\*.txt")], "a.txt", True),
    # first match wins
    ([(True, "keep.log"), (False, "*.log")], "keep.log", True),
    ([(False, "*.log"), (True, "keep.log")], "keep.log", False),
    # any include rule: unmatched files are excluded
    ([(True, "*.jpg")], "a/b.jpg", True),
    ([(True, "*.jpg")], "a/b.png", False),
    # unicode names
    ([(False, "été/*")], "photos/été/ski.jpg", False),
    ([(True, "*☃*")], "x/a☃b", True),
])
def test_file_rules(rules: list[tuple[bool, str]], path: str, included: bool) -> None:
    assert PathFilter(rules).file_included(path) is included


def test_directory_rules() -> None:
    rules = PathFilter([(True, "/keep/"), (False, "node_modules/"), (False, "cache/**"),
                        (False, "*.o")])
    assert rules.dir_decision("a/node_modules") is False
    assert rules.dir_decision("cache") is False and rules.dir_decision("x/cache") is False
    assert rules.dir_decision("keep") is True and rules.dir_decision("a/keep") is None
    assert rules.dir_decision("src") is None
    assert rules.dir_decision("x.o") is None  # file rules do not decide for folders
    assert rules.file_included("node_modules") is False  # ...and folder rules not for files


@pytest.mark.parametrize("glob", ["", "/", "[abc", "{a,b", "a\\", "{a,{b}}"])
def test_bad_patterns_are_validation_errors(glob: str) -> None:
    with pytest.raises(ValidationError):
        PathFilter([(False, glob)])


# ---------------------------------------------------------------- scan


def make_tree(root: Path) -> None:
    (root / "photos" / "2026 été").mkdir(parents=True)
    (root / "photos" / "2026 été" / "ski ☃.jpg").write_bytes(b"jpg")
    (root / "photos" / "notes.txt").write_text("n")
    (root / "empty" / "inner").mkdir(parents=True)
    (root / "zero").write_bytes(b"")
    (root / "cache").mkdir()
    (root / "cache" / "big.tmp").write_bytes(b"x" * 10)
    (root / "bad:name.txt").write_text("colon")
    (root / "bad?dir").mkdir()
    (root / "bad?dir" / "inside.txt").write_text("never uploaded under another name")


def test_scan_reports_files_folders_and_notes(tmp_path: Path) -> None:
    make_tree(tmp_path)
    os.symlink(tmp_path / "zero", tmp_path / "link-to-zero")
    os.symlink(tmp_path / "missing", tmp_path / "dangling")
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        tree = scan_tree(tmp_path)
    finally:
        sock.close()
    assert [f.rel_path for f in tree.files] == [
        "cache/big.tmp", "photos/2026 été/ski ☃.jpg", "photos/notes.txt", "zero"]
    assert tree.folders == ("cache", "empty", "photos", "empty/inner", "photos/2026 été")
    notes = {s.rel_path: (s.kind, s.reason) for s in tree.skipped}
    assert notes["link-to-zero"][0] == "symlink" and notes["dangling"][0] == "symlink"
    assert notes["fifo"] == ("special", "special file (fifo)")
    assert notes["sock"] == ("special", "special file (socket)")
    assert notes["bad:name.txt"][0] == "forbidden" and "bad?dir" in notes
    assert not any(p.startswith("bad?dir/") for p in notes)  # not entered
    zero = next(f for f in tree.files if f.rel_path == "zero")
    st = os.stat(tmp_path / "zero")
    assert zero.identity == FileIdentity(0, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
    assert tree.total_bytes == 3 + 1 + 0 + 10


def test_scan_with_filters(tmp_path: Path) -> None:
    make_tree(tmp_path)
    excluded = scan_tree(tmp_path, filters=PathFilter([(False, "cache/**"), (False, "*.txt")]))
    assert [f.rel_path for f in excluded.files] == ["photos/2026 été/ski ☃.jpg", "zero"]
    assert "cache" not in excluded.folders and "empty/inner" in excluded.folders
    assert "cache/" in excluded.excluded and "photos/notes.txt" in excluded.excluded
    only = scan_tree(tmp_path, filters=PathFilter([(True, "*.jpg"), (True, "/empty/")]))
    assert [f.rel_path for f in only.files] == ["photos/2026 été/ski ☃.jpg"]
    # folders on the way to an included file, and folders an include rule names
    assert only.folders == ("empty", "photos", "photos/2026 été")


def test_followed_symlinks_and_loops(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f.txt").write_text("f")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    os.symlink(tmp_path, tmp_path / "real" / "loop")
    tree = scan_tree(tmp_path, follow_symlinks=True)
    assert [f.rel_path for f in tree.files] == ["alias/f.txt", "real/f.txt"]
    loops = [s for s in tree.skipped if s.reason == "symbolic link loop"]
    assert {s.rel_path for s in loops} == {"real/loop", "alias/loop"}


def test_unreadable_directory_is_a_note(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every directory")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "x").write_text("x")
    (tmp_path / "locked").chmod(0)
    try:
        tree = scan_tree(tmp_path)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [s.kind for s in tree.skipped if s.rel_path == "locked"] == ["error"]


def test_scan_bounds_and_bad_root(tmp_path: Path) -> None:
    make_tree(tmp_path)
    with pytest.raises(ValidationError):
        scan_tree(tmp_path, max_entries=3)
    with pytest.raises(ValidationError):
        scan_tree(tmp_path / "zero")
    deep = scan_tree(tmp_path, max_depth=1)
    assert "photos/2026 été" not in deep.folders
    assert any(s.rel_path == "photos/2026 été" and s.kind == "error" for s in deep.skipped)


def test_remote_name_rules() -> None:
    assert check_remote_name("ok ☃.txt") is None
    for bad in ("a|b", "a\\b", "..", "x" * 251, "tab\there", "\udcff"):
        assert check_remote_name(bad) is not None, bad


# ---------------------------------------------------------------- snapshot


def identity_of(path: Path) -> FileIdentity:
    return FileIdentity.of(os.stat(path))


def test_snapshot_remembers_until_any_identity_field_changes(tmp_path: Path) -> None:
    later = [0]
    with Snapshot(tmp_path / "cache" / SNAPSHOT_FILE, now_ns=lambda: later[0]) as snap:
        f = tmp_path / "f.bin"
        f.write_bytes(b"abc")
        ident = identity_of(f)
        later[0] = max(ident.mtime_ns, ident.ctime_ns) + 3_000_000_000
        snap.record(f, ident, "A" * 64)
        assert snap.lookup(f, ident) == "a" * 64
        for field in ("size", "mtime_ns", "ctime_ns", "inode", "device"):
            changed = FileIdentity(**{**ident.__dict__, field: getattr(ident, field) + 1})
            assert snap.lookup(f, changed) is None, field
        assert snap.lookup(tmp_path / "other", ident) is None
        snap.forget(f)
        assert snap.lookup(f, ident) is None and len(snap) == 0
        with pytest.raises(ValidationError):
            snap.record(f, ident, "nothex")


def test_snapshot_does_not_trust_racily_new_files(tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    ident = identity_of(f)
    stamp = max(ident.mtime_ns, ident.ctime_ns)
    with Snapshot(tmp_path / SNAPSHOT_FILE) as snap:
        snap.record(f, ident, "b" * 64, started_ns=stamp + 1_000_000_000)  # within 2 s
        assert snap.lookup(f, ident) is None
        snap.record(f, ident, "b" * 64, started_ns=stamp + 2_000_000_001)
        assert snap.lookup(f, ident) == "b" * 64
    with Snapshot(tmp_path / SNAPSHOT_FILE, racy_window_ns=0) as snap:
        snap.record(f, ident, "c" * 64, started_ns=stamp + 1)
        assert snap.lookup(f, ident) == "c" * 64


def test_snapshot_persists_and_survives_corruption(tmp_path: Path) -> None:
    db = tmp_path / SNAPSHOT_FILE
    f = tmp_path / "f"
    f.write_bytes(b"1")
    ident = identity_of(f)
    late = max(ident.mtime_ns, ident.ctime_ns) + 10**10
    with Snapshot(db) as snap:
        snap.record(f, ident, "d" * 64, started_ns=late)
    with Snapshot(db) as snap:
        assert snap.lookup(f, ident) == "d" * 64
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    with Snapshot(db) as snap:  # set aside, started afresh
        assert snap.lookup(f, ident) is None and len(snap) == 0
        snap.record(f, ident, "e" * 64, started_ns=late)
    assert [p.name for p in tmp_path.iterdir() if ".broken-" in p.name]
    # another schema version is dropped, not misread
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version=99")
    con.close()
    with Snapshot(db) as snap:
        assert len(snap) == 0


def test_snapshot_from_many_threads(tmp_path: Path) -> None:
    files = []
    for i in range(40):
        p = tmp_path / f"f{i}"
        p.write_bytes(bytes([i]))
        files.append(p)
    with Snapshot(tmp_path / SNAPSHOT_FILE, racy_window_ns=0) as snap:
        def work(part: list[Path]) -> None:
            for p in part:
                snap.record(p, identity_of(p), f"{files.index(p):064x}", started_ns=2**62)

        threads = [threading.Thread(target=work, args=(files[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(snap) == 40
        assert all(snap.lookup(p, identity_of(p)) == f"{i:064x}" for i, p in enumerate(files))


def test_command_line_filters_keep_their_order() -> None:
    import argparse

    from koodrive_fast._cmd_common import UsageError, add_filter_options, path_filter_from_args

    parser = argparse.ArgumentParser()
    add_filter_options(parser)
    args = parser.parse_args(["--include", "keep.log", "--exclude", "*.log", "--include", "*.txt"])
    rules = path_filter_from_args(args)
    assert [(r.include, r.glob) for r in rules.rules] == [
        (True, "keep.log"), (False, "*.log"), (True, "*.txt")]
    assert rules.file_included("a/keep.log") and not rules.file_included("b.log")
    assert not rules.file_included("c.bin")  # include rules exist
    assert path_filter_from_args(parser.parse_args([])).rules == ()
    with pytest.raises(UsageError):
        path_filter_from_args(parser.parse_args(["--exclude", "[oops"]))
