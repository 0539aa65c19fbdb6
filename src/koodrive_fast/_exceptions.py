"""Every error koodrive_fast raises, in one tree::

    KooDriveError(Exception)
     ├─ ValidationError(KooDriveError, ValueError)  bad input, caught before any request;
     │   │                                          .field .rule
     │   └─ ConfigError                             a bad config file or profile; .path
     ├─ KernelUnavailableError(KooDriveError,       KOODRIVE_FAST_KERNEL names a kernel this
     │        RuntimeError)                         CPU cannot run; .usable
     ├─ ApiError(KooDriveError)                     KooDrive answered with an error; .code .msg
     │   │                                          .trace_id .http_status .method .path
     │   ├─ AuthenticationError                     HTTP 401, API-gateway auth codes
     │   ├─ RateLimitedError                        HTTP 429; .retry_after (seconds or None)
     │   ├─ UploadTaskMissingError                  13000401 (no such upload task)
     │   ├─ IntegrityError                          13000402 (file integrity check failed),
     │   │                                          or a download whose SHA-256 differs
     │   ├─ NotFoundError                           13000309, or a remote path that does
     │   │                                          not resolve
     │   └─ MalformedResponseError                  a success envelope we cannot use
     ├─ TransportError(KooDriveError)               connection/timeout errors after retries
     │                                              (the httpx exception is ``__cause__``)
     ├─ UploadUrlExpiredError                       storage: 403 "Request has expired"
     ├─ PartUploadError                             a part PUT failed for good;
     │                                              .part_number .attempts
     ├─ FileChangedError                            the source file changed during the upload
     ├─ LocalFileError                              the source cannot be read (I/O error, not a
     │                                              regular file, data past its size); .path .errno
     ├─ UploadInProgressError                       another upload of the same file holds its lock
     ├─ UploadCancelledError                        the upload was cancelled (future, async task)
     └─ JobTimeoutError                             a job (delete, move) did not finish within
                                                    the polls/seconds allowed; .job_id .last

Compare on ``code`` (an ``int``, or the ``str`` of API-gateway codes such as
``"APIGW.0301"``), never on ``msg``: KooDrive's messages vary by language.
Messages never contain tokens, signatures or full presigned URLs.
"""

from __future__ import annotations

from typing import Optional, Union

__all__ = [
    "KooDriveError",
    "ValidationError",
    "ConfigError",
    "KernelUnavailableError",
    "ApiError",
    "AuthenticationError",
    "RateLimitedError",
    "UploadTaskMissingError",
    "IntegrityError",
    "NotFoundError",
    "MalformedResponseError",
    "TransportError",
    "UploadUrlExpiredError",
    "PartUploadError",
    "FileChangedError",
    "LocalFileError",
    "UploadInProgressError",
    "UploadCancelledError",
    "JobTimeoutError",
    "api_error",
    "CODE_SUCCESS",
    "CODE_VALIDATION",
    "CODE_INNER_FAILURE",
    "CODE_SPACE_MISSING",
    "CODE_FILE_NOT_IN_SPACE",
    "CODE_FOLDER_ABNORMAL",
    "CODE_FOLDER_IN_RECYCLE_BIN",
    "CODE_METADATA_INCORRECT",
    "CODE_RESOURCE_MISSING",
    "CODE_FOLDER_DEPTH",
    "CODE_QUOTA",
    "CODE_UPLOAD_TASK_MISSING",
    "CODE_INTEGRITY",
    "CODE_STATE_CHANGE_FAILED",
    "CODE_PARENT_IN_RECYCLE_BIN",
    "CODE_DUPLICATE_NAME",
    "CODE_FOLDER_NOT_ALLOWED",
    "CODE_UPLOAD_FAILED",
    "CODE_NO_PERMISSION",
    "CODE_FILE_NOT_IN_SPACE_2",
    "CODE_SPACE_INACTIVE",
]

Code = Union[int, str]

# Known KooDrive codes (protocol brief §8.1).
CODE_SUCCESS = 0
CODE_VALIDATION = 13000102
CODE_INNER_FAILURE = 13000201
CODE_SPACE_MISSING = 13000301
CODE_FILE_NOT_IN_SPACE = 13000302
CODE_FOLDER_ABNORMAL = 13000304
CODE_FOLDER_IN_RECYCLE_BIN = 13000305
CODE_METADATA_INCORRECT = 13000308
CODE_RESOURCE_MISSING = 13000309
CODE_FOLDER_DEPTH = 13000310
CODE_QUOTA = 13000311
CODE_UPLOAD_TASK_MISSING = 13000401
CODE_INTEGRITY = 13000402
CODE_STATE_CHANGE_FAILED = 13000403
CODE_PARENT_IN_RECYCLE_BIN = 13000404
CODE_DUPLICATE_NAME = 13000405
CODE_FOLDER_NOT_ALLOWED = 13000406
CODE_UPLOAD_FAILED = 13000409
CODE_NO_PERMISSION = 13000410
CODE_FILE_NOT_IN_SPACE_2 = 13000411
CODE_SPACE_INACTIVE = 13000412


class KooDriveError(Exception):
    """Root of every error raised by koodrive_fast."""


class ValidationError(KooDriveError, ValueError):
    """Bad input, detected before any request is sent.

    ``field`` names the offending field (``"multiParts[3].partSize"``),
    ``rule`` says what it must satisfy.
    """

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class ConfigError(ValidationError):
    """The config file or a profile is unusable (syntax, unknown key, bad value, permissions).

    ``field`` is where (``"profile.work.part_size"``); ``path`` the config file.
    """

    def __init__(self, field: str, rule: str, *, path: Optional[str] = None) -> None:
        self.path = path
        super().__init__(field, rule)


