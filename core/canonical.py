"""Canonical bytes for everything licledger hashes or signs.

The encoding is the JSON Canonicalization Scheme (RFC 8785, "JCS") restricted to the values licledger uses:

* objects with string keys, sorted by their UTF-16 code units (RFC 8785 §3.2.3), no duplicates;
* arrays, strings (UTF-8, NFC is *not* applied: the bytes given are the bytes signed), ``true``, ``false``,
  ``null``;
* integers only, within the I-JSON safe range ``-(2**53 - 1) .. 2**53 - 1`` (RFC 7493 §2.2). Floats are refused,
  so no number ever depends on a platform's float formatting. Amounts, times and sizes are integers or strings.
* no insignificant whitespace; string escaping as ECMAScript ``JSON.stringify`` (RFC 8785 §3.2.2.2): ``\\"``,
  ``\\\\``, ``\\b \\f \\n \\r \\t``, other control characters as ``\\u00xx`` (lower-case hex), everything else
  literal. Lone surrogates are refused.

Byte strings are not JSON values: callers encode them explicitly (hex for hashes, base64 for signatures) so the
document says which. :func:`decode` parses strictly (no floats, no duplicate keys, no NaN) and
:func:`decode_canonical` additionally requires that the input *is* the canonical encoding of what it parses to,
so that a signature over bytes and a signature over the parsed value can never disagree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import EncodingError
from core.native import NATIVE

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 64

JSONValue = None | bool | int | str | list["JSONValue"] | dict[str, "JSONValue"]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _encode_string(s: str, out: list[str]) -> None:
    parts = ['"']
    for ch in s:
        code = ord(ch)
        if ch in _ESCAPES:
            parts.append(_ESCAPES[ch])
        elif code < 0x20:
            parts.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise EncodingError(f"lone surrogate U+{code:04X} in string cannot be encoded")
        else:
            parts.append(ch)
    parts.append('"')
    out.append("".join(parts))


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", errors="surrogatepass")


def _encode(value: Any, out: list[str], depth: int, path: str) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH} at {path}")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise EncodingError(f"integer at {path} is outside the I-JSON safe range: {value}")
        out.append(str(int(value)))
    elif isinstance(value, float):
        raise EncodingError(f"float at {path} is not allowed in canonical encoding: {value!r}")
    elif isinstance(value, str):
        _encode_string(value, out)
    elif isinstance(value, Mapping):
        for k in value:
            if not isinstance(k, str):
                raise EncodingError(f"object key at {path} is not a string: {k!r}")
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            _encode_string(key, out)
            out.append(":")
            _encode(value[key], out, depth + 1, f"{path}.{key}")
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, depth + 1, f"{path}[{i}]")
        out.append("]")
    else:
        raise EncodingError(f"value at {path} of type {type(value).__name__} has no canonical encoding")


_SURROGATE = re.compile("[\ud800-\udfff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _plain(value: Any, depth: int) -> bool:
    """True when ``value`` is made only of exact built-in types whose ``json.dumps`` rendering :func:`encode` may
    use: dict (string keys), list, tuple, str, int within the safe range, bool, None, nested at most
    :data:`MAX_DEPTH` deep.

    Rejects (so the careful encoder runs and names the problem): floats, big integers, non-string keys, object keys
    outside the Basic Multilingual Plane (their UTF-16 order, RFC 8785 §3.2.3, differs from Python's), mapping or
    sequence types other than dict/list/tuple. Lone surrogates are left to :func:`encode`, whose strict UTF-8
    encoding of the output refuses them, so strings are not searched here. Scalars are checked inline, so the
    recursion visits containers only.
    """
    kind = type(value)
    if kind is dict:
        if depth >= MAX_DEPTH:  # its items would be deeper than MAX_DEPTH
            return depth == MAX_DEPTH and not value
        for key, item in value.items():
            if type(key) is not str or (not key.isascii() and _ASTRAL.search(key)):
                return False
            t = type(item)
            if t is str or t is bool or item is None:
                continue
            if t is int:
                if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    continue
                return False
            if not _plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            return depth == MAX_DEPTH and not value
        for item in value:
            t = type(item)
            if t is str or t is bool or item is None:
                continue
            if t is int:
                if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    continue
                return False
            if not _plain(item, depth + 1):
                return False
        return True
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    return False


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def encode(value: Any) -> bytes:
    """The canonical (RFC 8785 subset) UTF-8 bytes of ``value``.

    Raises :class:`EncodingError` naming the path of the first value that cannot be encoded.
    """
    if NATIVE is not None and (native := NATIVE.encode(value)) is not None:
        return native  # the same bytes; None (floats, big integers, astral keys, ...) leaves it to the code below
    if _plain(value, 0):
        # For these values json.dumps emits exactly the RFC 8785 form: code-point key order equals UTF-16 order
        # within the BMP, its string escapes are JSON.stringify's, and integers print as digits. A lone surrogate
        # (refused by strict UTF-8) goes to the careful encoder, which names the bad string.
        try:
            return _JSON.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass
    out: list[str] = []
    _encode(value, out, 0, "$")
    return "".join(out).encode("utf-8")


def _encode_slow(value: Any) -> bytes:
    """The character-by-character encoder alone (kept for cross-checking the fast path in tests)."""
    out: list[str] = []
    _encode(value, out, 0, "$")
    return "".join(out).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise EncodingError(f"duplicate object key {key!r}")
            seen.add(key)
    return result


def _refuse_float(text: str) -> Any:
    raise EncodingError(f"float {text} is not allowed")


def _refuse_constant(text: str) -> Any:
    raise EncodingError(f"{text} is not valid JSON")


_SAFE_INTEGER_TEXT = len(str(-MAX_SAFE_INTEGER))


def _safe_int(text: str) -> int:
    # Length first: int() of thousands of digits is slow, and beyond 4,300 digits it raises ValueError.
    if len(text) > _SAFE_INTEGER_TEXT or not -MAX_SAFE_INTEGER <= (value := int(text)) <= MAX_SAFE_INTEGER:
        shown = text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"
        raise EncodingError(f"integer outside the I-JSON safe range: {shown}")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_float=_refuse_float,
    parse_int=_safe_int,
    parse_constant=_refuse_constant,
)
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_depth(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}")
    if type(value) is dict:
        for v in value.values():
            if type(v) is dict or type(v) is list:
                _check_depth(v, depth + 1)
    elif type(value) is list:
        for v in value:
            if type(v) is dict or type(v) is list:
                _check_depth(v, depth + 1)


def _check_surrogates(value: Any) -> None:
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise EncodingError("lone surrogate in string cannot be encoded")
    elif isinstance(value, dict):
        for k, v in value.items():
            if _SURROGATE.search(k):
                raise EncodingError("lone surrogate in object key cannot be encoded")
            _check_surrogates(v)
    elif isinstance(value, list):
        for v in value:
            _check_surrogates(v)


def decode(data: bytes | str) -> Any:
    """Parse JSON strictly: UTF-8, no floats, no NaN/Infinity, no duplicate keys, safe integers only."""
    if NATIVE is not None and type(data) is bytes:
        try:
            return NATIVE.decode(data)  # the same value; it declines whatever the code below must decide
        except NATIVE.Decline:
            pass
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EncodingError(f"not UTF-8 at byte {exc.start}") from None
    elif isinstance(data, str):
        text = data
    else:
        raise TypeError(f"decode() takes bytes or str, not {type(data).__name__}")
    if len(text) > 64 * 1024 * 1024:
        raise EncodingError("document larger than 64 MiB")
    if text.startswith("\ufeff"):  # as json.loads does for str input
        raise EncodingError("invalid JSON at line 1 column 1: Unexpected UTF-8 BOM (decode using utf-8-sig)")
    try:
        value = _DECODER.decode(text)
    except EncodingError:
        raise
    except RecursionError:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}") from None
    except json.JSONDecodeError as exc:
        raise EncodingError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    # Nesting: no value can be deeper than the number of brackets in the text, so only a text with more than
    # MAX_DEPTH + 1 of them is walked.
    if text.count("{") + text.count("[") > MAX_DEPTH + 1:
        _check_depth(value)
    # Lone surrogates: bytes decoded as UTF-8 cannot hold raw ones, but a str can, and json.loads turns \\ud800
    # escapes into them. Only when the text has either is the parsed value searched.
    if (isinstance(data, str) and _SURROGATE.search(text)) or _ESCAPED_SURROGATE.search(text):
        _check_surrogates(value)
    return value


def decode_canonical(data: bytes) -> Any:
    """Parse ``data`` and require that it is exactly the canonical encoding of the parsed value."""
    value = decode(data)
    if encode(value) != bytes(data):
        raise EncodingError("bytes are valid JSON but not in canonical form (RFC 8785)")
    return value
