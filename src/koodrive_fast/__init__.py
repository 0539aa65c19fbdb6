"""koodrive_fast: fast, resumable concurrent multipart uploads to Huawei Cloud KooDrive.

Public names are imported lazily from private modules, so ``koodrive-fast
hash`` does not pay for importing httpx.  ``koodrive_fast.backend`` names
the active SHA-256 kernel.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# name -> private module that defines it
_EXPORTS: dict[str, str] = {
    # hashing (native core)
    "sha256": "._hashing",
    "sha1": "._hashing",
    "HashState": "._hashing",
    "kernels": "._hashing",
    "part_contexts": "._contexts",
    "FileContexts": "._contexts",
    "PartContext": "._contexts",
    # configuration
    "Limits": "._config",
    "DEFAULT_LIMITS": "._config",
    "default_part_size": "._config",
    "parse_size": "._sizes",
    # exceptions
    "KooDriveError": "._exceptions",
    "ValidationError": "._exceptions",
    "ConfigError": "._exceptions",
    "KernelUnavailableError": "._exceptions",
    "ApiError": "._exceptions",
    "AuthenticationError": "._exceptions",
    "RateLimitedError": "._exceptions",
    "UploadTaskMissingError": "._exceptions",
    "IntegrityError": "._exceptions",
    "TransportError": "._exceptions",
    "UploadUrlExpiredError": "._exceptions",
    "PartUploadError": "._exceptions",
    "FileChangedError": "._exceptions",
    "MalformedResponseError": "._exceptions",
    "NotFoundError": "._exceptions",
    "JobTimeoutError": "._exceptions",
    # API client and models
    "Client": "._client",
    "AsyncClient": "._client",
    "BearerToken": "._auth",
    "AppCredentials": "._auth",
    "TokenProvider": "._auth",
    "RefreshingBearerToken": "._auth",
    "IssuedToken": "._auth",
    "pre_hash": "._auth",
    "proof_code": "._auth",
    "proof_origin": "._auth",
    "RetryPolicy": "._retry",
    "MultiPartInfo": "._models",
    "CreateFileResult": "._models",
    "FileDetail": "._models",
    "DownloadLink": "._models",
    "FileEntry": "._models",
    "FolderEntry": "._models",
    "ListPage": "._models",
    "SearchHit": "._models",
    "FullPath": "._models",
    "Job": "._models",
    "DownloadConfig": "._download",
    "DownloadResult": "._download",
    "DownloadedFile": "._download",
    "PartPlan": "._planner",
    "plan_parts": "._planner",
    "plan_with_contexts": "._planner",
    "validate_parts": "._planner",
    # upload engine
    "UploadOptions": "._options",
    "UploadResult": "._engine",
    "TransferManager": "._manager",
    "sync": "._sync",
    "SyncItem": "._sync",
    "SyncResult": "._sync",
    "DaskOptions": "._dask",
    "upload_on_dask": "._dask",
    "UploadFuture": "._manager",
    "TransferProgress": "._manager",
    "ProgressEvent": "._progress",
    "LocalFileError": "._exceptions",
    "UploadInProgressError": "._exceptions",
    "UploadCancelledError": "._exceptions",
    "FileIdentity": "._source",
}

__all__ = sorted([*_EXPORTS, "backend", "__version__"])


def __getattr__(name: str) -> Any:
    if name == "backend":
        from ._hashing import kernels

        return kernels()["sha256"]
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'koodrive_fast' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from ._auth import (
        AppCredentials,
        BearerToken,
        IssuedToken,
        RefreshingBearerToken,
        TokenProvider,
        pre_hash,
        proof_code,
        proof_origin,
    )
    from ._client import AsyncClient, Client
    from ._config import DEFAULT_LIMITS, Limits, default_part_size
    from ._contexts import FileContexts, PartContext, part_contexts
    from ._exceptions import (
        ApiError,
        AuthenticationError,
        FileChangedError,
        IntegrityError,
        KooDriveError,
        JobTimeoutError,
        LocalFileError,
        MalformedResponseError,
        NotFoundError,
        PartUploadError,
        RateLimitedError,
        TransportError,
        UploadCancelledError,
        UploadInProgressError,
        UploadTaskMissingError,
        UploadUrlExpiredError,
        ValidationError,
        ConfigError,
        KernelUnavailableError,
    )
    from ._hashing import HashState, kernels, sha1, sha256
    from ._download import DownloadConfig, DownloadedFile, DownloadResult
    from ._models import (
        CreateFileResult,
        DownloadLink,
        FileDetail,
        FileEntry,
        FolderEntry,
        FullPath,
        Job,
        ListPage,
        MultiPartInfo,
        SearchHit,
    )
    from ._planner import PartPlan, plan_parts, plan_with_contexts, validate_parts
    from ._progress import ProgressEvent
    from ._retry import RetryPolicy
    from ._sizes import parse_size
    from ._engine import UploadResult
    from ._manager import TransferManager, TransferProgress, UploadFuture
    from ._options import UploadOptions
    from ._source import FileIdentity
    from ._sync import SyncItem, SyncResult, sync
    from ._dask import DaskOptions, upload_on_dask

    backend: str
