"""HashState and the X-Amz-Iteration-Hash-Ctx encoding (protocol doc §9.2-9.4)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koodrive_fast import HashState

# §9.3: the documented part-46 value, after URL-decoding %3D -> =
PART46_CTX = (
    "eyJtZF9sZW4iOjMyLCJudW0iOjAsImgiOlsxNzQ4MDQ4NzEzLDI2NDQ1Mjg1MTQsNDI2NzcyNzI1MywyMjUy"
    "NzQ3NDkwLDQwMzYxODIwODgsMjI1Mzg1NjQ2Myw1MjYxMzkxNDcsMjE5NDI2Nzc1Ml0sIm5oIjowLCJubCI6"
    "Mzc3NDg3MzYwMCwiaGFzaF90eXBlIjoic2hhMjU2In0="
)
PART46_WORDS = (
    1748048713, 2644528514, 4267727253, 2252747490,
    4036182088, 2253856463, 526139147, 2194267752,
)  # fmt: skip
PART46_OFFSET = 471_859_200

# §9.4: part 2 of the synthetic 12 MiB file
PART2_CTX = (
    "eyJtZF9sZW4iOjMyLCJudW0iOjAsImgiOlszNDIxNTUzNzgzLDM4MDcwNzUwMjcsMTg2OTM3MzA0MywyMzQw"
    "OTkyNDcyLDI3MjQ0MDQ1OTUsMzQzNDU5NTA3OCwxMDM0ODQwOTcyLDkxNTQ0MzU1XSwibmgiOjAsIm5sIjo0"
    "MTk0MzA0MCwiaGFzaF90eXBlIjoic2hhMjU2In0="
)
PART2_WORDS = (
    3421553783, 3807075027, 1869373043, 2340992472,
    2724404595, 3434595078, 1034840972, 91544355,
)  # fmt: skip

SHA256_IV = (
    1779033703, 3144134277, 1013904242, 2773480762,
    1359893119, 2600822924, 528734635, 1541459225,
)  # fmt: skip
SHA1_IV = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)


def encode(document: Any) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def decode(ctx: str) -> Any:
    return json.loads(base64.b64decode(ctx))


def test_part46_example_round_trips_byte_for_byte() -> None:
    state = HashState.from_iteration_ctx(PART46_CTX)
    assert state == HashState("sha256", PART46_WORDS, PART46_OFFSET)
    assert state.to_iteration_ctx() == PART46_CTX


def test_part46_decoded_json_is_compact_and_ordered() -> None:
    text = base64.b64decode(HashState("sha256", PART46_WORDS, PART46_OFFSET).to_iteration_ctx())
    assert text == (
        b'{"md_len":32,"num":0,"h":[1748048713,2644528514,4267727253,2252747490,'
        b'4036182088,2253856463,526139147,2194267752],"nh":0,"nl":3774873600,'
        b'"hash_type":"sha256"}'
    )


def test_synthetic_part2_vector() -> None:
    state = HashState("sha256", PART2_WORDS, 5_242_880)
    assert state.to_iteration_ctx() == PART2_CTX
    assert HashState.from_iteration_ctx(PART2_CTX) == state
    assert decode(PART2_CTX)["nl"] == 41_943_040


def test_length_past_2_to_the_32_bits_sets_nh() -> None:
    # §9.2: offset 600 MiB -> 5 033 164 800 bits -> nh 1, nl 738 197 504
    state = HashState("sha256", PART2_WORDS, 600 * 1024 * 1024)
    document = decode(state.to_iteration_ctx())
    assert (document["nh"], document["nl"]) == (1, 738_197_504)
    assert HashState.from_iteration_ctx(state.to_iteration_ctx()) == state


def test_largest_length() -> None:
    state = HashState("sha1", SHA1_IV, 2**61 - 64)
    document = decode(state.to_iteration_ctx())
    assert (document["nh"], document["nl"]) == (2**32 - 1, 2**32 - 512)
    assert HashState.from_iteration_ctx(state.to_iteration_ctx()) == state


def test_sha1_ctx_shape() -> None:
    state = HashState("sha1", (3964637146, 506328055, 3309518982, 1339257828, 1516292540), 5242880)
    document = decode(state.to_iteration_ctx())
    assert list(document) == ["md_len", "num", "h", "nh", "nl", "hash_type"]
    assert document["md_len"] == 20 and document["hash_type"] == "sha1"
    assert HashState.from_iteration_ctx(state.to_iteration_ctx()) == state


def test_initial() -> None:
    assert HashState.initial() == HashState("sha256", SHA256_IV, 0)
    assert HashState.initial("sha1") == HashState("sha1", SHA1_IV, 0)
    with pytest.raises(ValueError, match="algorithm"):
        HashState.initial("md5")  # type: ignore[arg-type]


def test_list_words_are_stored_as_tuple() -> None:
    state = HashState("sha256", list(SHA256_IV), 64)  # type: ignore[arg-type]
    assert state.words == SHA256_IV and isinstance(state.words, tuple)
    assert hash(state) == hash(HashState("sha256", SHA256_IV, 64))


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(PART46_CTX.replace("=", "%3D"), id="url-encoded-padding"),
        pytest.param(PART46_CTX.rstrip("="), id="missing-padding"),
        pytest.param(f"  {PART46_CTX}\n", id="surrounding-space"),
        pytest.param(
            encode(
                {
                    "hash_type": "sha256",
                    "Nl": 3774873600,
                    "Nh": 0,
                    "h": list(PART46_WORDS),
                    "num": 0,
                    "md_len": 32,
                }
            ),
            id="Nl-Nh-other-order",
        ),
        pytest.param(encode({"h": list(PART46_WORDS), "nl": 3774873600, "nh": 0}), id="minimal"),
        pytest.param(
            encode({"h": list(PART46_WORDS), "nl": 3774873600, "nh": 0, "extra": "x"}),
            id="unknown-key",
        ),
    ],
)
def test_accepted_variants(variant: str) -> None:
    expected = HashState("sha256", PART46_WORDS, PART46_OFFSET)
    assert HashState.from_iteration_ctx(variant) == expected


def test_url_safe_alphabet_accepted() -> None:
    state = HashState("sha256", (0xFFFFFFFF,) * 8, 2**61 - 64)
    ctx = state.to_iteration_ctx()
    urlsafe = ctx.replace("+", "-").replace("/", "_")
    assert HashState.from_iteration_ctx(urlsafe) == state


def test_sha1_inferred_from_word_count() -> None:
    ctx = encode({"h": list(SHA1_IV), "nl": 512, "nh": 0})
    assert HashState.from_iteration_ctx(ctx) == HashState("sha1", SHA1_IV, 64)


GOOD: dict[str, Any] = {
    "md_len": 32,
    "num": 0,
    "h": list(SHA256_IV),
    "nh": 0,
    "nl": 512,
    "hash_type": "sha256",
}


def with_changes(**changes: Any) -> dict[str, Any]:
    document = dict(GOOD)
    for key, value in changes.items():
        if value is KeyError:
            del document[key]
        else:
            document[key] = value
    return document


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (with_changes(num=1), "num"),
        (with_changes(num=True), "num"),
        (with_changes(h=SHA256_IV[:7]), "8 words"),
        (with_changes(h=[*SHA256_IV, 1]), "8 words"),
        (with_changes(h=list(SHA1_IV)), "8 words"),
        (with_changes(md_len=20), "md_len"),
        (with_changes(md_len=16, hash_type=KeyError), "md_len"),
        (with_changes(md_len="32"), "md_len"),
        (with_changes(hash_type="md5"), "hash_type"),
        (with_changes(hash_type="sha1"), "md_len"),
        (with_changes(hash_type="sha1", md_len=KeyError), "5 words"),
        (with_changes(h=[*SHA256_IV[:7], 2**32]), r"h\[7\]"),
        (with_changes(h=[-1, *SHA256_IV[1:]]), r"h\[0\]"),
        (with_changes(h=[1.5, *SHA256_IV[1:]]), r"h\[0\]"),
        (with_changes(h=["1", *SHA256_IV[1:]]), r"h\[0\]"),
        (with_changes(h=[True, *SHA256_IV[1:]]), r"h\[0\]"),
        (with_changes(h="abc"), "'h'"),
        (with_changes(h=KeyError), "'h'"),
        (with_changes(nl=KeyError), "'nl'"),
        (with_changes(nh=KeyError), "'nh'"),
        (with_changes(nl=2**32), "'nl'"),
        (with_changes(nl=-512), "'nl'"),
        (with_changes(nl=512.0), "'nl'"),
        (with_changes(nl=8), "64-byte blocks"),
        (with_changes(nh=2**32), "'nh'"),
        ([1, 2, 3], "not an object"),
        ("text", "not an object"),
    ],
)
def test_rejected_documents(document: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        HashState.from_iteration_ctx(encode(document))


def test_duplicate_key_after_case_folding_rejected() -> None:
    text = '{"h":%s,"nl":512,"nh":0,"NL":1024}' % json.dumps(list(SHA256_IV))
    with pytest.raises(ValueError, match="duplicate"):
        HashState.from_iteration_ctx(base64.b64encode(text.encode()).decode())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "====",
        "not base64!",
        "eyJ",  # truncated
        base64.b64encode(b"{not json").decode(),
        base64.b64encode(b"\xff\xfe").decode(),
        base64.b64encode(b'{"h":[NaN],"nl":0,"nh":0}').decode(),
        "A" * 5000,
    ],
)
def test_rejected_text(text: str) -> None:
    with pytest.raises(ValueError, match="invalid iteration hash ctx"):
        HashState.from_iteration_ctx(text)


def test_rejects_bytes() -> None:
    with pytest.raises(TypeError):
        HashState.from_iteration_ctx(PART46_CTX.encode())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "error", "field"),
    [
        (("md5", SHA256_IV, 0), ValueError, "algorithm"),
        (("SHA256", SHA256_IV, 0), ValueError, "algorithm"),
        (("sha256", SHA256_IV[:7], 0), ValueError, "words"),
        (("sha256", SHA1_IV, 0), ValueError, "words"),
        (("sha1", SHA256_IV, 0), ValueError, "words"),
        (("sha256", "abcdefgh", 0), TypeError, "words"),
        (("sha256", (*SHA256_IV[:7], 2**32), 0), ValueError, r"words\[7\]"),
        (("sha256", (-1, *SHA256_IV[1:]), 0), ValueError, r"words\[0\]"),
        (("sha256", (1.0, *SHA256_IV[1:]), 0), TypeError, r"words\[0\]"),
        (("sha256", (True, *SHA256_IV[1:]), 0), TypeError, r"words\[0\]"),
        (("sha256", SHA256_IV, -64), ValueError, "length"),
        (("sha256", SHA256_IV, 65), ValueError, "length"),
        (("sha256", SHA256_IV, 2**61), ValueError, "length"),
        (("sha256", SHA256_IV, 64.0), TypeError, "length"),
        (("sha256", SHA256_IV, True), TypeError, "length"),
    ],
)
def test_invalid_fields(args: tuple[Any, ...], error: type[Exception], field: str) -> None:
    with pytest.raises(error, match=f"HashState.{field}"):
        HashState(*args)


def test_frozen() -> None:
    state = HashState.initial()
    with pytest.raises(AttributeError):
        state.length = 64  # type: ignore[misc]


@given(
    algorithm=st.sampled_from(["sha256", "sha1"]),
    data=st.data(),
    blocks=st.integers(min_value=0, max_value=2**55 - 1),
)
def test_round_trip_property(algorithm: str, data: st.DataObject, blocks: int) -> None:
    count = 8 if algorithm == "sha256" else 5
    words = data.draw(st.tuples(*[st.integers(0, 2**32 - 1)] * count))
    state = HashState(algorithm, words, blocks * 64)  # type: ignore[arg-type]
    ctx = state.to_iteration_ctx()
    document = decode(ctx)
    assert document["nh"] * 2**32 + document["nl"] == blocks * 512
    assert document["h"] == list(words)
    assert HashState.from_iteration_ctx(ctx) == state
    assert HashState.from_iteration_ctx(ctx.replace("=", "%3D")) == state
