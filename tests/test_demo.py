"""`koodrive-fast demo`: the README's first command."""

from __future__ import annotations

from pathlib import Path

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


def test_demo_server_starts_with_a_token_that_looks_like_an_option(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A generated token may start with "-" (1 in 64); the child server must still start."""
    import secrets

    from koodrive_fast import ApiError, AuthenticationError, BearerToken, Client
    from koodrive_fast._cmd_upload import _ServerProcess

    monkeypatch.setattr(secrets, "token_urlsafe", lambda n=None: "-looks-like-an-option")
    with _ServerProcess(tmp_path / "server") as srv:
        assert srv.token == "-looks-like-an-option"
        with Client(srv.base_url, BearerToken(srv.token, srv.user_id)) as client:
            with pytest.raises(ApiError) as caught:  # unknown file, but authenticated
                client.file_detail("F" + "x" * 32)
            assert not isinstance(caught.value, AuthenticationError)
