"""`koodrive-fast demo`: the README's first command."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from koodrive_fast._cli import main


def test_demo_uploads_downloads_and_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--size", "12MiB", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "verified: sha256" in out
    assert "emulated link: 1 Gbit/s" in out  # the comparison runs where it is fair
    assert "takes about as long as the slower of the two" in out
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


def test_demo_server_ignores_a_source_tree_in_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """After ``pip install .`` in a checkout, ``./koodrive_fast`` has no compiled core; the
    child server must import the installed package, not the tree it was started from."""
    from koodrive_fast._cmd_upload import _ServerProcess

    decoy = tmp_path / "checkout" / "koodrive_fast"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text('raise ImportError("decoy source tree imported")\n')
    monkeypatch.chdir(decoy.parent)
    with _ServerProcess(tmp_path / "server") as srv:
        response = httpx.get(srv.base_url + "/", timeout=10)
        assert response.status_code < 500
