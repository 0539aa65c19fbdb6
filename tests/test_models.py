"""Models: camelCase JSON round trips, lenient parsing, redacted reprs, exception tree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koodrive_fast import _exceptions as exc
from koodrive_fast._models import (
    CreateFileResult,
    DownloadLink,
    FileDetail,
    MultiPartInfo,
    parse_code,
)
from koodrive_fast._redact import redact_headers, redact_text, redact_url

SIGNED_URL = (
    "https://obs.example.com/bucket/obj?partNumber=2&uploadId=00AB"
    "&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDSECRET%2F20240621%2Fr%2Fs3%2Faws4_request"
    "&X-Amz-Date=20240621T082041Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=content-length%3Bhost"
    "&X-Amz-Signature=deadbeefcafebabe0123456789"
)


def test_part_to_json_uses_camel_case_and_omits_none() -> None:
    part = MultiPartInfo(part_number=2, part_size=128, part_offset=128, hash_ctx=(1,) * 8)
    assert part.to_json() == {
        "partNumber": 2, "partSize": 128, "partOffset": 128, "hashCtx": [1] * 8,
    }
    assert MultiPartInfo(1, 64).to_json() == {"partNumber": 1, "partSize": 64}


def test_part_request_json_excludes_output_fields() -> None:
    part = MultiPartInfo(1, 64, 0, upload_url="http://x/y", part_id="p")
    assert "uploadUrl" in part.to_json()
    assert part.to_json(include_output=False) == {"partNumber": 1, "partSize": 64, "partOffset": 0}


words = st.lists(st.integers(0, 2**32 - 1), min_size=8, max_size=8).map(tuple)


@given(
    number=st.integers(1, 10_000),
    size=st.integers(0, 5 * 2**30),
    offset=st.none() | st.integers(0, 200 * 2**30),
    ctx=st.none() | words,
)
def test_part_json_round_trip(
    number: int, size: int, offset: int | None, ctx: tuple[int, ...] | None
) -> None:
    part = MultiPartInfo(number, size, offset, ctx, "http://h/p?a=1", "pid")
    assert MultiPartInfo.from_json(part.to_json()) == part


def test_part_from_json_is_lenient() -> None:
    part = MultiPartInfo.from_json(
        {"partNumber": "3", "partSize": "64", "partOffset": 128, "hashCtx": ["1"] * 8,
         "somethingNew": {"x": 1}}
    )
    assert part == MultiPartInfo(3, 64, 128, (1,) * 8)


def test_part_from_json_without_part_number_fails() -> None:
    with pytest.raises(ValueError, match="partNumber"):
        MultiPartInfo.from_json({"partSize": 3})


@pytest.mark.parametrize("bad", [True, 1.5, "2", None])
def test_part_rejects_non_int_fields(bad: object) -> None:
    with pytest.raises(exc.ValidationError) as info:
        MultiPartInfo(bad, 64)  # type: ignore[arg-type]
    assert info.value.field == "partNumber"


def test_part_rejects_non_int_ctx_words() -> None:
    with pytest.raises(exc.ValidationError, match="hashCtx"):
        MultiPartInfo(2, 64, 64, (1, 2, "3"))  # type: ignore[arg-type]
    with pytest.raises(exc.ValidationError, match="hashCtx"):
        MultiPartInfo(2, 64, 64, "12345678")  # type: ignore[arg-type]


def test_part_list_ctx_becomes_tuple() -> None:
    part = MultiPartInfo(2, 64, 64, [5] * 8)  # type: ignore[arg-type]
    assert part.hash_ctx == (5,) * 8
    hash(part)  # frozen and hashable


def test_part_repr_redacts_signature_and_credential() -> None:
    text = repr(MultiPartInfo(2, 64, 64, upload_url=SIGNED_URL))
    assert "deadbeef" not in text and "AKIDSECRET" not in text
    assert "partNumber=2" in text and "X-Amz-Signature=REDACTED" in text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(0, 0), ("0", 0), ("13000402", 13000402), (13000402, 13000402), ("APIGW.0301", "APIGW.0301"),
     (None, None), (0.0, 0)],
)
def test_parse_code(raw: object, expected: object) -> None:
    assert parse_code(raw) == expected


def test_create_result_from_json_ignores_unknown_fields() -> None:
    result = CreateFileResult.from_json(
        {"code": "0", "msg": "成功", "fileId": "F1", "fileName": "a.bin", "containerId": "c",
         "uploadId": "U", "parentFolder": ["root"], "rapidUpload": False, "exist": False,
         "multiParts": [{"partNumber": 1, "partSize": 64, "partOffset": 0, "uploadUrl": "u"}],
         "brandNewField": [1, 2]}
    )
    assert result.file_id == "F1" and result.upload_id == "U"
    assert result.parent_folder == ("root",)
    assert result.multi_parts == (MultiPartInfo(1, 64, 0, upload_url="u"),)
    assert not result.finished
    assert result.raw["brandNewField"] == [1, 2]


def test_create_result_flash_hit_and_missing_fields() -> None:
    result = CreateFileResult.from_json({"fileId": "F2", "rapidUpload": True})
    assert result.finished and result.multi_parts == () and result.upload_id is None
    with pytest.raises(ValueError, match="fileId"):
        CreateFileResult.from_json({"rapidUpload": True})


def test_file_detail_from_json() -> None:
    detail = FileDetail.from_json(
        {"fileId": "F", "fileName": "n", "length": "100", "sha256": "ab" * 32, "type": 3,
         "fileType": "45", "status": "completed", "extra": 1}
    )
    assert detail.length == 100 and detail.file_type == "45" and detail.status == "completed"
    assert detail.sha256 == "ab" * 32


def test_download_link_repr_redacts_and_ok() -> None:
    link = DownloadLink.from_json({"fileId": "F", "fileName": "n", "url": SIGNED_URL, "code": "0"})
    assert link.ok and link.code == 0
    assert "deadbeef" not in repr(link)
    failed = DownloadLink.from_json({"fileId": "G", "code": 13000309, "msg": "missing"})
    assert not failed.ok and failed.url is None


def test_redact_url_keeps_other_params() -> None:
    red = redact_url(SIGNED_URL)
    assert "deadbeef" not in red and "AKIDSECRET" not in red
    assert "partNumber=2" in red and "X-Amz-Expires=3600" in red
    assert redact_url("https://h/p?x-amz-signature=abc") == "https://h/p?x-amz-signature=REDACTED"


def test_redact_text_and_headers() -> None:
    text = redact_text(
        f"PUT {SIGNED_URL} with Authorization: Bearer tok123 and Signature=" + "a" * 64
    )
    assert "deadbeef" not in text and "tok123" not in text and "a" * 64 not in text
    headers = redact_headers({"Authorization": "Bearer x", "X-User-Id": "u"})
    assert headers == {"Authorization": "REDACTED", "X-User-Id": "u"}


def test_exception_tree() -> None:
    assert issubclass(exc.ValidationError, ValueError)
    assert issubclass(exc.ValidationError, exc.KooDriveError)
    for cls in (exc.AuthenticationError, exc.RateLimitedError, exc.UploadTaskMissingError,
                exc.IntegrityError, exc.MalformedResponseError):
        assert issubclass(cls, exc.ApiError)
    for root_child in (exc.ApiError, exc.TransportError, exc.UploadUrlExpiredError,
                       exc.PartUploadError, exc.FileChangedError):
        assert issubclass(root_child, exc.KooDriveError)
    assert "ApiError" in (exc.__doc__ or "") and "TransportError" in (exc.__doc__ or "")


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [(13000401, 400, exc.UploadTaskMissingError), (13000402, 400, exc.IntegrityError),
     ("APIGW.0301", 401, exc.AuthenticationError), (None, 401, exc.AuthenticationError),
     ("APIGW.0308", 429, exc.RateLimitedError), (13000201, 500, exc.ApiError),
     (13000102, 400, exc.ApiError)],
)
def test_api_error_mapping(code: object, status: int, cls: type) -> None:
    err = exc.api_error(code, "m", http_status=status, trace_id="t")  # type: ignore[arg-type]
    assert type(err) is cls
    assert err.code == code and err.http_status == status and err.trace_id == "t"


def test_validation_error_names_field_and_rule() -> None:
    err = exc.ValidationError("multiParts[3].partSize", "must be a multiple of 64")
    assert err.field == "multiParts[3].partSize"
    assert str(err) == "multiParts[3].partSize: must be a multiple of 64"
