"""`koodrive-fast demo`: the README's first command."""

from __future__ import annotations

import pytest

from koodrive_fast._cli import main


def test_demo_uploads_downloads_and_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--size", "12MiB", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "verified: sha256" in out
    assert "pipelined (ours)" in out and "hash, then upload" in out
    assert "baseline sha256 matches" in out


def test_demo_rejects_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--size", "huge"]) == 2
    assert "not a size" in capsys.readouterr().err
