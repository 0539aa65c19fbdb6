"""Config-file profiles: precedence, credentials, private files, ``config`` and ``upload --profile``."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Iterator

import pytest

from koodrive_fast import AppCredentials, BearerToken, ConfigError
from koodrive_fast._auth import TokenProvider
from koodrive_fast._cli import main
from koodrive_fast._profiles import resolve
from koodrive_fast.server import LocalServer

from _upload_helpers import CONTAINER, download, make_file

SECRET = "tok-0123456789abcdefWXYZ"


def write_config(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in ("ENDPOINT", "TOKEN", "USER_ID", "CONTAINER_ID", "PROFILE", "APP_ID",
                 "APP_SECRET", "TOKEN_COMMAND", "PART_SIZE", "CONCURRENCY"):
        monkeypatch.delenv(f"KOODRIVE_{name}", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return {"KOODRIVE_CONFIG": str(tmp_path / "config.toml")}


WORK = f"""
[profile.work]
endpoint = "https://profile.example"
user_id = "u-profile"
container_id = "c-profile"
token = "{SECRET}"
part_size = "16MiB"
bwlimit = "50MB/s"

[profile.apps]
endpoint = "https://apps.example"
user_id = "u-apps"
container_id = "c-apps"
app_id = "app-1"
app_secret = "app-secret-value"
"""


def test_precedence_flags_environment_profile_defaults(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(tmp_path, WORK)
    settings = resolve({}, profile="work", environ=env)
    assert (settings.endpoint, settings.source["endpoint"]) == (
        "https://profile.example", f"profile work ({path})")
    assert settings.part_size == 16 << 20 and settings.bwlimit == 50_000_000
    assert (settings.concurrency, settings.source["concurrency"]) == (8, "default")

    env["KOODRIVE_ENDPOINT"] = "https://env.example"
    env["KOODRIVE_CONCURRENCY"] = "3"
    settings = resolve({}, profile="work", environ=env)
    assert (settings.endpoint, settings.source["endpoint"]) == ("https://env.example", "KOODRIVE_ENDPOINT")
    assert (settings.concurrency, settings.source["concurrency"]) == (3, "KOODRIVE_CONCURRENCY")

    settings = resolve({"endpoint": "https://flag.example", "concurrency": 5, "user_id": None},
                       profile="work", environ=env)
    assert (settings.endpoint, settings.source["endpoint"]) == ("https://flag.example", "--endpoint")
    assert settings.concurrency == 5 and settings.user_id == "u-profile"


def test_profile_chosen_by_environment_or_default_profile(tmp_path: Path, env: dict[str, str]) -> None:
    write_config(tmp_path, 'default_profile = "apps"\n' + WORK)
    assert resolve({}, environ=env).profile == "apps"
    env["KOODRIVE_PROFILE"] = "work"
    assert resolve({}, environ=env).profile == "work"
    assert resolve({}, profile="apps", environ=env).profile == "apps"
    with pytest.raises(ConfigError, match=r"no profile 'nope' .*apps, work"):
        resolve({}, profile="nope", environ=env)


def test_credentials_come_whole_from_one_layer(tmp_path: Path, env: dict[str, str]) -> None:
    write_config(tmp_path, WORK)
    apps = resolve({}, profile="apps", environ=env)
    assert isinstance(apps.credentials(), AppCredentials)
    env["KOODRIVE_TOKEN"] = "env-token"
    mixed = resolve({}, profile="apps", environ=env)
    assert (mixed.token, mixed.app_id, mixed.app_secret) == ("env-token", None, None)
    assert isinstance(mixed.credentials(), BearerToken)


def test_one_credential_kind_per_layer(tmp_path: Path, env: dict[str, str]) -> None:
    write_config(tmp_path, f'[profile.p]\ntoken = "{SECRET}"\ntoken_command = "echo x"\n')
    with pytest.raises(ConfigError, match="only one of token, token_command"):
        resolve({}, profile="p", environ=env)
    write_config(tmp_path, '[profile.p]\napp_id = "a"\n')
    with pytest.raises(ConfigError, match="sets app_id but not app_secret"):
        resolve({}, profile="p", environ=env)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_readable_file_with_a_secret_is_refused(tmp_path: Path, env: dict[str, str],
                                                  mode: int) -> None:
    path = write_config(tmp_path, WORK, mode)
    with pytest.raises(ConfigError, match=f"chmod 600 {path}") as caught:
        resolve({}, profile="work", environ=env)
    assert SECRET not in str(caught.value)


def test_a_readable_file_without_secrets_is_fine(tmp_path: Path, env: dict[str, str]) -> None:
    write_config(tmp_path, '[profile.p]\nuser_id = "u"\ntoken_command = "echo t"\n', 0o644)
    assert isinstance(resolve({}, profile="p", environ=env).credentials(), TokenProvider)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[profile.p]\npart_sise = "8MiB"\n', "profile.p.part_sise"),
        ('[profile.p]\npart_size = "lots"\n', "profile.p.part_size"),
        ("[profile.p]\nconcurrency = 0\n", "profile.p.concurrency"),
        ("[profile.p]\nauto_rename = 7\n", "profile.p.auto_rename"),
        ("[profile.p\n", "not valid TOML"),
        ('colour = "blue"\n', "colour"),
    ],
)
def test_bad_config_is_a_config_error(tmp_path: Path, env: dict[str, str], text: str,
                                      where: str) -> None:
    write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=where):
        resolve({}, profile="p", environ=env)


def test_bad_environment_value_names_the_variable(env: dict[str, str]) -> None:
    env["KOODRIVE_PART_SIZE"] = "huge"
    with pytest.raises(ConfigError, match="^KOODRIVE_PART_SIZE: not a size"):
        resolve({}, environ=env)


def test_repr_and_display_mask_secrets(tmp_path: Path, env: dict[str, str]) -> None:
    write_config(tmp_path, WORK)
    settings = resolve({}, profile="work", environ=env)
    assert SECRET not in repr(settings)
    assert settings.display()["token"]["value"] == "****WXYZ"
    apps = resolve({}, profile="apps", environ=env)
    assert apps.display()["app_secret"]["value"] == "****"  # short secrets: nothing shown


def test_config_command_json(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, WORK)
    monkeypatch.setenv("KOODRIVE_CONFIG", str(path))
    monkeypatch.setenv("KOODRIVE_CONTAINER_ID", "c-env")
    assert main(["config", "--profile", "work", "--json"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    document = json.loads(out)
    assert document["profile"] == "work" and document["configFile"] == str(path)
    shown = document["settings"]
    assert shown["container_id"] == {"value": "c-env", "source": "KOODRIVE_CONTAINER_ID"}
    assert shown["token"] == {"value": "****WXYZ", "source": f"profile work ({path})"}
    assert shown["part_size"]["value"] == 16 << 20

    assert main(["config", "--profile", "work"]) == 0
    text = capsys.readouterr().out
    assert SECRET not in text and "16 MiB" in text and "[KOODRIVE_CONTAINER_ID]" in text


def test_config_command_errors_are_one_line(tmp_path: Path, env: dict[str, str],
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, WORK, 0o644)
    monkeypatch.setenv("KOODRIVE_CONFIG", str(path))
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("koodrive-fast: error: ") and err.count("\n") == 1
    assert f"chmod 600 {path}" in err and SECRET not in err


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    with LocalServer(fsync=False) as server:
        yield server


@pytest.mark.parametrize("credential", ["token", "token_command"])
def test_upload_with_a_profile(srv: LocalServer, tmp_path: Path, env: dict[str, str],
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str], credential: str) -> None:
    if credential == "token":
        line = f'token = "{srv.token}"'
    else:
        command = shlex.join([sys.executable, "-c", f"print({srv.token!r})"])
        line = f"token_command = {json.dumps(command)}"
    path = write_config(tmp_path, f"""
