"""Download benchmark: ``Client.download`` with parallel ranges vs one GET stream.

    python3 benchmarks/bench_download.py [--size 256MiB] [--chunk-size 16MiB] [--concurrency 4]

Starts ``koodrive-fast serve`` in a child process (its own GIL), uploads one
test file, then downloads it twice into a temporary directory: with
``concurrency`` ranged GETs, and with ``concurrency=1`` and one chunk (a single
GET stream), each twice, alternating (the first run also warms the server's
page cache).  Both include the final SHA-256 check of the written file.
Prints wall time and MB/s of each, and the client's peak RSS.  On loopback
the CPU, not the connection, is the limit, so ranges gain little there;
they are for links where one TCP stream is slow.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from koodrive_fast import BearerToken, Client, UploadOptions, parse_size  # noqa: E402
from koodrive_fast._cmd_upload import _ServerProcess, _write_test_file  # noqa: E402
from koodrive_fast._download import DownloadConfig  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("256MiB"))
    parser.add_argument("--chunk-size", type=parse_size, default=parse_size("16MiB"))
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kd-bench-dl-") as tmp:
        root = Path(tmp)
        source = root / "source.bin"
        _write_test_file(source, args.size)
        with _ServerProcess(root / "server") as srv:
            with Client(srv.base_url, BearerToken(srv.token, srv.user_id)) as client:
                uploaded = client.upload(source, container_id="bench",
                                         options=UploadOptions(rapid=False, resume=False))
                modes = [
                    (f"ranges x{args.concurrency}",
                     DownloadConfig(chunk_size=args.chunk_size, concurrency=args.concurrency)),
                    ("one stream", DownloadConfig(chunk_size=max(args.size, 1), concurrency=1)),
                ]
                print(f"{'mode':<14}{'seconds':>9}{'MB/s':>8}")
                for label, config in modes + modes:
                    target = root / f"out-{label.split()[0]}.bin"
                    started = time.monotonic()
                    result = client.download(uploaded.file_id, target, container_id="bench",
                                             config=config)
                    seconds = time.monotonic() - started
                    assert result.files[0].sha256 == uploaded.sha256
                    print(f"{label:<14}{seconds:>9.2f}{args.size / seconds / 1e6:>8.0f}")
                    target.unlink()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"client peak RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
