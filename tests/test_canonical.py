"""RFC 8785 (JCS) behaviour of core.canonical, restricted to licledger's value set (no floats)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.canonical import MAX_DEPTH, MAX_SAFE_INTEGER, decode, decode_canonical, encode
from core.errors import EncodingError


def test_rfc8785_key_order_is_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3's sorting example: U+1F600 sorts before U+FB33 in UTF-16 (D83D DE00 < FB33),
    # although its code point is larger.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(encode(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert sorted(value) != keys  # Python's code-point order differs: the test can fail


def test_no_whitespace_and_utf8_literals() -> None:
    assert encode({"b": [1, True, None], "a": "张三"}) == '{"a":"张三","b":[1,true,null]}'.encode()


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ('"', '"\\""'),
        ("\\", '"\\\\"'),
        ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
        ("\u0000\u001f", '"\\u0000\\u001f"'),
        ("\u000b", '"\\u000b"'),
        ("/", '"/"'),
        ("\u007f", '"\u007f"'),
        ("\u2028\u2029", '"\u2028\u2029"'),
        ("\U0001f600", '"\U0001f600"'),
    ],
)
def test_string_escapes_follow_ecmascript(text: str, encoded: str) -> None:
    assert encode(text) == encoded.encode()
    assert decode_canonical(encoded.encode()) == text


@pytest.mark.parametrize("value", [1.0, 0.5, float("nan"), float("inf"), {"a": [1e3]}])
def test_floats_are_refused(value: Any) -> None:
    with pytest.raises(EncodingError):
        encode(value)


@pytest.mark.parametrize("text", ["1.0", "1e3", "-0.0", "[0.5]", "NaN", "Infinity", '{"a":-Infinity}'])
def test_decoding_floats_and_non_numbers_is_refused(text: str) -> None:
    with pytest.raises(EncodingError):
        decode(text.encode())


def test_integer_range_is_the_i_json_safe_range() -> None:
    assert encode(MAX_SAFE_INTEGER) == b"9007199254740991"
    assert encode(-MAX_SAFE_INTEGER) == b"-9007199254740991"
    for big in (MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 10**30):
        with pytest.raises(EncodingError):
            encode(big)
        with pytest.raises(EncodingError):
            decode(str(big).encode())


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(EncodingError, match="duplicate"):
        decode(b'{"a":1,"a":1}')


@pytest.mark.parametrize("text", ["\ud800", "a\udfff", "\udc00\ud800"])
def test_lone_surrogates_are_refused(text: str) -> None:
    with pytest.raises(EncodingError):
        encode(text)
    with pytest.raises(EncodingError):
        encode({text: 1})


def test_escaped_lone_surrogates_are_refused_on_decode() -> None:
    with pytest.raises(EncodingError):
        decode(b'"\\ud800"')
    assert decode(b'"\\ud83d\\ude00"') == "\U0001f600"  # a proper pair is fine


@pytest.mark.parametrize(
    "data",
    [
        b'{"b":1,"a":2}',  # unsorted keys
        b'{"a": 1}',  # whitespace
        b" 1",
        b"1\n",
        b'"\\u0041"',  # needless escape
        b'"\\/"',
        b'"\\u001F"',  # upper-case hex
        b"-0",
        b"1E2",
        '"\u00e9"'.encode("utf-16-be"),
    ],
)
def test_decode_canonical_refuses_non_canonical_bytes(data: bytes) -> None:
    with pytest.raises(EncodingError):
        decode_canonical(data)


def test_decode_refuses_invalid_utf8_and_other_types() -> None:
    with pytest.raises(EncodingError, match="UTF-8"):
        decode(b'"\xff"')
    with pytest.raises(TypeError):
        decode(1)  # type: ignore[arg-type]


def test_unencodable_values_are_refused_with_their_path() -> None:
    with pytest.raises(EncodingError, match=r"\$\.a\[1\]"):
        encode({"a": [1, b"bytes"]})
    with pytest.raises(EncodingError, match="not a string"):
        encode({1: "x"})


def test_nesting_is_bounded() -> None:
    deep: Any = 0
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(EncodingError):
        encode(deep)
    with pytest.raises(EncodingError):
        decode(b"[" * 100_000 + b"]" * 100_000)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(alphabet=st.characters(codec="utf-8")),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(alphabet=st.characters(codec="utf-8"), max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_encode_decode_round_trip(value: Any) -> None:
    data = encode(value)
    assert decode_canonical(data) == value
    assert encode(decode(data)) == data


@given(st.dictionaries(st.text(alphabet=st.characters(codec="utf-8"), max_size=6), st.integers(0, 9)))
def test_key_order_matches_an_independent_utf16_sort(value: dict[str, int]) -> None:
    keys = list(json.loads(encode(value)))
    assert keys == sorted(value, key=lambda k: [ord(c) for c in k.encode("utf-16-be").decode("latin-1")])


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@given(_json_values)
def test_fast_path_equals_careful_encoder(value: object) -> None:
    from core.canonical import _encode_slow

    try:
        slow = _encode_slow(value)
    except EncodingError:
        with pytest.raises(EncodingError):
            encode(value)
        return
    assert encode(value) == slow


def test_astral_keys_sort_by_utf16_code_units() -> None:
    # U+1F600 is D83D DE00 in UTF-16 and sorts before U+FB33; code-point order would put it last.
    assert encode({"\U0001f600": 1, "\ufb33": 2}) == '{"\U0001f600":1,"\ufb33":2}'.encode()


def test_integer_of_thousands_of_digits_is_refused_not_crashed_on() -> None:
    # int() refuses more than 4,300 digits with ValueError; decode must report an EncodingError instead.
    for digits in (17, 5_000, 100_000):
        with pytest.raises(EncodingError, match="safe range"):
            decode(b"[" + b"9" * digits + b"]")


def test_nesting_limit_is_exact_on_both_sides() -> None:
    def nested(levels: int, leaf: Any) -> Any:
        value = leaf
        for _ in range(levels):
            value = [value]
        return value

    # MAX_DEPTH + 1 containers with nothing deeper: accepted; a value one deeper: refused by the encoder (fast
    # path and careful encoder alike); one more container: refused by the decoder too.
    for leaf in ([], {}):
        ok = nested(MAX_DEPTH, leaf)
        assert decode(encode(ok)) == ok
    for leaf in (0, "x", None, [0], {"a": 0}):
        with pytest.raises(EncodingError, match="nesting"):
            encode(nested(MAX_DEPTH + 1, leaf))
    for leaf in ([0], {"a": 0}, [[]]):
        with pytest.raises(EncodingError, match="nesting"):
            decode(json.dumps(nested(MAX_DEPTH + 1, leaf)).encode())


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    value = {"a": "[" * 1_000 + "{" * 1_000}
    assert decode(encode(value)) == value


def test_duplicate_keys_are_named_wherever_they_are() -> None:
    with pytest.raises(EncodingError, match="duplicate object key 'b'"):
        decode(b'{"a":[{"c":1,"b":2,"b":2}]}')


def test_byte_order_mark_is_refused() -> None:
    with pytest.raises(EncodingError, match="BOM"):
        decode("\ufeff{}".encode())


@pytest.mark.parametrize("value", [{"a": "\U0001f600"}, {"\U0001f600": "x", "\ufb33": "y"}, ["\u00e9", "\ud7ff"]])
def test_non_ascii_values_take_the_same_bytes_on_both_paths(value: Any) -> None:
    from core.canonical import _encode_slow

    assert encode(value) == _encode_slow(value)
