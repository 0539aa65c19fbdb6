"""The README's Python example of the local server runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_local_server_example_uploads_and_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (example,) = [block for block in python_blocks() if "LocalServer()" in block]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # checkpoints stay here
    data = bytes(range(256)) * 40_000  # 10 MB: two parts with the default 8 MiB part size
    (tmp_path / "big.iso").write_bytes(data)
    exec(compile(example, "README.md", "exec"), {})
    assert (tmp_path / "big-back.iso").read_bytes() == data
    import hashlib

    assert capsys.readouterr().out.split() == ["big.iso", hashlib.sha256(data).hexdigest()]


def test_readme_first_commands_are_the_ci_commands() -> None:
    first = re.search(r"```console\n(.*?)```", README.read_text(), flags=re.S)
    assert first is not None
    lines = first.group(1).splitlines()
    assert lines[0] == "$ python3 -m pip install . && koodrive-fast demo"
    assert lines[1] == "$ python3 -m pip install -e '.[test]' && python3 -m pytest -q"
    assert "python3 -m pip install -q -e '.[test]' && python3 -m pytest -q" in (
        README.parent / ".ci" / "run").read_text()


def test_readme_points_to_what_readers_can_see() -> None:
    text = README.read_text()
    assert "closing notes" not in text
    assert (README.parent / "benchmarks" / "RESULTS.md").exists()
    assert "externally-managed" in text and "python3 -m venv" in text
