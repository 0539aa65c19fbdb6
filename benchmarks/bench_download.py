"""Download benchmark: ``Client.download`` with parallel ranges vs one GET stream.

    python3 benchmarks/bench_download.py [--size 256MiB] [--chunk-size 16MiB] [--concurrency 4]

Starts ``koodrive-fast serve`` in a child process (its own GIL; bodies kept), uploads one
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

from _bench_common import CONTAINER, TOKEN, start_server, stop_server, write_file

from koodrive_fast import BearerToken, Client, UploadOptions, parse_size
from koodrive_fast._download import DownloadConfig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("256MiB"))
    parser.add_argument("--chunk-size", type=parse_size, default=parse_size("16MiB"))
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kd-bench-dl-") as tmp:
        root = Path(tmp)
        source = root / "source.bin"
        write_file(source, args.size)
        server, endpoint, user_id = start_server(root / "server", keep_bodies=True)
        try:
            with Client(endpoint, BearerToken(TOKEN, user_id)) as client:
                uploaded = client.upload(source, container_id=CONTAINER,
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
                    result = client.download(uploaded.file_id, target,
                                             container_id=CONTAINER, config=config)
                    seconds = time.monotonic() - started
                    assert result.files[0].sha256 == uploaded.sha256
                    print(f"{label:<14}{seconds:>9.2f}{args.size / seconds / 1e6:>8.0f}")
                    target.unlink()
        finally:
            stop_server(server)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"client peak RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