class KernelUnavailableError(KooDriveError, RuntimeError):
    """The hash core cannot start: a forced kernel this CPU cannot run (``usable`` lists
    the ones it can), or a failed self-test."""

    def __init__(self, message: str, *, usable: tuple[str, ...] = ()) -> None:
        self.usable = usable
        super().__init__(message)


class ApiError(KooDriveError):
    """KooDrive answered with an error envelope ``{"code": ..., "msg": ...}``.

    ``code`` is ``None`` only when the body was not a KooDrive envelope at all
    (e.g. an HTML page from a proxy); ``http_status`` is the HTTP status.
    """

    def __init__(
        self,
        code: Optional[Code],
        msg: str,
        *,
        http_status: Optional[int] = None,
        trace_id: Optional[str] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.trace_id = trace_id
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method and path else ""
        super().__init__(
            f"{where}KooDrive error code={code!r} http={http_status}: {msg}"
            + (f" (trace id {trace_id})" if trace_id else "")
        )


class AuthenticationError(ApiError):
    """Credentials rejected: bad/expired token, bad signature, stale ``X-Date``."""


class RateLimitedError(ApiError):
    """HTTP 429 after retries; ``retry_after`` is the server's hint in seconds."""

    def __init__(
        self,
        code: Optional[Code],
        msg: str,
        *,
        retry_after: Optional[float] = None,
        http_status: Optional[int] = None,
        trace_id: Optional[str] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            code, msg, http_status=http_status, trace_id=trace_id, method=method, path=path
        )


class UploadTaskMissingError(ApiError):
    """13000401: the server has no such upload task (stale or expired fileId)."""


class IntegrityError(ApiError):
    """13000402: the uploaded parts do not hash to the expected SHA-256."""


class NotFoundError(ApiError):
    """13000309 (resource does not exist), or a remote path with a missing component."""


class MalformedResponseError(ApiError):
    """A success envelope without the fields we need (e.g. a requested part missing)."""


class TransportError(KooDriveError):
    """The request could not be completed (connect/read/timeout) after retries.

    The underlying ``httpx`` exception is ``__cause__``.
    """

    def __init__(self, message: str, *, method: Optional[str] = None, path: Optional[str] = None,
                 attempts: int = 1) -> None:
        self.method = method
        self.path = path
        self.attempts = attempts
        super().__init__(message)


class UploadUrlExpiredError(KooDriveError):
    """Storage refused a part PUT with 403 ``AccessDenied`` "Request has expired"."""

    def __init__(
        self, message: str = "upload URL expired", *, part_number: Optional[int] = None
    ) -> None:
        self.part_number = part_number
        super().__init__(message)


class PartUploadError(KooDriveError):
    """A part could not be uploaded within its retry budget."""

    def __init__(self, message: str, *, part_number: int, attempts: int) -> None:
        self.part_number = part_number
        self.attempts = attempts
        super().__init__(f"part {part_number} failed after {attempts} attempt(s): {message}")


class FileChangedError(KooDriveError):
    """The source file changed (size, mtime, ctime, inode or device) while it was being uploaded."""

    def __init__(self, message: str, *, path: Optional[str] = None) -> None:
        self.path = path
        super().__init__(message)


class LocalFileError(KooDriveError):
    """The local source cannot be used: an I/O error, not a regular file, or lying about its size."""

    def __init__(
        self, message: str, *, path: Optional[str] = None, errno: Optional[int] = None
    ) -> None:
        self.path = path
        self.errno = errno
        super().__init__(message)


class UploadInProgressError(KooDriveError):
    """Another upload of the same file (this or another process) holds its checkpoint lock."""

    def __init__(self, message: str, *, path: Optional[str] = None) -> None:
        self.path = path
        super().__init__(message)


class UploadCancelledError(KooDriveError):
    """The upload was cancelled before it finished (its checkpoint is kept for a resume)."""


class JobTimeoutError(KooDriveError):
    """A server-side job was still pending/running after the allowed polls or seconds.

    ``last`` is the last :class:`koodrive_fast._models.Job` seen (``None`` if none).
    """

    def __init__(self, message: str, *, job_id: str, last: object = None) -> None:
        self.job_id = job_id
        self.last = last
        super().__init__(message)


_AUTH_GATEWAY_PREFIX = "APIGW.030"  # Huawei API gateway 03xx: authentication failures
_GATEWAY_THROTTLED = "APIGW.0308"


def api_error(
    code: Optional[Code],
    msg: str,
    *,
    http_status: Optional[int] = None,
    trace_id: Optional[str] = None,
    method: Optional[str] = None,
    path: Optional[str] = None,
    retry_after: Optional[float] = None,
) -> ApiError:
    """Build the most specific :class:`ApiError` subclass for a code/status."""
    if http_status == 429 or code == _GATEWAY_THROTTLED:
        return RateLimitedError(
            code, msg, retry_after=retry_after, http_status=http_status,
            trace_id=trace_id, method=method, path=path,
        )
    cls: type[ApiError] = ApiError
    if code == CODE_UPLOAD_TASK_MISSING:
        cls = UploadTaskMissingError
    elif code == CODE_INTEGRITY:
        cls = IntegrityError
    elif code == CODE_RESOURCE_MISSING:
        cls = NotFoundError
    elif http_status == 401 or (isinstance(code, str) and code.startswith(_AUTH_GATEWAY_PREFIX)):
        cls = AuthenticationError
    return cls(code, msg, http_status=http_status, trace_id=trace_id, method=method, path=path)
