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
from typing import Any, Optional, Sequence

from ._cmd_common import UsageError as _UsageError
from ._cmd_common import add_connection_options, add_transfer_options, progress_reporter, transfer_flags
from ._cmd_common import connection_from_args as _connection
from ._cmd_common import positive_int_arg, size_arg
from ._cmd_common import print_error as _error
from ._sizes import format_size

__all__ = ["add_parser", "run", "run_demo"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


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
    up.add_argument("--part-size", type=size_arg, help="part size, e.g. 16MiB (default: auto)")
    up.add_argument(
        "--concurrency", type=positive_int_arg, help="parts in flight (default 8)"
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
    add_transfer_options(up)
    up.add_argument("--json", action="store_true", help="print one JSON object")
    up.add_argument("--no-progress", action="store_true", help="no progress bars (--progress none)")
    up.set_defaults(func=run)

    demo = subparsers.add_parser(
        "demo",
        help="upload a test file to an embedded local server and verify it",
        description="Start a local KooDrive-compatible server in a temporary directory, "
        "upload a test file with progress, download it back, verify its SHA-256 and "
        "compare the speed with hash-then-upload.",
    )
    demo.add_argument("--size", type=size_arg, default=128 * 1024 * 1024,
                      help="test file size (default 128MiB)")
    demo.add_argument("--part-size", type=size_arg, help="part size (default: auto)")
    demo.add_argument("--concurrency", type=positive_int_arg, default=8)
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--link-rate", default="1Gbit",
                      help="emulated link of the local server for the comparison, e.g. 2.5Gbit, "
                           "or 'unshaped' (default 1Gbit)")
    demo.set_defaults(func=run_demo)


def readable_file_size(path: str) -> int:
    """``path``'s size: :class:`UsageError` if it is missing or not a regular file (exit 2),
    :class:`CliError` with exit 1 if it cannot be read."""
    from ._cli import EXIT_FAILED, CliError

    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
    except FileNotFoundError:
        raise _UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise _UsageError(f"not a regular file: {path}") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_FAILED) from None
    import stat

    if not stat.S_ISREG(info.st_mode):
        raise _UsageError(f"not a regular file: {path}")
    return info.st_size


def run(args: argparse.Namespace) -> int:
    """``koodrive-fast upload``."""
    from ._exceptions import KooDriveError, ValidationError
    from ._planner import validate_part_size

    conn = _connection(args, part_size=args.part_size, concurrency=args.concurrency,
                       **transfer_flags(args))
    settings = conn.settings
    size = readable_file_size(args.file)
    if settings.part_size is not None:
        try:
            validate_part_size(settings.part_size, size, field=settings.source["part_size"])
        except ValidationError as exc:
            raise _UsageError(str(exc)) from None

    from ._upload import upload_file

    options = conn.upload_options(resume=not args.no_resume, rapid=args.rapid)
    client = conn.client()
    container_id = conn.container_id
    progress, close_progress = progress_reporter(args.progress, quiet=args.no_progress, label=args.file)
    try:
        with client:
            result = upload_file(
                client,
                args.file,
                parent_folder=args.parent,
                container_id=container_id,
                file_name=args.name,
                options=options,
                progress=progress,
            )
    except ValidationError as exc:
        close_progress()
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        close_progress()
        _error("interrupted; run the same command again to resume")
        return 130
    except (KooDriveError, OSError) as exc:
        close_progress()
        _error(f"upload failed: {exc}")
        return EXIT_FAILED
    close_progress()
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

    def __init__(self, data_dir: Path, extra: Sequence[str] = ()) -> None:
        import secrets

        self.token = secrets.token_urlsafe(24)
        self._data_dir = data_dir
        self.base_url = ""
        self.user_id = ""
        self._argv = [
            # "--token=T": a generated token may start with "-", which argparse would
            # otherwise take for an option
            sys.executable, "-m", "koodrive_fast._cli", "serve", "--port", "0",
            f"--token={self.token}", "--no-fsync", "--quiet", f"--data-dir={data_dir}", *extra,
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
    from ._config import DEFAULT_LIMITS
    from ._planner import validate_file_size, validate_part_size
    from ._upload import _upload_hash_then_send, upload_file

    size: int = args.size
    container = "demo"
    validate_file_size(size, DEFAULT_LIMITS, "--size")  # every check before anything is written
    link: list[str] = []
    if args.link_rate != "unshaped":
        from ._sizes import parse_rate

        try:
            rate = parse_rate(args.link_rate)
        except ValueError as exc:
            raise _UsageError(f"--link-rate: {exc}") from None
        link = [f"--link-rate={args.link_rate}"]
    if args.part_size is not None:
        validate_part_size(args.part_size, size, DEFAULT_LIMITS, "--part-size")
    with tempfile.TemporaryDirectory(prefix="koodrive-demo-") as tmp:
        root = Path(tmp)
        options = UploadOptions(
            checkpoint_dir=root / "checkpoints", part_size=args.part_size,
            concurrency=args.concurrency, resume=False, rapid=False,
        )
        source = root / "demo.bin"
        print(f"writing a {format_size(size)} test file in {tmp} ...")
        _write_test_file(source, size)
        with _ServerProcess(root / "server", link) as srv:
            print(f"local KooDrive server at {srv.base_url} (child process)")
            if link:
                print(f"emulated link: {rate * 8 / 1e9:g} Gbit/s, as over a real network (unshaped "
                      "loopback, where client and server share the CPU, hides the pipeline's gain)")
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
        print("pipelined hashes and sends in one pass, so it takes about as long as the slower of "
              "the two; hash-then-upload reads the file twice and takes their sum.")
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
