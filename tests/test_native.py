"""core._native (core/_native.c) against its pure-Python references, differentially.

A fast path must return exactly what its reference returns, or decline (``None`` / ``Decline``) so that the
reference decides. The dangerous direction is a fast path accepting what the reference refuses: every test here
checks it on inputs built to sit on the references' edges (depth limits, integer range, surrogates, duplicate keys,
encodings), on hypothesis-generated values, and on mutated real proof bundles.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gmssl_pyx import sm3_hash
from hypothesis import given, settings
from hypothesis import strategies as st

from core import canonical, native
from core.errors import EncodingError, FormatError, RootMismatchError
from core.hashing import SM3
from core.merkle import LEAF_PREFIX, MerkleTree, leaf_hash, root_from_inclusion_proof
from core.smt import SparseMerkleTree, SparseProof, verify_sparse_proof

ROOT = Path(__file__).resolve().parent.parent

if native.NATIVE is None and os.environ.get("LICLEDGER_PURE_PYTHON", "") in ("", "0"):
    pytest.fail(f"core._native is not in use: {native.why_not_native()} (pip install -e . builds it)")
pytestmark = pytest.mark.skipif(native.NATIVE is None, reason="LICLEDGER_PURE_PYTHON is set")


def N() -> native.NativeModule:
    assert native.NATIVE is not None
    return native.NATIVE


# --- loading ---


def test_the_module_in_use_is_built_from_the_source_beside_it() -> None:
    import hashlib

    assert native.why_not_native() is None
    assert hashlib.sha256((ROOT / "core" / "_native.c").read_bytes()).hexdigest() == N().SOURCE_SHA256


def test_a_stale_build_is_not_used(tmp_path: Path) -> None:
    stale = tmp_path / "_native.c"
    stale.write_bytes((ROOT / "core" / "_native.c").read_bytes() + b"\n/* edited after the build */\n")
    module, why = native._load(stale)
    assert module is None and why is not None and "built from source" in why


def test_pure_python_mode_is_honoured() -> None:
    code = "from core import native; print(native.NATIVE is None, native.why_not_native())"
    env = {**os.environ, "LICLEDGER_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True LICLEDGER_PURE_PYTHON is set"


@pytest.mark.slow
def test_the_references_alone_pass_the_golden_vectors() -> None:
    """The same vectors and core tests, run with the native paths off: both implementations meet them."""
    modules = ["test_canonical.py", "test_merkle.py", "test_merkle_vectors.py", "test_smt.py", "test_sm3.py"]
    modules += ["test_license_vectors.py", "test_checkpoint_vectors.py"]
    env = {**os.environ, "LICLEDGER_PURE_PYTHON": "1"}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(f"tests/{m}" for m in modules)]
    out = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
    assert " passed" in out.stdout and "failed" not in out.stdout


# --- SM3 (GB/T 32905-2016) ---


def test_sm3_standard_vectors() -> None:
    # GB/T 32905-2016 appendix A: "abc" and "abcd" * 16
    assert N().sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert N().sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


@pytest.mark.parametrize("length", [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4097, 70000])
def test_sm3_matches_gmssl_at_block_edges(length: int) -> None:
    data = bytes(random.Random(length).randrange(256) for _ in range(length))
    assert N().sm3(data) == bytes(sm3_hash(data))
    assert N().sm3(bytearray(data)) == N().sm3(memoryview(data)) == bytes(sm3_hash(data))


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None)
def test_sm3_matches_gmssl(data: bytes) -> None:
    assert N().sm3(data) == bytes(sm3_hash(data))


# --- RFC 9162 inclusion proofs ---


def _reference_inclusion_root(*args: Any) -> bytes | Exception:
    import core.merkle as merkle

    saved, merkle.NATIVE = merkle.NATIVE, None
    try:
        return root_from_inclusion_proof(*args)
    except (FormatError, TypeError, ValueError) as exc:
        return exc
    finally:
        merkle.NATIVE = saved


def test_inclusion_roots_agree_for_every_leaf_of_small_trees() -> None:
    leaves = [leaf_hash(f"leaf {i}".encode()) for i in range(40)]
    tree = MerkleTree(leaves)
    for size in range(1, 41):
        root = tree.root_hash(size)
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert N().inclusion_root(index, size, leaves[index], tuple(proof)) == root
            assert N().inclusion_root(index, size, leaves[index], list(proof)) == root
            assert _reference_inclusion_root(index, size, leaves[index], proof) == root


def test_inclusion_root_declines_what_the_reference_refuses() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(13)]
    tree = MerkleTree(leaves)
    proof = tree.inclusion_proof(5, 13)
    good = (5, 13, leaves[5], tuple(proof))
    cases: list[tuple[Any, ...]] = [
        (13, 13, leaves[5], tuple(proof)),  # index beyond size
        (5, 13, leaves[5], tuple(proof[:-1])),  # too short
        (5, 13, leaves[5], (*proof, proof[0])),  # too long
        (5, 13, leaves[5][:31], tuple(proof)),  # short leaf hash
        (5, 13, leaves[5], (proof[0][:31], *proof[1:])),  # short proof hash
        (5, 13, leaves[5], (bytearray(proof[0]), *proof[1:])),  # not bytes: the reference decides
        (-1, 13, leaves[5], tuple(proof)),
        (True, 13, leaves[5], tuple(proof)),
        (5, 2**64, leaves[5], tuple(proof)),
        (5, 13, leaves[5], b"".join(proof)),
        (5, 13, leaves[5], iter(proof)),
    ]
    assert N().inclusion_root(*good) == tree.root_hash(13)
    for case in cases:
        assert N().inclusion_root(*case) is None, case
    assert isinstance(_reference_inclusion_root(13, 13, leaves[5], proof), FormatError)


@given(st.integers(1, 300), st.data())
@settings(max_examples=200, deadline=None)
def test_inclusion_root_agrees_with_the_reference(size: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    index = data.draw(st.integers(0, size - 1))
    proof = MerkleTree(leaves).inclusion_proof(index)
    if proof and data.draw(st.booleans()):  # a wrong sibling: both lead to the same wrong root
        k = data.draw(st.integers(0, len(proof) - 1))
        proof[k] = bytes(32) if data.draw(st.booleans()) else leaves[0]
    assert N().inclusion_root(index, size, leaves[index], tuple(proof)) == _reference_inclusion_root(
        index, size, leaves[index], proof
    )


# --- the sparse Merkle tree ---


def _smt_reference(root: bytes, key: bytes, value: bytes | None, proof: SparseProof) -> Exception | None:
    import core.smt as smt

    saved, smt.NATIVE = smt.NATIVE, None
    try:
        verify_sparse_proof(root, key, value, proof)
        return None
    except (FormatError, RootMismatchError, ValueError) as exc:
        return exc
    finally:
        smt.NATIVE = saved


@given(st.lists(st.binary(min_size=1, max_size=8), min_size=0, max_size=40, unique=True), st.data())
@settings(max_examples=150, deadline=None)
def test_sparse_roots_agree_with_the_reference(names: list[bytes], data: st.DataObject) -> None:
    tree = SparseMerkleTree()
    keys = [SM3(b"key " + n) for n in names]
    for i, key in enumerate(keys):
        tree.update(key, SM3(i.to_bytes(2, "big")))
    root = tree.root_hash()
    probe = [*keys, SM3(b"absent")][data.draw(st.integers(0, len(keys)))]
    proof = tree.prove(probe)
    value = tree.get(probe)
    assert N().sparse_root(probe, value, proof._depths, proof.siblings) == root
    assert _smt_reference(root, probe, value, proof) is None
    wrong = SM3(b"another value")
    calculated = N().sparse_root(probe, wrong, proof._depths, proof.siblings)
    failure = _smt_reference(root, probe, wrong, proof)
    assert calculated != root and isinstance(failure, RootMismatchError) and failure.calculated_root == calculated


def test_sparse_root_declines_malformed_proofs() -> None:
    tree = SparseMerkleTree()
    keys = [SM3(bytes([i])) for i in range(20)]
    for key in keys:
        tree.update(key, SM3(key))
    proof = tree.prove(keys[3])
    depths, siblings = proof._depths, proof.siblings
    from core.smt import default_hashes

    defaults = default_hashes()
    cases: list[tuple[Any, ...]] = [
        (keys[3][:31], SM3(keys[3]), depths, siblings),
        (keys[3], SM3(keys[3])[:31], depths, siblings),
        (keys[3], SM3(keys[3]), depths[:-1], siblings),
        (keys[3], SM3(keys[3]), tuple(reversed(depths)), tuple(reversed(siblings))),
        (keys[3], SM3(keys[3]), (*depths[:-1], 257), siblings),
        (keys[3], SM3(keys[3]), (0, *depths[1:]), siblings),
        (keys[3], SM3(keys[3]), depths, (defaults[depths[0]], *siblings[1:])),  # a listed default sibling
        (keys[3], SM3(keys[3]), list(depths), siblings),
    ]
    for case in cases:
        assert N().sparse_root(*case) is None, case
    assert N().sparse_root(keys[3], SM3(keys[3]), depths, siblings) == tree.root_hash()


def test_leaf_prefix_is_the_rfc_one() -> None:
    assert LEAF_PREFIX == b"\x00"  # the C code hashes leaves of the sparse tree with 0x00, nodes with 0x01


# --- hex ---


def test_hex_hashes() -> None:
    h = "0123456789abcdef" * 4
    assert N().hash_from_hex(h) == bytes.fromhex(h)
    assert N().hashes_from_hex([h, h[::-1]]) == (bytes.fromhex(h), bytes.fromhex(h[::-1]))
    assert N().hashes_from_hex([]) == ()
    for bad in (h.upper(), h[:-1], h + "0", h[:-1] + "g", h[:-1] + "٣", 5, None, b"00" * 32):
        assert N().hash_from_hex(bad) is None
        assert N().hashes_from_hex([h, bad]) is None
    assert N().hashes_from_hex((h,)) is None  # a list only, as JSON gives


# --- strict decoding ---


def _reference_decode(data: bytes) -> Any:
    saved, canonical.NATIVE = canonical.NATIVE, None
    try:
        return canonical.decode(data)
    finally:
        canonical.NATIVE = saved


def _agree(data: bytes) -> None:
    """The native decoder accepts only what the reference accepts, with an equal value of the same types."""
    try:
        expected: Any = _reference_decode(data)
    except EncodingError as exc:
        expected = exc
    try:
        got = N().decode(data)
    except N().Decline:
        return  # the reference decides: always safe
    assert not isinstance(expected, Exception), f"native accepted {data!r}, reference refused: {expected}"
    assert _typed(got) == _typed(expected), data


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return ("dict", sorted((k, _typed(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    return (type(value).__name__, value)


EDGES = [
    b"",
    b" ",
    b"null",
    b" true ",
    b"false",
    b"0",
    b"-0",
    b"-",
    b"01",
    b"-01",
    b"1.0",
    b"1e3",
    b"1E3",
    b"-1e-3",
    b"9007199254740991",
    b"-9007199254740991",
    b"9007199254740992",
    b"-9007199254740992",
    b"12345678901234567",
    b"0000",
    b"1" * 5000,
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"nul",
    b"tru",
    b"[1,]",
    b"[,1]",
    b"{,}",
    b'{"a":1,}',
    b'{"a" 1}',
    b'{"a":}',
    b"{1:2}",
    b'{"a":1,"a":2}',
    b'{"a":null,"a":null}',
    b'{"a":"x","a":"x"}',
    b'{"a":1,"b":{"a":1,"a":1}}',
    b'{"a":1,"\\u0061":2}',
    b'"\\ud800"',
    b'"\\udc00"',
    b'"\\ud83d\\ude00"',
    b'"\\ud83d\\u0041"',
    b'"\\ud83d"',
    b'"\\uD83D\\uDE00"',
    b'"\\u00e9"',
    b'"\\u0000"',
    b'"\\x"',
    b'"\\u12"',
    b'"\\u12g4"',
    b'"\t"',
    b'"\x01"',
    b'"\x7f"',
    b'"\n"',
    b'"\xc3\xa9"',
    b'"\xed\xa0\x80"',
    b'"\xc0\xaf"',
    b'"\xff"',
    b'"\xe4\xb8\xad\xe6\x96\x87"',
    b"\xef\xbb\xbf{}",
    b'"abc',
    b'"abc\\',
    b"[1] 2",
    b"[1] ",
    b"\t\n\r [ ] \r\n",
    b"\x0b[]",
    b"\xa0[]",
    b'{"a":[1,2,{"b":null}]}',
    b"[" * 65 + b"]" * 65,
    b"[" * 66 + b"]" * 66,
    b"[" * 64 + b"{}" + b"]" * 64,
    b"[" * 65 + b"{}" + b"]" * 65,
    b"[" * 64 + b'{"a":1}' + b"]" * 64,
    b'{"a":' * 65 + b"1" + b"}" * 65,
    b'"\\/"',
    b'"a\\"b"',
]


@pytest.mark.parametrize("data", EDGES, ids=lambda d: repr(d[:30]))
def test_decode_edges(data: bytes) -> None:
    _agree(data)


def test_decode_declines_oversized_input() -> None:
    with pytest.raises(N().Decline):
        N().decode(b" " * (64 * 1024 * 1024 + 1))
    with pytest.raises(N().Decline):
        N().decode("{}")  # type: ignore[arg-type]  # str: the reference decides


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=25,
)


@given(JSON_VALUES, st.booleans())
@settings(max_examples=400, deadline=None)
def test_decode_agrees_on_generated_json(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":") if ascii_only else (", ", ": "))
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "surrogatepass")
    _agree(data)


@given(st.binary(max_size=60))
@settings(max_examples=400, deadline=None)
def test_decode_agrees_on_arbitrary_bytes(data: bytes) -> None:
    _agree(data)


@given(JSON_VALUES, st.data())
@settings(max_examples=400, deadline=None)
def test_decode_agrees_on_mutated_json(value: Any, data: st.DataObject) -> None:
    raw = bytearray(json.dumps(value).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw)))
        op = data.draw(st.sampled_from(["insert", "delete", "flip"]))
        byte = data.draw(st.sampled_from(b'{}[]",:\\ 0-1eE.tfnu\x00\x1f\x80\xc3\xed\xff'))
        if op == "insert":
            raw[pos:pos] = bytes([byte])
        elif raw and pos < len(raw):
            if op == "delete":
                del raw[pos]
            else:
                raw[pos] = byte
    _agree(bytes(raw))


# --- canonical encoding ---


def _reference_encode(value: Any) -> bytes | Exception:
    try:
        return canonical._encode_slow(value)
    except EncodingError as exc:
        return exc


class _Dict(dict[str, Any]):
    pass


ENCODE_EDGES: list[Any] = [
    None,
    True,
    False,
    0,
    -0,
    2**53 - 1,
    -(2**53 - 1),
    2**53,
    -(2**53),
    10**400,
    1.5,
    float("nan"),
    "",
    'a"b\\c',
    "\b\f\n\r\t\x00\x01\x1f\x7f",
    "\u2028\u2029é中文😀",
    "\ud800",
    "a\udfffb",
    [],
    (),
    {},
    [1, (2, 3)],
    {"b": 1, "a": 2, "A": 3, "é": 4, "\uffff": 5, "\ue000": 6},
    {"😀": 1, "\uffff": 2},
    {1: 2},
    {"a": b"x"},
    _Dict(a=1),
    {"a": _Dict()},
    {"x": {1, 2}},
    {"\ud800": 1},
    [True, 1, False, 0],
    "[" * 3,
    _nested := [[]],
    {"a": [{"b": [None]}]},
]


def _deep(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [*ENCODE_EDGES, _deep(64, []), _deep(64, {}), _deep(65, []), _deep(64, [1]), _deep(64, {"a": 1}), _deep(63, [1])],
    ids=lambda v: repr(v)[:30],
)
def test_encode_edges(value: Any) -> None:
    got = N().encode(value)
    expected = _reference_encode(value)
    if got is None:
        return  # the reference decides
    assert not isinstance(expected, Exception), f"native encoded {value!r}, the reference refused: {expected}"
    assert got == expected


@given(JSON_VALUES)
@settings(max_examples=500, deadline=None)
def test_encode_agrees_on_generated_values(value: Any) -> None:
    got = N().encode(value)
    expected = _reference_encode(value)
    if got is not None:
        assert got == expected
    elif not isinstance(expected, Exception):
        # declining is allowed only where the reference is needed: astral keys, lone surrogates
        text = json.dumps(value, ensure_ascii=False)
        assert any(ord(ch) > 0xFFFF or 0xD800 <= ord(ch) <= 0xDFFF for ch in text), value


def test_canonical_encode_and_decode_use_the_native_paths_with_the_same_results() -> None:
    value = {"b": [1, "x\n"], "a": {"é": None, "z": True}}
    assert canonical.encode(value) == canonical._encode_slow(value) == N().encode(value)
    assert canonical.decode(canonical.encode(value)) == value
    with pytest.raises(EncodingError, match="duplicate object key 'a'"):
        canonical.decode(b'{"a":1,"a":2}')  # declined natively, refused by the reference with its message
    with pytest.raises(EncodingError, match=r"float 1\.5 is not allowed"):
        canonical.decode(b"[1.5]")
    with pytest.raises(EncodingError, match="safe range"):
        canonical.encode([2**53])


SAFE_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=25,
)


def _has_surrogate(value: Any) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in json.dumps(value, ensure_ascii=False))


@given(SAFE_VALUES, st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_fast_paths_take_ordinary_values(value: Any, ascii_only: bool) -> None:
    """Declining is always safe, so these check that the fast paths are taken where they should be."""
    if _has_surrogate(value):
        return
    data = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert _typed(N().decode(data)) == _typed(_reference_decode(data))
    if not any(ord(ch) > 0xFFFF for ch in "".join(_keys(value))):
        assert N().encode(value) == canonical._encode_slow(value)


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(k for v in value.values() for k in _keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


@pytest.mark.parametrize(
    "data",
    [b"null", b"-0", b'"\\ud83d\\ude00"', b'"\\u0000"', b"[" * 65 + b"]" * 65, b'{"a":' * 65 + b"1" + b"}" * 65],
)
def test_the_decoder_takes_edge_values_the_reference_accepts(data: bytes) -> None:
    assert _typed(N().decode(data)) == _typed(_reference_decode(data))


# --- check characters (core.codes) ---


def _reference_codes(fn_name: str, *args: Any) -> Any:
    import core.codes as codes

    saved, codes.NATIVE = codes.NATIVE, None
    try:
        return getattr(codes, fn_name)(*args)
    except Exception as exc:  # the exception's type and message are compared
        return (type(exc), str(exc))
    finally:
        codes.NATIVE = saved


USCC_TEXT = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZa", min_size=15, max_size=19)


@given(USCC_TEXT)
@settings(max_examples=500, deadline=None)
def test_uscc_check_char_agrees(text: str) -> None:
    got = N().uscc_check_char(text)
    expected = _reference_codes("uscc_check_char", text)
    assert got is None or got == expected
    if len(text) == 17 and all(ch in "0123456789ABCDEFGHJKLMNPQRTUWXY" for ch in text):
        assert got is not None


@given(st.text(alphabet="0123456789X٣a", max_size=20))
@settings(max_examples=500, deadline=None)
def test_mod11_2_agrees(text: str) -> None:
    got = N().mod11_2(text)
    assert got is None or got == _reference_codes("iso7064_mod11_2", text)
    if (text.isascii() and text.isdigit()) or text == "":
        assert got is not None


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZa-", max_size=30), st.integers(-2, 38))
@settings(max_examples=500, deadline=None)
def test_mod37_36_state_agrees(text: str, state: int) -> None:
    got = N().mod37_36_state(text, state)
    assert got is None or got == _reference_codes("mod37_36_state", text, state)


def test_check_character_vectors() -> None:
    # GB 32100-2015 example code and a GB 11643-1999 example number
    assert N().uscc_check_char("91350100M000100Y4") == "3"
    assert N().mod11_2("11010519491231002") == "X"
    assert N().uscc_check_char("91350100M000100Y") is None and N().uscc_check_char("91350100M000100YI") is None


@given(USCC_TEXT)
@settings(max_examples=500, deadline=None)
def test_uscc_valid_agrees(text: str) -> None:
    from core.codes import make_uscc

    organisation = "".join(ch for ch in text if ch in "0123456789ABCDEFGHJKLMNPQRTUWXY")[:9].ljust(9, "0")
    for candidate in (text, make_uscc("9", "1", "110000", organisation), text[:17] + "0"):
        reference = _reference_codes("validate_uscc", candidate)
        got = N().uscc_valid(candidate)
        assert got is None or (got is True and reference == candidate), candidate
        if reference == candidate:
            assert got is True


def _reference_license_id_error(*fields: Any) -> str | None:
    """None when core.codes.LicenseId (its Python checks) accepts the fields, else the error's type."""
    import core.codes as codes
    from core.codes import LicenseId

    saved, codes.NATIVE = codes.NATIVE, None
    try:
        LicenseId(*fields)
        return None
    except (TypeError, ValueError) as exc:
        return type(exc).__name__
    finally:
        codes.NATIVE = saved


def test_license_id_valid_agrees_on_mutated_identifiers() -> None:
    from core.codes import TYPE_CODE_OF, LicenseId, LicenseKind, make_uscc

    rng = random.Random(7)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZa.-"
    accepted = 0
    for i in range(3000):
        issuer = make_uscc("1", "2", "440100", f"{i:09d}")
        good = LicenseId.build(TYPE_CODE_OF[LicenseKind.NURSE], issuer, f"S{i}", 1 + i % 999)
        fields: list[Any] = [good.type_code, good.issuer_uscc, good.serial, good.version, good.check]
        if i % 3:  # mutate one field, one character or the version
            k = rng.randrange(5)
            if k == 3:
                fields[3] = rng.choice([0, 1000, -1, True, 2**70, good.version + 1, "1"])
            elif isinstance(fields[k], str) and fields[k]:
                text = fields[k]
                pos = rng.randrange(len(text))
                fields[k] = text[:pos] + rng.choice(alphabet) + text[pos + 1 :]
        reference = _reference_license_id_error(*fields)
        got = N().license_id_valid(*fields)
        assert got is None or (got is True and reference is None), fields
        if reference is None:
            assert got is True, fields
            accepted += 1
    assert accepted > 1000
