"""``koodrive://``: KooDrive as an fsspec filesystem (:class:`KooDriveFileSystem`).

Install with ``pip install 'koodrive-fast[fsspec]'``; fsspec finds the class
through the ``fsspec.specs`` entry point, so ``fsspec.open("koodrive:///a/b.csv")``,
pandas, Dask and PyArrow take ``koodrive://`` paths.

* **Connection:** resolved like the CLI's (:mod:`koodrive_fast._profiles`):
  each of ``endpoint``, ``user_id``, ``container_id`` and the credential
  (``token``, or ``app_id`` + ``app_secret``, or ``token_command``) comes from
  the argument, else ``KOODRIVE_*``, else the config-file ``profile``.
  ``credentials=`` (any credential the :class:`~koodrive_fast.Client` takes,
  e.g. a :class:`~koodrive_fast.TokenProvider`) replaces them; ``client=``
  uses an existing client (not closed by the filesystem).  Missing or bad
  settings raise :class:`ValidationError` before any request.
* **Paths** are slash paths from the space root: ``koodrive:///backups/a.bin``,
  ``koodrive://backups/a.bin`` and ``/backups/a.bin`` are the same file.
* **Listings** are cached (fsspec's ``dircache``); every write through this
  filesystem invalidates what it changed; :meth:`invalidate_cache` with no
  path also forgets the client's path → id cache (for changes made elsewhere).
* **Writes:** missing parent folders are created.  Overwriting a file first
  moves the old one to the **recycle bin** (KooDrive has no atomic replace; the
  old version stays recoverable there), then uploads the new one.
  ``put``/``put_file`` upload through the engine (pipelined, resumable; a
  recursive ``put`` runs every file on one :class:`~koodrive_fast.TransferManager`);
  ``open("wb")`` spools to a temporary file and uploads it on close, since
  KooDrive needs the length at ``create``.
* **Reads:** ``open("rb")`` reads with HTTP ``Range`` GETs of the download URL
  through fsspec's block cache (a URL that expired is fetched again);
  ``get``/``get_file`` use :meth:`Client.download` (parallel, resumable,
  SHA-256 checked).
* **Deletes never destroy:** ``rm``/``rm_file``/``rmdir`` move items into the
  recycle bin through a delete job.
* **Copy and move:** KooDrive documents copy and move *jobs*, but the format of
  their ``newFilePath`` is unverified and the local server runs delete jobs
  only, so :meth:`cp_file` downloads to a temporary file and uploads it as a
  flash upload (the server already holds the content: no part is re-sent),
  and ``mv`` is fsspec's copy then ``rm`` (the source goes to the bin).
* **Pickling** keeps the settings, not the connection: a copy builds its own
  client when first used (what Dask needs).  Settings resolved from arguments,
  environment or a profile travel as values (a ``token_command`` runs again in
  the copy's process); a ``credentials=`` object must pickle itself (a
  :class:`~koodrive_fast.TokenProvider` with a picklable callable does, a
  :class:`~koodrive_fast.RefreshingBearerToken` refuses).

fsspec's abstract test-suite runs against this class on the local server
(``tests/test_fsspec_abstract.py``, which lists the cases that do not apply).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import posixpath
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import httpx
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from ._auth import AppCredentials, BearerToken, RefreshableToken
from ._client import AnyCredentials, Client, _check_endpoint
from ._download import DownloadConfig
from ._exceptions import (
    CODE_DUPLICATE_NAME,
    CODE_RESOURCE_MISSING,
    ApiError,
    KooDriveError,
    NotFoundError,
    TransportError,
    ValidationError,
)
from ._models import Entry, FileEntry, FolderEntry
from ._options import UploadOptions
from ._profiles import resolve
from ._redact import redact_text
from ._retry import RetryBudget, is_retryable_status, parse_retry_after

__all__ = ["KooDriveFileSystem", "KooDriveFile"]

logger = logging.getLogger("koodrive_fast")

PROTOCOL = "koodrive"
_ROOT = "/"
_MAX_JOB_IDS = 1000  # ids per delete job (the client's limit)


def _mtime(text: Optional[str]) -> Optional[float]:
    """RFC 3339 time of a listing (``2026-12-04T12:46:31.502Z``) as epoch seconds."""
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _info(path: str, entry: Entry) -> dict[str, Any]:
    """fsspec's info dict of a listed entry at ``path``."""
    info: dict[str, Any] = {"name": path, "id": entry.id}
    if isinstance(entry, FileEntry):
        info.update(type="file", size=entry.size, sha256=entry.sha256)
    else:
        info.update(type="directory", size=0)
    mtime = _mtime(entry.edited_time) or _mtime(entry.created_time)
    if mtime is not None:
        info["mtime"] = mtime
    created = _mtime(entry.created_time)
    if created is not None:
        info["created"] = created
    return info


