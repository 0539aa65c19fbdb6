"""SigV4 query-string signing: AWS known answer, verification, tampering, expiry."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koodrive_fast.server._sigv4 import (
    MalformedPresign,
    PresignExpired,
    SignatureMismatch,
    presign_url,
    redact_url,
    verify_presigned,
)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KEYS = {"AK": "secret-key"}


def test_aws_documented_presigned_get_example() -> None:
    # AWS S3 docs, "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)"
    url = presign_url(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        expires=86400,
        signed_headers=("host",),
        now=dt.datetime(2013, 5, 24, 0, 0, 0, tzinfo=UTC),
    )
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt"
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def _sign(url: str = "http://127.0.0.1:9/b/F1?partNumber=2&uploadId=AB&X-Amz-Iteration-Hash-Ctx=eyJ%3D",
          length: int = 128, **kw: object) -> str:
    args: dict[str, object] = dict(access_key="AK", secret_key="secret-key", region="r1", expires=60,
                                   headers={"content-length": str(length)}, now=NOW)
    args.update(kw)
    return presign_url("PUT", url, **args)  # type: ignore[arg-type]


def _verify(url: str, *, length: int = 128, host: str | None = None, now: dt.datetime = NOW, method: str = "PUT") -> dict[str, str]:
    parts = urlsplit(url)
    headers = {"Host": host or parts.netloc, "Content-Length": str(length)}
    return verify_presigned(
        method, parts.path, parts.query, headers, secret_for=KEYS.get, region="r1",
        required_signed_headers=("content-length", "host"), now=now,
    ).params


def test_round_trip_keeps_all_params() -> None:
    params = _verify(_sign())
    assert params["partNumber"] == "2" and params["uploadId"] == "AB"
    assert params["X-Amz-Iteration-Hash-Ctx"] == "eyJ="
    assert params["X-Amz-SignedHeaders"] == "content-length;host"


@pytest.mark.parametrize(
    ("old", "new"),
    [("partNumber=2", "partNumber=3"), ("uploadId=AB", "uploadId=AC"), ("eyJ%3D", "eyK%3D"),
     ("X-Amz-Expires=60", "X-Amz-Expires=61"), ("/b/F1", "/b/F2")],
)
def test_tampering_any_signed_part_fails(old: str, new: str) -> None:
    url = _sign()
    assert old in url
    with pytest.raises(SignatureMismatch):
        _verify(url.replace(old, new, 1))


def test_wrong_content_length_or_host_fails() -> None:
    url = _sign()
    with pytest.raises(SignatureMismatch):
        _verify(url, length=129)
    with pytest.raises(SignatureMismatch):
        _verify(url, host="localhost:9")
    with pytest.raises(SignatureMismatch):
        _verify(url, method="GET")


def test_unknown_key_and_wrong_secret_fail() -> None:
    with pytest.raises(SignatureMismatch):
        _verify(_sign(access_key="OTHER"))
    with pytest.raises(SignatureMismatch):
        _verify(_sign(secret_key="not-the-secret"))


def test_expiry_boundary() -> None:
    url = _sign(expires=60)
    _verify(url, now=NOW + dt.timedelta(seconds=60))
    with pytest.raises(PresignExpired, match="Request has expired"):
        _verify(url, now=NOW + dt.timedelta(seconds=61))


@pytest.mark.parametrize("param", ["X-Amz-Signature", "X-Amz-Date", "X-Amz-Credential", "X-Amz-Expires",
                                   "X-Amz-Algorithm", "X-Amz-SignedHeaders"])
def test_missing_parameter_is_malformed(param: str) -> None:
    url = _sign()
    parts = urlsplit(url)
    query = "&".join(p for p in parts.query.split("&") if not p.startswith(param + "="))
    with pytest.raises(MalformedPresign, match=param):
        verify_presigned("PUT", parts.path, query, {"host": parts.netloc, "content-length": "128"},
                         secret_for=KEYS.get, now=NOW)


def test_required_signed_header_enforced() -> None:
    url = _sign(signed_headers=("host",), headers={})
    with pytest.raises(MalformedPresign, match="content-length"):
        _verify(url)


def test_presign_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="expires"):
        _sign(expires=0)
    with pytest.raises(ValueError, match="expires"):
        _sign(expires=604801)
    with pytest.raises(ValueError, match="host"):
        _sign(signed_headers=("content-length",))
    with pytest.raises(ValueError, match="timezone"):
        _sign(now=dt.datetime(2026, 1, 1))


def test_redact_url_hides_signature_and_credential() -> None:
    url = _sign()
    redacted = redact_url(url)
    qs = parse_qs(urlsplit(redacted).query)
    assert qs["X-Amz-Signature"] == ["***"] and qs["X-Amz-Credential"] == ["***"]
    assert qs["partNumber"] == ["2"]
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    assert signature not in redacted and "AK%2F" not in redacted


@given(
    path=st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8), min_size=1, max_size=3),
    value=st.text(max_size=20),
)
def test_round_trip_arbitrary_paths_and_values(path: list[str], value: str) -> None:
    from urllib.parse import quote

    url = "http://h:1/" + "/".join(quote(p, safe="") for p in path) + "?k=" + quote(value, safe="")
    params = _verify(_sign(url))
    assert params["k"] == value