[profile.local]
endpoint = "{srv.base_url}"
user_id = "{srv.user_id}"
container_id = "{CONTAINER}"
{line}
concurrency = 2
""")
    monkeypatch.setenv("KOODRIVE_CONFIG", str(path))
    source = make_file(tmp_path, 150_000, seed=21)
    assert main(["upload", str(source), "--profile", "local", "--json", "--no-progress",
                 "--no-rapid"]) == 0
    result = json.loads(capsys.readouterr().out)
    with srv.client() as client:
        assert download(client, result["fileId"]) == source.read_bytes()


def test_upload_flag_beats_a_bad_profile_token(srv: LocalServer, tmp_path: Path,
                                               env: dict[str, str],
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, f"""
[profile.local]
endpoint = "{srv.base_url}"
user_id = "{srv.user_id}"
container_id = "{CONTAINER}"
token = "wrong-token-from-the-profile"
""")
    monkeypatch.setenv("KOODRIVE_CONFIG", str(path))
    source = make_file(tmp_path, 5000, seed=22)
    assert main(["upload", str(source), "--profile", "local", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "wrong-token-from-the-profile" not in err
    assert main(["upload", str(source), "--profile", "local", "--token", srv.token,
                 "--json", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    with srv.client() as client:
        assert download(client, result["fileId"]) == source.read_bytes()


def test_upload_takes_checkpoint_dir_from_the_profile(srv: LocalServer, tmp_path: Path,
                                                      env: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    path = write_config(tmp_path, f"""
[profile.local]
endpoint = "{srv.base_url}"
user_id = "{srv.user_id}"
container_id = "{CONTAINER}"
token = "{srv.token}"
checkpoint_dir = "{blocker / 'checkpoints'}"
""")
    monkeypatch.setenv("KOODRIVE_CONFIG", str(path))
    source = make_file(tmp_path, 12 << 20, seed=23)  # two parts: an upload that checkpoints
    assert main(["upload", str(source), "--profile", "local", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("koodrive-fast: error: ") and "checkpoint" in err


@pytest.mark.parametrize(("text", "rate"), [('"100Mbit"', 12_500_000), ('"8MiB/s"', 8 << 20),
                                            ("1000", 1000)])
def test_bwlimit_uses_the_one_rate_parser(tmp_path: Path, env: dict[str, str], text: str,
                                          rate: int) -> None:
    write_config(tmp_path, f"[profile.p]\nbwlimit = {text}\n")
    assert resolve({}, profile="p", environ=env).bwlimit == rate