def _as_os_error(exc: ApiError, path: str) -> OSError:
    if isinstance(exc, NotFoundError):
        return FileNotFoundError(path)
    if exc.code == CODE_DUPLICATE_NAME:
        return FileExistsError(path)
    return OSError(f"{path}: {exc}")


class _SkipCacheForObjects(type(AbstractFileSystem)):  # type: ignore[misc]
    """fsspec caches instances by ``str()`` of the arguments; credential and
    client reprs hide their secrets, so two different tokens of one user would
    share an instance.  Instances made with such objects are not cached."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("client") is not None or kwargs.get("credentials") is not None:
            kwargs.setdefault("skip_instance_cache", True)
        return super().__call__(*args, **kwargs)


def _rebuild(cls: type, options: dict[str, Any]) -> Any:
    """Unpickle: a new instance from the stored settings (its client made on first use)."""
    return cls(skip_instance_cache=True, **options)


class KooDriveFileSystem(AbstractFileSystem, metaclass=_SkipCacheForObjects):  # type: ignore[misc]
    """KooDrive as an fsspec filesystem; see the module docstring.

    ``upload_options`` (:class:`~koodrive_fast.UploadOptions`) and
    ``download_config`` (:class:`~koodrive_fast.DownloadConfig`) say how files
    move; ``client_kwargs`` go to the :class:`~koodrive_fast.Client` it builds
    (``limits``, ``timeout``, ``verify``, ``retry``, ...); ``max_files`` files
    of a recursive ``put`` are hashed and scheduled at once.
    """

    protocol = PROTOCOL
    root_marker = _ROOT

    def __init__(
        self,
        endpoint: Optional[str] = None,
        token: Optional[str] = None,
        user_id: Optional[str] = None,
        container_id: Optional[str] = None,
        *,
        profile: Optional[str] = None,
        app_id: Optional[str] = None,
        app_secret: Optional[str] = None,
        token_command: Optional[str] = None,
        client: Optional[Client] = None,
        credentials: Optional[AnyCredentials] = None,
        upload_options: Optional[UploadOptions] = None,
        download_config: Optional[DownloadConfig] = None,
        client_kwargs: Optional[dict[str, Any]] = None,
        max_files: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        given = dict(endpoint=endpoint, user_id=user_id, container_id=container_id, token=token,
                     app_id=app_id, app_secret=app_secret, token_command=token_command)
        settings = resolve(given, profile=profile)  # argument > KOODRIVE_* > profile, as the CLI
        settings.require("container_id")
        assert settings.container_id is not None
        self.container_id = settings.container_id
        #: the resolved connection settings a pickled copy is rebuilt from
        self._connection = {key: getattr(settings, key) for key in given
                            if getattr(settings, key) is not None}
        if upload_options is not None and not isinstance(upload_options, UploadOptions):
            raise ValidationError("upload_options", "must be an UploadOptions")
        if download_config is not None and not isinstance(download_config, DownloadConfig):
            raise ValidationError("download_config", "must be a DownloadConfig")
        if not isinstance(max_files, int) or isinstance(max_files, bool) or not 1 <= max_files <= 64:
            raise ValidationError("max_files", f"must be an int in 1..64, got {max_files!r}")
        self.upload_options = upload_options or UploadOptions()
        self.download_config = download_config or DownloadConfig()
        self.max_files = max_files
        self._client_kwargs = dict(client_kwargs or {})
        self._client_lock = threading.Lock()
        self._owns_client = client is None
        if client is not None:
            if not isinstance(client, Client):
                raise ValidationError("client", f"must be a koodrive_fast.Client, got {type(client).__name__}")
            self._client: Optional[Client] = client
            self.endpoint = client.endpoint
            self.credentials: AnyCredentials = client.credentials
            self._explicit_credentials = True
        else:
            self._client = None
            settings.require("endpoint")
            assert settings.endpoint is not None
            self.endpoint = settings.endpoint
            self._explicit_credentials = credentials is not None
            if credentials is None:
                credentials = settings.credentials()
            if not isinstance(credentials, (BearerToken, AppCredentials, RefreshableToken)):
                raise ValidationError("credentials", "must be BearerToken, AppCredentials, "
                                      f"TokenProvider or RefreshingBearerToken, got {type(credentials).__name__}")
            self.endpoint = _check_endpoint(self.endpoint)
            self.credentials = credentials  # the client is made on first use (also after unpickling)
        self._collecting = threading.local()  # put(): pairs gathered instead of uploaded

    # ------------------------------------------------------------------ connection

    def _new_client(self) -> Client:
        return Client(self.endpoint, self.credentials, **self._client_kwargs)

    @property
    def client(self) -> Client:
        """The :class:`~koodrive_fast.Client` (built on first use after unpickling)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def __reduce__(self) -> tuple[Any, ...]:
        options: dict[str, Any] = dict(
            upload_options=self.upload_options, download_config=self.download_config,
            max_files=self.max_files, client_kwargs=self._client_kwargs,
        )
        if self._explicit_credentials:
            options.update(endpoint=self.endpoint, container_id=self.container_id,
                           credentials=self.credentials)
        else:  # the resolved values (a token_command runs again in the copy's process)
            options.update(self._connection)
        if not self._owns_client and self._client is not None:
            client = self._client
            options["client_kwargs"] = {"limits": client.limits, "retry": client.retry_policy,
                                        **self._client_kwargs}
        for key in ("use_listings_cache", "listings_expiry_time", "max_paths"):
            if key in self.storage_options:
                options[key] = self.storage_options[key]
        return _rebuild, (type(self), options)

    def close(self) -> None:
        """Close the client's connections if this filesystem made the client."""
        with self._client_lock:
            if self._owns_client and self._client is not None:
                self._client.close()
                self._client = None

    # ------------------------------------------------------------------ paths

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
        for prefix in (PROTOCOL + "://", PROTOCOL + "::"):
            if text.startswith(prefix):
                text = text[len(prefix):]
        text = "/" + text.strip("/")
        return text if text != "/" else _ROOT

    def unstrip_protocol(self, name: str) -> str:
        return f"{PROTOCOL}://{self._strip_protocol(name)}"

    @staticmethod
    def _join(parent: str, name: str) -> str:
        return parent.rstrip("/") + "/" + name

    # ------------------------------------------------------------------ reading metadata

    def _resolve(self, path: str) -> Entry:
        try:
            return self.client.resolve_path(path, container_id=self.container_id)
        except NotFoundError:
            raise FileNotFoundError(path) from None
        except ValidationError as exc:  # a component KooDrive could never hold
            raise FileNotFoundError(f"{path}: {exc}") from None

    def ls(self, path: str, detail: bool = True, refresh: bool = False, **kwargs: Any) -> list[Any]:
        """Children of a folder (or the file itself), from the cache when listed before."""
        path = self._strip_protocol(path)
        entries = None if refresh else self._cached_listing(path)
        if entries is None:
            if path == _ROOT:
                folder: Entry = FolderEntry(id="root", name="", container_id=self.container_id)
            else:
                folder = self._resolve(path)
            if isinstance(folder, FileEntry):
                entries = [_info(path, folder)]
            else:
                children = self.client.list_folder(folder.id, container_id=self.container_id)
                entries = [_info(self._join(path, c.name), c) for c in children]
                self.dircache[path] = entries
        return list(entries) if detail else [e["name"] for e in entries]

    def _cached_listing(self, path: str) -> Optional[list[dict[str, Any]]]:
        """A folder's cached listing, or a file's entry from its parent's; None if unknown."""
        try:
            return list(self.dircache[path])
        except KeyError:
            pass
        try:
            siblings = self.dircache[self._parent(path)]
        except KeyError:
            return None
        for entry in siblings:
            if entry["name"] == path:
                return [entry] if entry["type"] == "file" else None
        raise FileNotFoundError(path)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """``name``, ``type``, ``size``, ``id``, ``sha256`` (files), ``mtime``/``created`` (epoch s)."""
        path = self._strip_protocol(path)
        if path == _ROOT:
            return {"name": _ROOT, "type": "directory", "size": 0, "id": "root"}
        for entry in self.ls(self._parent(path), detail=True, refresh=kwargs.get("refresh", False)):
            if entry["name"] == path:
                return dict(entry)
        raise FileNotFoundError(path)

    def checksum(self, path: str) -> int:
        """The file's SHA-256 as an int (fsspec's default for folders)."""
        digest = self.info(path).get("sha256")
        return int(digest, 16) if digest else int(super().checksum(path))

    def ukey(self, path: str) -> str:
        """The file's SHA-256 (hex), which changes exactly when its content does."""
        info = self.info(path)
        return str(info.get("sha256") or super().ukey(path))

    def modified(self, path: str) -> _dt.datetime:
        mtime = self.info(path).get("mtime")
        if mtime is None:
            raise NotImplementedError(f"KooDrive reported no time for {path}")
        return _dt.datetime.fromtimestamp(mtime, tz=_dt.timezone.utc)

    def created(self, path: str) -> _dt.datetime:
        created = self.info(path).get("created")
        if created is None:
            raise NotImplementedError(f"KooDrive reported no creation time for {path}")
        return _dt.datetime.fromtimestamp(created, tz=_dt.timezone.utc)

    def invalidate_cache(self, path: Optional[str] = None) -> None:
        """Forget listings at and below ``path`` and its parent's listing; with no
        path, every listing and the client's path → id cache."""
        if path is None:
            self.dircache.clear()
            self.client.clear_path_cache()
        else:
            path = self._strip_protocol(path)
            below = path.rstrip("/") + "/"
            for key in [k for k in self.dircache if k == path or k.startswith(below)]:
                self.dircache.pop(key, None)
            self.dircache.pop(self._parent(path), None)
        super().invalidate_cache(path)

    # ------------------------------------------------------------------ folders

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if self.exists(path):
            raise FileExistsError(path)
        parent = self._parent(path)
        if create_parents:
            self.makedirs(parent, exist_ok=True)
        elif not self.isdir(parent):
            raise FileNotFoundError(parent)
        try:
            folder = self._folder(parent)
            self.client.create_folder(posixpath.basename(path), container_id=self.container_id,
                                      parent_folder=folder.id)
        except ApiError as exc:
            raise _as_os_error(exc, path) from exc
        finally:
            self.invalidate_cache(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        path = self._strip_protocol(path)
        if path == _ROOT:
            if not exist_ok:
                raise FileExistsError(path)
            return
        try:
            existing = self.info(path)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if existing["type"] != "directory" or not exist_ok:
                raise FileExistsError(path)
            return
        try:
            self.client.ensure_folder(path, container_id=self.container_id)
        except ApiError as exc:
            raise _as_os_error(exc, path) from exc
        finally:  # any missing ancestor may have been created too
            self.invalidate_cache(path)
            for ancestor in _ancestors(path):
                self.dircache.pop(ancestor, None)

    def _folder(self, path: str) -> Entry:
        """The folder at ``path`` (root included); NotADirectoryError for a file."""
        if path == _ROOT:
            return FolderEntry(id="root", name="", container_id=self.container_id)
        entry = self._resolve(path)
        if not isinstance(entry, FolderEntry):
            raise NotADirectoryError(path)
        return entry

    # ------------------------------------------------------------------ deleting (recycle bin)

    def _recycle(self, infos: Sequence[dict[str, Any]]) -> None:
        """Move the given entries to the recycle bin (never a permanent delete)."""
        for start in range(0, len(infos), _MAX_JOB_IDS):
            batch = infos[start:start + _MAX_JOB_IDS]
            try:
                job = self.client.delete([i["id"] for i in batch], container_id=self.container_id)
            except ApiError as exc:
                raise _as_os_error(exc, batch[0]["name"]) from exc
            finally:
                for info in batch:
                    self.invalidate_cache(info["name"])
            if not job.succeeded:
                failed = set(job.failed_file_ids)
                names = [i["name"] for i in batch if i["id"] in failed]
                raise OSError(f"KooDrive could not move {names or 'some items'} to the recycle bin")

    def rm_file(self, path: str) -> None:
        """Move one file to the **recycle bin** (KooDrive keeps it there; nothing is destroyed)."""
        info = self.info(path)
        if info["type"] == "directory":
            raise IsADirectoryError(info["name"])
        self._recycle([info])

    def rmdir(self, path: str) -> None:
        """Move an empty folder to the **recycle bin**; a folder with children: OSError."""
        info = self.info(path)
        if info["type"] != "directory":
            raise NotADirectoryError(info["name"])
        if info["name"] == _ROOT:
            raise PermissionError("the root folder cannot be removed")
        if self.ls(info["name"], detail=False):
            raise OSError(f"folder not empty: {info['name']}")
        self._recycle([info])

    def rm(self, path: Any, recursive: bool = False, maxdepth: Optional[int] = None) -> None:
        """Move files (and with ``recursive`` folders with their contents) to the **recycle bin**.

        Never a permanent delete.  A folder's contents go with it, so only the
        topmost items are named, in jobs of up to 1000 ids.  With ``maxdepth``,
        files are binned one by one and folders only once empty.
        """
        paths = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
        infos = [self.info(p) for p in paths]
        if _ROOT in paths:
            raise PermissionError("the root folder cannot be removed")
        if maxdepth is not None or not recursive:
            for info in sorted(infos, key=lambda i: i["name"], reverse=True):
                if info["type"] == "directory":
                    self.rmdir(info["name"])
                else:
                    self._recycle([info])
            return
        chosen = set(paths)
        topmost = [i for i in infos if not any(a in chosen for a in _ancestors(i["name"]))]
        self._recycle(topmost)

    # ------------------------------------------------------------------ writing

    def _existing(self, rpath: str) -> Optional[dict[str, Any]]:
        try:
            return self.info(rpath)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _prepare_targets(self, targets: Sequence[tuple[str, str]]) -> list[Entry]:
        """The parent folder of each new file ``(rpath, mode)`` (created if missing).

        Files already at those paths go to the recycle bin, in as few jobs as
        possible; ``mode="create"`` raises FileExistsError instead, and a
        folder in the way IsADirectoryError, before anything is changed.
        """
        replaced = []
        for rpath, mode in targets:
            existing = self._existing(rpath) if rpath != _ROOT else {"type": "directory"}
            if existing is None:
                continue
            if existing["type"] == "directory":
                raise IsADirectoryError(rpath)
            if mode == "create":
                raise FileExistsError(rpath)
            replaced.append(existing)
        if replaced:
            self._recycle(replaced)
        parents = []
        for rpath, _ in targets:
            parent = self._parent(rpath)
            self.makedirs(parent, exist_ok=True)
            parents.append(self._folder(parent))
        return parents

    def _store(self, lpath: str, rpath: str, *, mode: str = "overwrite",
               options: Optional[UploadOptions] = None) -> None:
        """Upload the local file ``lpath`` to ``rpath`` (see :meth:`_prepare_targets`)."""
        rpath = self._strip_protocol(rpath)
        (parent,) = self._prepare_targets([(rpath, mode)])
        opts = (options or self.upload_options).replace(auto_rename=3)
        try:
            self.client.upload(lpath, container_id=self.container_id, parent_folder=parent.id,
                               file_name=posixpath.basename(rpath), options=opts)
        except ApiError as exc:
            raise _as_os_error(exc, rpath) from exc
        finally:
            self.invalidate_cache(rpath)

    def put_file(self, lpath: str, rpath: str, callback: Callback = DEFAULT_CALLBACK,
                 mode: str = "overwrite", **kwargs: Any) -> None:
        """Upload one local file (or make the folder, for a local directory) through the engine."""
        pending = getattr(self._collecting, "pairs", None)
        if pending is not None:  # inside put(): gathered, then sent on one manager
            pending.append((os.fspath(lpath), self._strip_protocol(rpath), mode))
            return
        rpath = self._strip_protocol(rpath)
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        size = os.path.getsize(lpath)
        callback.set_size(size)
        self._store(os.fspath(lpath), rpath, mode=mode)
        callback.relative_update(size)

    def put(self, lpath: Any, rpath: Any, recursive: bool = False,
            callback: Callback = DEFAULT_CALLBACK, maxdepth: Optional[int] = None,
            **kwargs: Any) -> None:
        """Upload files (a tree with ``recursive``): fsspec's rules for which file goes
        where, then every file concurrently on one :class:`~koodrive_fast.TransferManager`
        (one pool of part senders, ``max_files`` files at once; resumable)."""
        pairs: list[tuple[str, str, str]] = []
        self._collecting.pairs = pairs
        try:
            super().put(lpath, rpath, recursive=recursive, maxdepth=maxdepth, **kwargs)
        finally:
            self._collecting.pairs = None
        self._put_many(pairs, callback)

    def _put_many(self, pairs: list[tuple[str, str, str]], callback: Callback) -> None:
        from ._manager import TransferManager

        folders = sorted({r for lpath, r, _ in pairs if os.path.isdir(lpath)})
        for folder in folders:
            self.makedirs(folder, exist_ok=True)
        files = [(lpath, r, mode) for lpath, r, mode in pairs if not os.path.isdir(lpath)]
        callback.set_size(len(files))
        if not files:
            return
        opts = self.upload_options.replace(auto_rename=3)
        parents = self._prepare_targets([(r, mode) for _, r, mode in files])
        targets = [(lpath, r, parent) for (lpath, r, _), parent in zip(files, parents)]
        errors: list[tuple[str, BaseException]] = []
        with TransferManager(self.client, opts, max_files=self.max_files) as manager:
            futures = [
                (r, manager.upload(lpath, container_id=self.container_id, parent_folder=parent.id,
                                   file_name=posixpath.basename(r)))
                for lpath, r, parent in targets
            ]
            for r, future in futures:
                try:
                    future.result()
                except KooDriveError as exc:
                    errors.append((r, exc))
                callback.relative_update(1)
        for _, r, _ in files:
            self.invalidate_cache(r)
        if errors:
            r, first = errors[0]
            raise OSError(f"{len(errors)} of {len(files)} uploads failed; first: {r}: {first}") from first

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy within KooDrive: download to a temporary file, then a flash upload
        (the server already has the content, so no part is sent again)."""
        path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
        info = self.info(path1)
        if info["type"] == "directory":
            self.makedirs(path2, exist_ok=True)
            return
        with tempfile.TemporaryDirectory(prefix="koodrive-cp-") as tmp:
            local = os.path.join(tmp, "copy")
            self.get_file(path1, local)
            self._store(local, path2, options=self.upload_options.replace(rapid=True, resume=False))

    # ------------------------------------------------------------------ downloading

    def get_file(self, rpath: str, lpath: str, callback: Callback = DEFAULT_CALLBACK,
                 outfile: Any = None, **kwargs: Any) -> None:
        """Download one file (parallel ranged GETs, SHA-256 checked) or make a local folder."""
        rpath = self._strip_protocol(rpath)
        info = self.info(rpath)
        if info["type"] == "directory":
            os.makedirs(lpath, exist_ok=True)
            return
        callback.set_size(info["size"])
        if outfile is not None:  # fsspec passes an open file for some targets
            with self.open(rpath, "rb") as source:
                shutil.copyfileobj(source, outfile)
        else:
            try:
                self.client.download(rpath, os.fspath(lpath), container_id=self.container_id,
                                     config=self.download_config,
                                     progress=callback.relative_update)
            except NotFoundError:
                raise FileNotFoundError(rpath) from None

    # ------------------------------------------------------------------ files

    def _open(self, path: str, mode: str = "rb", block_size: Optional[int] = None,
              autocommit: bool = True, cache_options: Optional[dict[str, Any]] = None,
              **kwargs: Any) -> KooDriveFile:
        path = self._strip_protocol(path)
        if mode not in ("rb", "wb", "xb"):
            raise NotImplementedError(f"mode {mode!r}: KooDrive files are read or written whole "
                                      "(no append)")
        if mode == "xb" and self._existing(path) is not None:
            raise FileExistsError(path)
        cache_type = kwargs.pop("cache_type", "blockcache")
        return KooDriveFile(self, path, mode, block_size=block_size or "default",
                            autocommit=autocommit, cache_type=cache_type,
                            cache_options=cache_options, **kwargs)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Write ``value`` as the whole file (``mode="create"``: FileExistsError if present)."""
        path = self._strip_protocol(path)
        if mode == "create" and self._existing(path) is not None:
            raise FileExistsError(path)
        with self.open(path, "wb", **kwargs) as handle:
            handle.write(value)

    def _download_url(self, file_id: str) -> str:
        (link,) = self.client.download_urls([file_id], container_id=self.container_id)
        if not link.ok or link.url is None:
            if link.code == CODE_RESOURCE_MISSING:
                raise FileNotFoundError(file_id)
            raise OSError(f"no download URL for {file_id}: {link.msg}")
        return link.url


def _ancestors(path: str) -> Iterator[str]:
    while path not in (_ROOT, ""):
        path = posixpath.dirname(path)
        yield path


class KooDriveFile(AbstractBufferedFile):  # type: ignore[misc]
    """A KooDrive file: ranged reads (``rb``) or a spooled upload on close (``wb``/``xb``)."""

    fs: KooDriveFileSystem

    def __init__(self, fs: KooDriveFileSystem, path: str, mode: str = "rb", **kwargs: Any) -> None:
        self._url: Optional[str] = None
        self._url_refreshes = 0
        self._spool: Optional[Any] = None
        super().__init__(fs, path, mode, **kwargs)
        if mode == "rb" and self.details["type"] != "file":
            raise IsADirectoryError(path)

    # ---- reading

    def _fetch_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` by one ranged GET (retried; an expired URL is renewed)."""
        end = min(end, self.size)
        if start >= end:
            return b""
        client = self.fs.client
        budget = RetryBudget(client.retry_policy, client._monotonic)
        max_refreshes = self.fs.download_config.max_url_refreshes
        while True:
            if self._url is None:
                self._url = self.fs._download_url(self.details["id"])
            try:
                response = client.http_client.get(
                    self._url, headers={"Range": f"bytes={start}-{end - 1}"},
                    timeout=self.fs.download_config.timeout,
                )
            except httpx.TransportError as exc:
                delay = budget.next_delay()
                if delay is None:
                    raise TransportError(f"GET of {self.path} failed: {type(exc).__name__}: "
                                         f"{redact_text(str(exc))}", method="GET") from None
                client._sleep(delay)
                continue
            status = response.status_code
            if status == 403 and self._url_refreshes < max_refreshes:
                self._url, self._url_refreshes = None, self._url_refreshes + 1
                continue
            if is_retryable_status(status, idempotent=True, policy=client.retry_policy):
                delay = budget.next_delay(parse_retry_after(response.headers.get("Retry-After")))
                if delay is not None:
                    client._sleep(delay)
                    continue
            if status == 206 or (status == 200 and start == 0 and end == self.size):
                body = response.content
                if len(body) != end - start:
                    raise OSError(f"{self.path}: asked bytes {start}-{end - 1}, got {len(body)} bytes")
                return body
            raise OSError(f"{self.path}: HTTP {status} from storage for bytes {start}-{end - 1}")

    # ---- writing: spool, then one upload when the length is known

    def _initiate_upload(self) -> None:
        self._spool = tempfile.NamedTemporaryFile(prefix="koodrive-spool-", delete=False)

    def _upload_chunk(self, final: bool = False) -> bool:
        assert self._spool is not None
        self.buffer.seek(0)
        shutil.copyfileobj(self.buffer, self._spool)
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        """Upload the spooled file to its path (the old file, if any, goes to the bin)."""
        if self._spool is None:  # nothing written and never flushed
            self._initiate_upload()
        assert self._spool is not None
        spool, self._spool = self._spool, None
        try:
            spool.close()
            mode = "create" if self.mode == "xb" else "overwrite"
            options = self.fs.upload_options.replace(resume=False)
            self.fs._store(spool.name, self.path, mode=mode, options=options)
        finally:
            os.unlink(spool.name)

    def discard(self) -> None:
        """Drop the spooled data (nothing is uploaded)."""
        if self._spool is not None:
            self._spool.close()
            os.unlink(self._spool.name)
            self._spool = None
