"""Auth helpers: trace ids, X-Date, preHash/proofCode (brief §9.4 vector), app-auth HMAC."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from koodrive_fast._auth import (
    AppCredentials,
    BearerToken,
    app_signature,
    canonical_request,
    format_x_date,
    new_trace_id,
    parse_app_authorization,
    parse_x_date,
    pre_hash,
    proof_code,
    proof_origin,
    proof_range,
)
from koodrive_fast._exceptions import ValidationError

USER_ID = "1505084218764547200"
VECTOR_SIZE = 12_582_912


@pytest.fixture(scope="module")
def vector_bytes() -> bytes:
    """The brief's §9.4 file: 12 MiB where byte i = i mod 251."""
    block = bytes(range(251))
    return (block * (VECTOR_SIZE // 251 + 1))[:VECTOR_SIZE]


def test_trace_ids_are_58_chars_and_unique() -> None:
    ids = {new_trace_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_]{58}", t) for t in ids)


def test_format_x_date() -> None:
    assert format_x_date(datetime(2025, 11, 3, 7, 1, 40, tzinfo=timezone.utc)) == "20251103T070140Z"
    plus8 = timezone(timedelta(hours=8))
    assert format_x_date(datetime(2025, 11, 3, 15, 1, 40, tzinfo=plus8)) == "20251103T070140Z"
    now = format_x_date()
    assert re.fullmatch(r"\d{8}T\d{6}Z", now)
    assert abs((parse_x_date(now) - datetime.now(timezone.utc)).total_seconds()) < 5
    with pytest.raises(ValueError):
        parse_x_date("2025-11-03T07:01:40Z")


def test_pre_hash_vector(vector_bytes: bytes, tmp_path: Path) -> None:
    expected = "2bce1ba628720664be4b9fdd77aae0678e5f0f3f02fc6ff641ec879094f6a404"
    assert pre_hash(vector_bytes) == expected
    path = tmp_path / "v.bin"
    path.write_bytes(vector_bytes[:5000])
    assert pre_hash(path) == expected
    assert pre_hash(str(path)) == expected
    assert pre_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_proof_code_worked_vector(vector_bytes: bytes, tmp_path: Path) -> None:
    """Brief §9.4: X-User-Id 1505084218764547200 → range [7918831, 7918839) → 1efc915d…"""
    assert hashlib.sha256(USER_ID.encode()).hexdigest() == (
        "dc96225c4b20b4b2525a0f3826fd4e57ae07d6b266f8d774db295d865032d035"
    )
    assert proof_range(VECTOR_SIZE, USER_ID) == (7_918_831, 7_918_839)
    expected = "1efc915d1274d56c3a2800a0eadaf508be4ea8fbb30093445d94b7864a5c578b"
    assert proof_code(vector_bytes, VECTOR_SIZE, USER_ID) == expected
    path = tmp_path / "v.bin"
    path.write_bytes(vector_bytes)
    assert proof_code(path, VECTOR_SIZE, USER_ID) == expected


def test_proof_code_edges() -> None:
    assert proof_code(b"", 0, USER_ID) is None
    start, end = proof_range(3, "anything")
    assert 0 <= start < 3 and end == min(start + 8, 3)
    assert proof_code(b"abc", 3, "anything") == hashlib.sha256(b"abc"[start:end]).hexdigest()
    with pytest.raises(ValidationError):
        proof_code(b"abc", -1, USER_ID)
    with pytest.raises(ValidationError, match="fewer"):
        proof_code(b"ab", 1000, USER_ID)


def test_proof_origin_choices() -> None:
    assert proof_origin(AppCredentials("app", "secret", USER_ID)) == USER_ID
    assert proof_origin(BearerToken("tok", USER_ID)) == "Bearer tok"


def test_credentials_hide_secrets_and_validate() -> None:
    assert "s3cret" not in repr(BearerToken("s3cret", "u"))
    assert "s3cret" not in repr(AppCredentials("app", "s3cret", "u"))
    assert BearerToken("tok", "u").authorization() == "Bearer tok"
    with pytest.raises(ValidationError) as info:
        BearerToken("", "u")
    assert info.value.field == "token"
    with pytest.raises(ValidationError):
        BearerToken("tok\n", "u")
    with pytest.raises(ValidationError) as info:
        AppCredentials("a,b", "s", "u")
    assert info.value.field == "app_id"


HEADERS = {"Host": "10.0.0.1:8443", "X-Date": "20240909T033325Z", "X-User-Id": USER_ID,
           "Content-Type": "application/json"}
BODY = b'{"fileId":"F1"}'


def test_canonical_request_by_hand() -> None:
    expected = "\n".join([
        "POST",
        "/koodrive/ose/v1/files/complete/",
        "a=1&b=&z=%20x",
        f"host:10.0.0.1:8443\nx-date:20240909T033325Z\nx-user-id:{USER_ID}\n",
        "host;x-date;x-user-id",
        hashlib.sha256(BODY).hexdigest(),
    ])
    got = canonical_request(
        "post", "/koodrive/ose/v1/files/complete", "z=%20x&b=&a=1", HEADERS, BODY
    )
    assert got == expected
    # path segments are encoded from their decoded form; trailing slash kept once
    uri = canonical_request("GET", "/a%20b/c d/", "", HEADERS, b"").split("\n")[1]
    assert uri == "/a%20b/c%20d/"


def test_app_signature_and_header() -> None:
    canonical = canonical_request("POST", "/p", "", HEADERS, BODY)
    string_to_sign = "HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(b"secret", string_to_sign.encode(), hashlib.sha256).hexdigest()
    def sign(headers: dict[str, str], body: bytes) -> str:
        return app_signature(
            "secret", method="POST", path="/p", query="", headers=headers, body=body
        )

    assert sign(HEADERS, BODY) == expected
    creds = AppCredentials("myapp", "secret", USER_ID)
    value = creds.authorization(method="POST", path="/p", query="", headers=HEADERS, body=BODY)
    assert value == (
        f"HMAC-SHA256 AppId=myapp,SignedHeaders=host;x-date;x-user-id,Signature={expected}"
    )
    assert parse_app_authorization(value) == ("myapp", ("host", "x-date", "x-user-id"), expected)
    # any change to a signed input changes the signature
    other = dict(HEADERS, **{"X-Date": "20240909T033326Z"})
    assert sign(other, BODY) != expected
    assert sign(HEADERS, b"{}") != expected


def test_app_signature_requires_signed_headers() -> None:
    with pytest.raises(ValidationError) as info:
        canonical_request("POST", "/p", "", {"Host": "h", "X-Date": "d"}, b"")
    assert info.value.field == "headers.x-user-id"


def test_parse_app_authorization_rejects_garbage() -> None:
    for bad in ("Bearer x", "HMAC-SHA256 AppId=a", "HMAC-SHA256 AppId=a,SignedHeaders,Signature=s"):
        with pytest.raises(ValueError):
            parse_app_authorization(bad)
