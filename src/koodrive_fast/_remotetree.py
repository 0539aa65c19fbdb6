"""The remote side of a folder sync or download: a whole tree, listed once.

:func:`list_tree` lists a folder and every folder below it (one paged
listing per folder, breadth first) into a :class:`RemoteTree` keyed by the
slash path relative to that folder (``"2026/a.jpg"``), the same keys as
:class:`koodrive_fast._localtree.LocalTree`.  Names from the server must
pass KooDrive's own name rules before they become keys (so a hostile server
cannot make a key such as ``../x``); a name that does not raises
:class:`ApiError`.  Bounded by ``max_entries`` and ``max_depth``.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import TYPE_CHECKING

from ._exceptions import ApiError, ValidationError
from ._models import FileEntry, FolderEntry
from ._validate import check_file_name

if TYPE_CHECKING:  # pragma: no cover
    from ._client import Client

__all__ = ["RemoteTree", "list_tree", "safe_remote_name"]

MAX_TREE_DEPTH = 128


@dataclasses.dataclass(frozen=True)
class RemoteTree:
    """Every file and folder below ``root`` by relative path; folders parents-first."""

    root: FolderEntry
    files: dict[str, FileEntry]
    folders: dict[str, FolderEntry]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())


def safe_remote_name(name: str) -> str:
    """``name`` if it is a valid KooDrive name (so a safe path component), else ApiError."""
    try:
        return check_file_name(name)
    except ValidationError as exc:
        raise ApiError(None, f"the server returned an unusable name {name!r}: {exc.rule}") from None


def list_tree(
    client: Client,
    root: FolderEntry,
    *,
    container_id: str,
    max_entries: int = 10_000_000,
    max_depth: int = MAX_TREE_DEPTH,
) -> RemoteTree:
    """List ``root`` recursively (see the module docstring)."""
    files: dict[str, FileEntry] = {}
    folders: dict[str, FolderEntry] = {}
    pending: deque[tuple[str, str, int]] = deque([(root.id, "", 0)])
    seen = 0
    while pending:
        folder_id, prefix, depth = pending.popleft()
        for child in client.list_folder(folder_id, container_id=container_id):
            seen += 1
            if seen > max_entries:
                raise ValidationError("max_entries", f"the tree has more than {max_entries} entries")
            rel = prefix + safe_remote_name(child.name)
            if rel in files or rel in folders:
                raise ApiError(None, f"the server listed {rel!r} twice")
            if isinstance(child, FolderEntry):
                if depth + 1 > max_depth:
                    raise ApiError(None, f"folder tree deeper than {max_depth} levels at {rel!r}")
                folders[rel] = child
                pending.append((child.id, rel + "/", depth + 1))
            else:
                files[rel] = child
    return RemoteTree(root, files, folders)
