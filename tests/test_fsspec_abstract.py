"""fsspec's own abstract test-suite (``fsspec.tests.abstract``) run against ``koodrive://``.

Every test of the put, get, copy, open and pipe classes runs, none skipped
(137 cases with fsspec 2026.9).  What does not apply:

* ``fsspec.tests.abstract.mv`` holds no abstract class (its tests exercise the
  local filesystem only); ``mv`` is tested in ``test_fsspec.py``.
* The copy tests need no server-side copy: ``cp_file`` downloads and uploads
  again as a flash upload (KooDrive's copy/move jobs leave ``newFilePath``
  undocumented, and the local server runs delete jobs only).
* ``supports_empty_directories`` is True: KooDrive has real folders.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fsspec")

import fsspec.tests.abstract as abstract  # noqa: E402

from koodrive_fast._fsspec import KooDriveFileSystem  # noqa: E402
from koodrive_fast._options import UploadOptions  # noqa: E402
from koodrive_fast.server import LocalServer  # noqa: E402


class KooDriveFixtures(abstract.AbstractFixtures):  # type: ignore[misc]
    @pytest.fixture
    def fs(self, srv: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KooDriveFileSystem]:
        checkpoints = tmp_path_factory.mktemp("checkpoints")
        filesystem = KooDriveFileSystem(
            endpoint=srv.base_url, token=srv.token, user_id=srv.user_id, container_id="c1",
            client_kwargs={"limits": srv.limits}, skip_instance_cache=True,
            upload_options=UploadOptions(checkpoint_dir=checkpoints),
        )
        yield filesystem
        filesystem.close()

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return posixpath.join

    @pytest.fixture
    def fs_path(self) -> str:
        return f"/abstract-{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return True


class TestKooDrivePut(abstract.AbstractPutTests, KooDriveFixtures):  # type: ignore[misc]
    pass


class TestKooDriveGet(abstract.AbstractGetTests, KooDriveFixtures):  # type: ignore[misc]
    pass


class TestKooDriveCopy(abstract.AbstractCopyTests, KooDriveFixtures):  # type: ignore[misc]
    pass


class TestKooDriveOpen(abstract.AbstractOpenTests, KooDriveFixtures):  # type: ignore[misc]
    pass


class TestKooDrivePipe(abstract.AbstractPipeTests, KooDriveFixtures):  # type: ignore[misc]
    pass
