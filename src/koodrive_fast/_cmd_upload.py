"""``koodrive-fast upload`` and ``koodrive-fast demo``.

``upload FILE`` uploads one file; endpoint and credentials come from the
options or from ``KOODRIVE_ENDPOINT``, ``KOODRIVE_TOKEN``, ``KOODRIVE_USER_ID``
(and ``KOODRIVE_CONTAINER_ID``).  Exit status: 0 uploaded, 1 the upload
failed, 2 usage error (bad option, missing file or credentials).

``demo [--size SIZE]`` starts the embedded local server (``koodrive-fast
serve`` in a child process, so it does not share the client's GIL) in a
temporary directory, writes a test file, uploads it with progress, downloads it back,
verifies its SHA-256 and prints the throughput next to the hash-then-upload
baseline; everything is removed afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from ._cmd_common import UsageError as _UsageError
from ._cmd_common import add_connection_options
from ._cmd_common import print_error as _error
from ._cmd_common import setting as _setting
from ._sizes import format_size, parse_size

__all__ = ["add_parser", "run", "run_demo"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def add_parser(subparsers: Any) -> None:
    """Register the ``upload`` and ``demo`` subcommands."""
    up = subparsers.add_parser(
        "upload",
        help="upload a file (concurrent multipart, resumable)",
        description="Upload FILE to KooDrive: one read of the file hashes and uploads it, "
        "parts in parallel; an interrupted upload resumes where it stopped.",
    )
    up.add_argument("file", metavar="FILE", help="file to upload")
    add_connection_options(up)
    up.add_argument("--parent", default="root", help="parent folder id (default: root)")
    up.add_argument("--name", help="file name in KooDrive (default: FILE's name)")
    up.add_argument("--part-size", type=_size_arg, help="part size, e.g. 16MiB (default: auto)")
    up.add_argument(
        "--concurrency", type=_positive_int_arg, default=8, help="parts in flight (default 8)"
    )
    up.add_argument("--no-resume", action="store_true", help="ignore any saved checkpoint")
    rapid = up.add_mutually_exclusive_group()
    rapid.add_argument(
        "--rapid", dest="rapid", action="store_const", const=True, default="auto",
        help="hash first and try a flash upload (nothing sent if the server has the content)",
    )
    rapid.add_argument(
        "--no-rapid", dest="rapid", action="store_const", const=False,
        help="never wait for the whole-file hash",
    )
    up.add_argument("--json", action="store_true", help="print one JSON object")
    up.add_argument("--no-progress", action="store_true", help="no progress bars")
    up.set_defaults(func=run)

    demo = subparsers.add_parser(
        "demo",
        help="upload a test file to an embedded local server and verify it",
        description="Start a local KooDrive-compatible server in a temporary directory, "
        "upload a test file with progress, download it back, verify its SHA-256 and "
        "compare the speed with hash-then-upload.",
    )
    demo.add_argument("--size", type=_size_arg, default=128 * 1024 * 1024,
                      help="test file size (default 128MiB)")
    demo.add_argument("--part-size", type=_size_arg, help="part size (default: auto)")
    demo.add_argument("--concurrency", type=_positive_int_arg, default=8)
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=run_demo)


def run(args: argparse.Namespace) -> int:
    """``koodrive-fast upload``."""
    from ._exceptions import KooDriveError, ValidationError

    try:
        endpoint = _setting(args.endpoint, "KOODRIVE_ENDPOINT", "--endpoint")
        token = _setting(args.token, "KOODRIVE_TOKEN", "--token")
        user_id = _setting(args.user_id, "KOODRIVE_USER_ID", "--user-id")
        container_id = _setting(args.container_id, "KOODRIVE_CONTAINER_ID", "--container-id")
        if not os.path.exists(args.file):
            raise _UsageError(f"no such file: {args.file}")
        if not os.path.isfile(args.file):
            raise _UsageError(f"not a regular file: {args.file}")
    except _UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE

    from ._auth import BearerToken
    from ._client import Client
    from ._options import UploadOptions
    from ._progress import TqdmProgress
    from ._upload import upload_file

    assert endpoint and token and user_id
    try:
        client = Client(endpoint, BearerToken(token, user_id))
        options = UploadOptions(
            part_size=args.part_size, concurrency=args.concurrency,
            resume=not args.no_resume, rapid=args.rapid,
        )
    except (ValueError, TypeError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    bar = TqdmProgress(enabled=not args.no_progress)
    try:
        with client:
            result = upload_file(
                client,
                args.file,
                parent_folder=args.parent,
                container_id=container_id,
                file_name=args.name,
                options=options,
                progress=bar,
            )
    except ValidationError as exc:
        bar.close()
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        bar.close()
        _error("interrupted; run the same command again to resume")
        return 130
    except (KooDriveError, OSError) as exc:
        bar.close()
        _error(f"upload failed: {exc}")
        return EXIT_FAILED
    bar.close()
    if args.json:
        print(json.dumps(_result_json(result), separators=(",", ":")))
    else:
        how = "flash upload (nothing sent)" if result.rapid_upload else (
            f"{result.parts} part(s), {_rate(result.size, result.seconds)}"
        )
        print(f"uploaded {args.file} ({format_size(result.size)}) as {result.file_id}: {how}")
        print(f"sha256 {result.sha256}")
    return EXIT_OK


def _result_json(result: Any) -> dict[str, Any]:
    return {
        "fileId": result.file_id,
        "fileName": result.file_name,
        "size": result.size,
        "sha256": result.sha256,
        "parts": result.parts,
        "partSize": result.part_size,
        "rapidUpload": result.rapid_upload,
        "bytesSent": result.bytes_sent,
        "bytesResumed": result.bytes_resumed,
        "bytesHashed": result.bytes_hashed,
        "resumed": result.resumed,
        "seconds": round(result.seconds, 3),
    }


def _rate(size: int, seconds: float) -> str:
    if seconds <= 0:
        return "instant"
    return f"{size / seconds / 1e6:.0f} MB/s in {seconds:.2f} s"


def _write_test_file(path: Path, size: int) -> None:
    """Pseudo-random content, fast: one random MiB, varied per MiB."""
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as fh:
        written = 0
        index = 0
        while written < size:
            block[:8] = index.to_bytes(8, "little")
            n = min(len(block), size - written)
            fh.write(memoryview(block)[:n])
            written += n
            index += 1


class _ServerProcess:
    """``koodrive-fast serve`` in a child process (its own GIL), stopped on exit."""

    def __init__(self, data_dir: Path) -> None:
        import secrets

        self.token = secrets.token_urlsafe(24)
        self._data_dir = data_dir
        self.base_url = ""
        self.user_id = ""
        self._argv = [
            # "--token=T": a generated token may start with "-", which argparse would
            # otherwise take for an option
            sys.executable, "-m", "koodrive_fast._cli", "serve", "--port", "0",
            f"--token={self.token}", "--no-fsync", "--quiet", f"--data-dir={data_dir}",
        ]
        self._proc: Optional[subprocess.Popen[str]] = None

    def __enter__(self) -> _ServerProcess:
        import re
        import threading

        # "python -m" puts the working directory first on sys.path: run the child in
        # its own data directory so that a koodrive_fast source tree in the caller's
        # directory (uncompiled after "pip install .") cannot shadow the installed one
        self._data_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            self._argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=self._data_dir,
        )
        self._proc = proc
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:
            seen.append(line.rstrip())
            found = re.search(r"on (http://\S+)", line)
            if found:
                self.base_url = found.group(1)
            found = re.search(r"user id:\s+(\S+)", line)
            if found:
                self.user_id = found.group(1)
            if self.base_url and self.user_id:
                break
        if not (self.base_url and self.user_id):
            self.__exit__()
            raise RuntimeError("the local server did not start: " + " | ".join(seen[-3:]))
        stdout = proc.stdout
        threading.Thread(target=lambda: [None for _ in stdout], daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def run_demo(args: argparse.Namespace) -> int:
    """``koodrive-fast demo``."""
    from ._auth import BearerToken
    from ._client import Client
    from ._exceptions import IntegrityError
    from ._progress import TqdmProgress
    from ._options import UploadOptions
    from ._upload import _upload_hash_then_send, upload_file

    size: int = args.size
    container = "demo"
    with tempfile.TemporaryDirectory(prefix="koodrive-demo-") as tmp:
        root = Path(tmp)
        source = root / "demo.bin"
        print(f"writing a {format_size(size)} test file in {tmp} ...")
        _write_test_file(source, size)
        options = UploadOptions(
            checkpoint_dir=root / "checkpoints", part_size=args.part_size,
            concurrency=args.concurrency, resume=False, rapid=False,
        )
        with _ServerProcess(root / "server") as srv:
            print(f"local KooDrive server at {srv.base_url} (child process)")
            with Client(srv.base_url, BearerToken(srv.token, srv.user_id)) as client:
                common: dict[str, Any] = dict(container_id=container, options=options)
                with TqdmProgress(enabled=not args.no_progress) as bar:
                    result = upload_file(client, source, progress=bar, **common)
                print(f"uploaded {format_size(size)} in {result.parts} part(s) of "
                      f"{format_size(result.part_size)}: {_rate(size, result.seconds)}")
                print("downloading it back to verify ...")
                local = _file_sha256(source)
                try:  # Client.download checks the bytes against the server's SHA-256
                    back = client.download(result.file_id, root / "demo-back.bin",
                                           container_id=container)
                    remote = back.files[0].sha256
                except IntegrityError as exc:
                    remote = f"(download failed its check: {exc})"
                if not (local == remote == result.sha256):
                    _error(f"verification FAILED: local {local}, server {remote}, "
                           f"uploaded {result.sha256}")
                    return EXIT_FAILED
                print(f"verified: sha256 {remote}")
                print("baseline: hash the whole file, then upload (the PDS SDK pattern) ...")
                started = time.monotonic()
                baseline = _upload_hash_then_send(
                    client, source, file_name="demo-baseline.bin", **common
                )
                baseline_seconds = time.monotonic() - started
        print()
        print(f"{'mode':<22}{'seconds':>9}{'MB/s':>9}")
        print(f"{'pipelined (ours)':<22}{result.seconds:>9.2f}{size / result.seconds / 1e6:>9.0f}")
        print(f"{'hash, then upload':<22}{baseline_seconds:>9.2f}"
              f"{size / baseline_seconds / 1e6:>9.0f}")
        if result.seconds > 0:
            print(f"speed-up: {baseline_seconds / result.seconds:.2f}x "
                  f"(baseline sha256 {'matches' if baseline.sha256 == result.sha256 else 'DIFFERS'})")
    return EXIT_OK


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 22)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: Optional[list[str]] = None) -> int:
    """Stand-alone entry (``python -m koodrive_fast._cmd_upload``) for these two commands."""
    parser = argparse.ArgumentParser(prog="koodrive-fast")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
