"""SM2 signatures and keys (GB/T 32918.2-2016, GM/T 0003-2012, GM/T 0009-2012): known answers, round trips,
and every malformed input an attacker could hand a verifier."""

from __future__ import annotations

import contextlib
import copy
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import der
from core.ec import SM2_P256, Curve
from core.errors import FormatError, KeyFormatError, SignatureError, SignatureFormatError
from core.hashing import sm3
from core.sm2 import (
    DEFAULT_SIGNER_ID,
    EC_PUBLIC_KEY_OID,
    SM2_CURVE_OID,
    PrivateKey,
    PublicKey,
    compute_z,
    decode_signature,
    encode_signature,
)

N = SM2_P256.n
P = SM2_P256.p

# GB/T 32918.2-2016 Annex A.2 (= GM/T 0003.2-2012 Annex A.2): the Fp-256 example curve, Alice's key and ID.
EXAMPLE_CURVE = Curve(
    name="gbt32918-example-fp256",
    p=0x8542D69E4C044F18E8B92435BF6FF7DE457283915C45517D722EDB8B08F1DFC3,
    a=0x787968B4FA32C3FD2417842E73BBFEFF2F3C848B6831D7E0EC65228B3937E498,
    b=0x63E4C6D3B23B0C849CF84241484BFE48F61D59A5B16BA06E6E12D1DA27C5249A,
    gx=0x421DEBD61B62EAB6746434EBC3CC315E32220B3BADD50BDC4C4E6C147FEDD43D,
    gy=0x0680512BCBB42C07D47349D2153B70C4E5D7FDFCBFA36EA1A85841B9E46E09A2,
    n=0x8542D69E4C044F18E8B92435BF6FF7DD297720630485628D5AE74EE7C32E79B7,
)
ALICE_ID = b"ALICE123@YAHOO.COM"
EXAMPLE_D = 0x128B2FA8BD433C6C068C8D803DFF79792A519A55171B1B650C23661D15897263
EXAMPLE_PUBLIC = (
    0x0AE4C7798AA0F119471BEE11825BE46202BB79E2A5844495E97C04FF4DF2548A,
    0x7C0240F88F1CD4E16352A73C17B7F16F07353E53A176D684A9FE0C6BB798E857,
)
EXAMPLE_Z = bytes.fromhex("F4A38489E32B45B6F876E3AC2168CA392362DC8F23459C1D1146FC3DBFB7BC9A")
EXAMPLE_E = 0xB524F552CD82B8B028476E005C377FB19A87E6FC682D48BB5D42E3D9B9EFFE76
EXAMPLE_K = 0x6CB28D99385C175C94F94E934817663FC176D925DD72B727260DBAAE1FB2F96F
EXAMPLE_R = 0x40F1EC59F793D9F49E09DCEF49130D4194F79FB1EED2CAA55BACDB49C4E755D1
EXAMPLE_S = 0x6FC6DAC32C5D5CF10C77DFB20F7C2EB667A457872FB09EC56327A67EC7DEEBE7

# The recommended-curve known-answer vector (GB/T 32918.5 curve, default signer ID, message "message digest").
RECOMMENDED_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
RECOMMENDED_PUBLIC = bytes.fromhex(
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
RECOMMENDED_K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
RECOMMENDED_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
RECOMMENDED_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
# Z for that key with Alice's ID on the recommended curve; test_openssl_interop.py confirms it with OpenSSL.
RECOMMENDED_ALICE_Z = bytes.fromhex("26db4bc1839bd22e97e1dab667ec5e0a730d5e16521398b4435c576a93afd7ed")

MESSAGE = b"message digest"


def reference_sign(curve: Curve, d: int, e: int, k: int) -> tuple[int, int]:
    """GB/T 32918.2 §6.1 steps A3-A6 with a given nonce, in pure Python (test oracle only)."""
    point = curve.multiply(k)
    assert point is not None
    r = (e + point[0]) % curve.n
    s = pow(1 + d, -1, curve.n) * (k - r * d) % curve.n
    return r, s


def reference_verify(curve: Curve, public: tuple[int, int], e: int, r: int, s: int) -> bool:
    """GB/T 32918.2 §7.1 steps B1-B7 in pure Python (test oracle only)."""
    if not (1 <= r < curve.n and 1 <= s < curve.n):
        return False
    t = (r + s) % curve.n
    if t == 0:
        return False
    point = curve.add(curve.multiply(s), curve.multiply(t, public))
    return point is not None and (e + point[0]) % curve.n == r


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture(scope="module")
def signature(key: PrivateKey) -> bytes:
    return key.sign(MESSAGE)


# --- known answers -----------------------------------------------------------------------------------------


def test_gbt32918_annex_a_example_curve_public_key_z_e_and_signature() -> None:
    assert EXAMPLE_CURVE.is_on_curve(EXAMPLE_CURVE.g)
    assert EXAMPLE_CURVE.multiply(EXAMPLE_D) == EXAMPLE_PUBLIC
    z = compute_z(EXAMPLE_PUBLIC, ALICE_ID, EXAMPLE_CURVE)
    assert z == EXAMPLE_Z
    e = int.from_bytes(sm3(z + MESSAGE), "big")
    assert e == EXAMPLE_E
    assert reference_sign(EXAMPLE_CURVE, EXAMPLE_D, e, EXAMPLE_K) == (EXAMPLE_R, EXAMPLE_S)
    assert reference_verify(EXAMPLE_CURVE, EXAMPLE_PUBLIC, e, EXAMPLE_R, EXAMPLE_S)
    assert not reference_verify(EXAMPLE_CURVE, EXAMPLE_PUBLIC, e + 1, EXAMPLE_R, EXAMPLE_S)


def test_recommended_curve_known_answer_signature_verifies_through_gmssl() -> None:
    key = PrivateKey.from_bytes(RECOMMENDED_D.to_bytes(32, "big"))
    assert key.public_key.raw == RECOMMENDED_PUBLIC
    e = int.from_bytes(key.public_key.digest(MESSAGE), "big")
    assert reference_sign(SM2_P256, RECOMMENDED_D, e, RECOMMENDED_K) == (RECOMMENDED_R, RECOMMENDED_S)
    known = encode_signature(RECOMMENDED_R, RECOMMENDED_S)
    key.public_key.verify(MESSAGE, known)  # GmSSL verification of the published (r, s)
    with pytest.raises(SignatureError):
        key.public_key.verify(b"message digesT", known)


def test_recommended_curve_z_for_alice_id() -> None:
    public = PublicKey.from_raw(RECOMMENDED_PUBLIC)
    assert public.z(ALICE_ID) == RECOMMENDED_ALICE_Z
    assert public.z() == compute_z(public.point, DEFAULT_SIGNER_ID)


def test_generated_key_public_point_is_d_times_g(key: PrivateKey) -> None:
    d = int.from_bytes(key.to_bytes(), "big")
    point = SM2_P256.multiply(d)
    assert point is not None
    assert key.public_key.point == point


# --- sign / verify -----------------------------------------------------------------------------------------


def test_sign_verify_round_trip(key: PrivateKey, signature: bytes) -> None:
    key.public_key.verify(MESSAGE, signature)
    assert key.public_key.is_valid_signature(MESSAGE, signature)
    assert decode_signature(signature)  # GmSSL's output is strict DER


@pytest.mark.parametrize("message", [b"", b"\x00", b"x" * 100_000, bytearray(b"mutable"), memoryview(b"view")])
def test_sign_verify_any_message(key: PrivateKey, message: bytes) -> None:
    key.public_key.verify(message, key.sign(message))


def test_signatures_are_randomised(key: PrivateKey) -> None:
    assert key.sign(MESSAGE) != key.sign(MESSAGE)


def test_signer_id_mismatch_fails(key: PrivateKey) -> None:
    sig = key.sign(MESSAGE, signer_id=b"province-110000")
    key.public_key.verify(MESSAGE, sig, signer_id=b"province-110000")
    with pytest.raises(SignatureError) as info:
        key.public_key.verify(MESSAGE, sig)
    assert info.value.key_id == key.key_id
    assert not key.public_key.is_valid_signature(MESSAGE, sig, signer_id=b"province-310000")


def test_signature_from_other_key_fails(key: PrivateKey) -> None:
    other = PrivateKey.generate()
    with pytest.raises(SignatureError):
        key.public_key.verify(MESSAGE, other.sign(MESSAGE))


def test_empty_and_longest_signer_ids(key: PrivateKey) -> None:
    for signer_id in (b"", b"\xff" * 8191):
        key.public_key.verify(MESSAGE, key.sign(MESSAGE, signer_id), signer_id)


def test_signer_id_misuse_is_caller_error(key: PrivateKey) -> None:
    with pytest.raises(ValueError, match="ENTL"):
        key.sign(MESSAGE, b"x" * 8192)
    with pytest.raises(TypeError):
        key.sign(MESSAGE, "1234567812345678")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        key.sign("text")  # type: ignore[arg-type]


def test_z_is_cached_per_signer_id(key: PrivateKey) -> None:
    public = key.public_key
    assert public.z() is public.z()
    assert public.z(b"a") != public.z(b"b")
    for i in range(100):  # the cache stays bounded
        public.z(str(i).encode())
    assert public.z(b"a") == compute_z(public.point, b"a")


@given(data=st.data())
def test_any_bit_flip_in_message_fails(key: PrivateKey, signature: bytes, data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, len(MESSAGE) * 8 - 1))
    flipped = bytearray(MESSAGE)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SignatureError):
        key.public_key.verify(bytes(flipped), signature)


@given(data=st.data())
def test_any_bit_flip_in_signature_fails(key: PrivateKey, signature: bytes, data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, len(signature) * 8 - 1))
    flipped = bytearray(signature)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises((SignatureError, SignatureFormatError)):
        key.public_key.verify(MESSAGE, bytes(flipped))
    assert not key.public_key.is_valid_signature(MESSAGE, bytes(flipped))


# --- malformed signatures ----------------------------------------------------------------------------------


def _int(value: int) -> bytes:
    return der.encode_integer(value)


VALID_R = _int(5)


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        (b"", "expected SEQUENCE, found end of input"),
        (b"\x31\x06" + VALID_R + VALID_R, "expected SEQUENCE, found tag 0x31"),
        (b"\x30\x80" + VALID_R + VALID_R + b"\x00\x00", "indefinite length"),
        (b"\x30\x81\x06" + VALID_R + VALID_R, "non-minimal length"),
        (b"\x30\x82\x00\x06" + VALID_R + VALID_R, "non-minimal length (leading zero"),
        (b"\x30\x06" + VALID_R + VALID_R + b"\x00", "1 trailing bytes"),
        (b"\x30\x09" + VALID_R + VALID_R + _int(1), "3 trailing bytes"),
        (b"\x30\x07" + VALID_R + VALID_R, "runs past the end"),
        (b"\x30\x03" + VALID_R, "s: expected INTEGER, found end of input"),
        (b"\x30\x07\x02\x02\x00\x05" + VALID_R, "INTEGER r: non-minimal"),
        (b"\x30\x05\x02\x00" + VALID_R, "INTEGER r: empty"),
        (b"\x30\x06" + _int(0) + VALID_R, "r is outside [1, n-1]"),
        (b"\x30\x06" + _int(-5) + VALID_R, "r is outside [1, n-1]"),
        (der.encode_sequence(VALID_R, _int(N)), "s is outside [1, n-1]"),
        (b"\x30\x06\x04\x01\x05" + VALID_R, "r: expected INTEGER, found OCTET STRING"),
        (b"\x3f\x06" + VALID_R + VALID_R, "found tag 0x3f"),
        (b"\x30", "truncated before the length"),
        (b"\x30\x85\x00\x00\x00\x00\x06", "too large"),
    ],
)
def test_malformed_signature_is_format_error(key: PrivateKey, blob: bytes, expected: str) -> None:
    with pytest.raises(SignatureFormatError) as info:
        key.public_key.verify(MESSAGE, blob)
    assert expected in str(info.value)
    assert not key.public_key.is_valid_signature(MESSAGE, blob)


def test_wellformed_but_wrong_signature_is_signature_error(key: PrivateKey) -> None:
    for r, s in [(1, 1), (N - 1, N - 1), (1, N - 1)]:  # (1, n-1): t = r + s = 0 mod n
        with pytest.raises(SignatureError):
            key.public_key.verify(MESSAGE, encode_signature(r, s))


def test_encode_signature_refuses_out_of_range() -> None:
    with pytest.raises(ValueError):
        encode_signature(0, 1)


@given(st.binary(max_size=80))
def test_random_signature_bytes_never_crash(blob: bytes) -> None:
    with contextlib.suppress(SignatureFormatError):
        decode_signature(blob)


@given(data=st.data())
def test_mutated_signature_never_crashes(key: PrivateKey, signature: bytes, data: st.DataObject) -> None:
    blob = bytearray(signature)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(len(blob) - 1, 0)))
        if op == "set" and blob:
            blob[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            blob.insert(pos, data.draw(st.integers(0, 255)))
        elif op == "delete" and blob:
            del blob[pos]
        else:
            del blob[pos:]
    result = key.public_key.is_valid_signature(MESSAGE, bytes(blob))
    assert result == (bytes(blob) == signature)


# --- public keys -------------------------------------------------------------------------------------------


def _raw(x: int, y: int) -> bytes:
    return x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _spki(point: bytes, algorithm: str = EC_PUBLIC_KEY_OID, curve: str = SM2_CURVE_OID) -> bytes:
    alg = der.encode_sequence(der.encode_oid(algorithm), der.encode_oid(curve))
    return der.encode_sequence(alg, der.encode_bit_string(point))


def test_public_key_encodings_round_trip(key: PrivateKey) -> None:
    public = key.public_key
    assert PublicKey.from_der(public.to_der()) == public
    assert PublicKey.from_pem(public.to_pem()) == public
    assert PublicKey.from_pem(public.to_pem().decode()) == public
    assert PublicKey.from_raw(public.raw) == public
    assert PublicKey.from_raw(b"\x04" + public.raw) == public
    assert len(public.raw) == 64
    assert public.key_id == sm3(public.to_der()).hex()
    assert public.to_pem().startswith(b"-----BEGIN PUBLIC KEY-----\n")


def test_public_key_is_immutable_hashable_and_picklable(key: PrivateKey) -> None:
    public = key.public_key
    with pytest.raises(AttributeError):
        public._raw = b""
    copy_ = PublicKey.from_raw(public.raw)
    assert copy_ == public and hash(copy_) == hash(public) and len({copy_, public}) == 1
    assert public != PrivateKey.generate().public_key
    assert public != public.raw
    assert pickle.loads(pickle.dumps(public)) == public
    assert copy.deepcopy(public) == public


GX, GY = SM2_P256.g
Y1 = 0x9F7A091433A81E3F218F405F792355BF2AA98B5FFA95982F03870800065279A3  # (1, Y1) is on the SM2 curve


def test_small_x_point_is_valid() -> None:
    assert PublicKey.from_raw(_raw(1, Y1)).point == (1, Y1)


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        (b"\x00", "point at infinity"),
        (bytes(64), "point at infinity"),
        (b"\x04" + bytes(64), "point at infinity"),
        (_raw(P, GY), "not below the field prime"),
        (_raw(GX, P), "not below the field prime"),
        # (1, Y1) is on the curve; (1 + p, Y1) passes a check done only modulo p.
        (_raw(1 + P, Y1), "not below the field prime"),
        (_raw(GX, GY + 1), "not on the SM2 curve"),
        (_raw(EXAMPLE_PUBLIC[0], EXAMPLE_PUBLIC[1]), "not on the SM2 curve"),  # on another curve
        (b"\x05" + _raw(GX, GY), "expected 64 bytes"),
        (b"\x02" + GX.to_bytes(32, "big"), "compressed points are not accepted"),
        (_raw(GX, GY)[:63], "got 63 bytes"),
        (b"", "got 0 bytes"),
    ],
)
def test_invalid_points_are_rejected(point: bytes, expected: str) -> None:
    with pytest.raises(KeyFormatError) as info:
        PublicKey.from_raw(point)
    assert expected in str(info.value)
    with pytest.raises(KeyFormatError):
        PublicKey.from_der(_spki(point if len(point) != 64 else b"\x04" + point))


@pytest.mark.parametrize(
    ("spki", "expected"),
    [
        (_spki(b"\x04" + _raw(GX, GY), curve="1.2.840.10045.3.1.7"), "curve 1.2.840.10045.3.1.7 is not"),
        (_spki(b"\x04" + _raw(GX, GY), algorithm="1.2.840.113549.1.1.1"), "is not id-ecPublicKey"),
        (
            der.encode_sequence(
                der.encode_sequence(der.encode_oid(EC_PUBLIC_KEY_OID), der.encode_tlv(der.NULL, b"")),
                der.encode_bit_string(b"\x04" + _raw(GX, GY)),
            ),
            "explicit curve parameters are not supported",
        ),
        (_spki(b"\x04" + _raw(GX, GY)) + b"\x00", "trailing bytes"),
        (
            der.encode_sequence(
                der.encode_sequence(der.encode_oid(EC_PUBLIC_KEY_OID), der.encode_oid(SM2_CURVE_OID)),
                der.encode_tlv(der.BIT_STRING, b"\x01\x04" + _raw(GX, GY)),
            ),
            "1 unused bits",
        ),
    ],
)
def test_invalid_spki_is_rejected(spki: bytes, expected: str) -> None:
    with pytest.raises(KeyFormatError) as info:
        PublicKey.from_der(spki)
    assert expected in str(info.value)


def test_public_key_pem_errors(key: PrivateKey) -> None:
    with pytest.raises(KeyFormatError, match="expected PUBLIC KEY, found PRIVATE KEY"):
        PublicKey.from_pem(key.to_pem())
    with pytest.raises(KeyFormatError, match="no PUBLIC KEY block"):
        PublicKey.from_pem(b"hello")
    with pytest.raises(KeyFormatError, match="2 key blocks"):
        PublicKey.from_pem(key.public_key.to_pem() * 2)
    with pytest.raises(KeyFormatError, match="END"):
        PublicKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFormatError, match="base64"):
        PublicKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(TypeError):
        PublicKey.from_pem(12)  # type: ignore[arg-type]


@given(st.binary(max_size=200))
def test_random_public_key_bytes_never_crash(blob: bytes) -> None:
    for parse in (PublicKey.from_der, PublicKey.from_raw, PublicKey.from_pem):
        with contextlib.suppress(KeyFormatError):
            parse(blob)


@given(data=st.data())
def test_mutated_spki_never_crashes(key: PrivateKey, data: st.DataObject) -> None:
    blob = bytearray(key.public_key.to_der())
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del blob[data.draw(st.integers(0, len(blob) - 1)) :]
    try:
        parsed = PublicKey.from_der(bytes(blob))
    except KeyFormatError:
        return
    assert parsed.to_der() == bytes(blob)  # whatever parses is canonical


# --- private keys ------------------------------------------------------------------------------------------


def test_private_key_encodings_round_trip(key: PrivateKey) -> None:
    assert PrivateKey.from_der(key.to_der()) == key
    assert PrivateKey.from_pem(key.to_pem()) == key
    assert PrivateKey.from_pem(key.to_pem().decode()) == key
    assert PrivateKey.from_bytes(key.to_bytes()) == key
    assert key.to_pem().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert key.key_id == key.public_key.key_id


def test_repr_never_shows_the_scalar(key: PrivateKey) -> None:
    scalar = key.to_bytes().hex()
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert scalar not in text and scalar.upper() not in text
        assert key.key_id[:16] in text
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(key)
    with pytest.raises(AttributeError):
        key._d = b""
    assert copy.deepcopy(key) is key


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        (bytes(32), "outside [1, n-2]"),
        ((N - 1).to_bytes(32, "big"), "outside [1, n-2]"),
        (N.to_bytes(32, "big"), "outside [1, n-2]"),
        (b"\xff" * 32, "outside [1, n-2]"),
        (b"\x01" * 31, "got 31 bytes"),
        (b"\x01" * 33, "got 33 bytes"),
    ],
)
def test_invalid_scalars_are_rejected(scalar: bytes, expected: str) -> None:
    with pytest.raises(KeyFormatError) as info:
        PrivateKey.from_bytes(scalar)
    assert expected in str(info.value)


def test_extreme_valid_scalars_sign() -> None:
    for d in (1, 2, N - 2):
        key = PrivateKey.from_bytes(d.to_bytes(32, "big"))
        key.public_key.verify(MESSAGE, key.sign(MESSAGE))


def _ec_private_key(d: bytes, *, params: bool, public: bytes | None) -> bytes:
    parts = [der.encode_integer(1), der.encode_octet_string(d)]
    if params:
        parts.append(der.encode_explicit(0, der.encode_oid(SM2_CURVE_OID)))
    if public is not None:
        parts.append(der.encode_explicit(1, der.encode_bit_string(public)))
    return der.encode_sequence(*parts)


def _pkcs8(inner: bytes, version: int = 0, curve: str = SM2_CURVE_OID, extra: bytes = b"") -> bytes:
    alg = der.encode_sequence(der.encode_oid(EC_PUBLIC_KEY_OID), der.encode_oid(curve))
    return der.encode_sequence(der.encode_integer(version), alg, der.encode_octet_string(inner), extra)


def test_pkcs8_without_public_key_derives_it(key: PrivateKey) -> None:
    loaded = PrivateKey.from_der(_pkcs8(_ec_private_key(key.to_bytes(), params=False, public=None)))
    assert loaded.public_key == key.public_key


def test_pkcs8_with_short_scalar_and_curve_params_loads() -> None:
    key = PrivateKey.from_bytes((7).to_bytes(32, "big"))
    loaded = PrivateKey.from_der(_pkcs8(_ec_private_key(b"\x07", params=True, public=None)))
    assert loaded == key


def test_pkcs8_v2_with_attributes_and_matching_public_key(key: PrivateKey) -> None:
    inner = _ec_private_key(key.to_bytes(), params=False, public=None)
    attributes = der.encode_tlv(der.context_tag(0), b"")
    outer_public = der.encode_tlv(der.context_tag(1, constructed=False), b"\x00\x04" + key.public_key.raw)
    assert PrivateKey.from_der(_pkcs8(inner, 1, extra=attributes + outer_public)) == key
    other = PrivateKey.generate().public_key.raw
    bad = der.encode_tlv(der.context_tag(1, constructed=False), b"\x00\x04" + other)
    with pytest.raises(KeyFormatError, match="does not match"):
        PrivateKey.from_der(_pkcs8(inner, 1, extra=bad))


def test_sec1_pem_labels_load(key: PrivateKey) -> None:
    sec1 = _ec_private_key(key.to_bytes(), params=True, public=b"\x04" + key.public_key.raw)
    for label in ("EC PRIVATE KEY", "SM2 PRIVATE KEY"):
        assert PrivateKey.from_pem(der.pem_encode(label, sec1)) == key
    params = der.pem_encode("SM2 PARAMETERS", der.encode_oid(SM2_CURVE_OID))
    assert PrivateKey.from_pem(params + der.pem_encode("EC PRIVATE KEY", sec1)) == key


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda k, o: _pkcs8(_ec_private_key(k.to_bytes(), params=False, public=b"\x04" + o.public_key.raw)),
            "does not match the private scalar",
        ),
        (lambda k, o: _pkcs8(_ec_private_key(k.to_bytes(), params=False, public=None), 2), "version 2"),
        (
            lambda k, o: _pkcs8(_ec_private_key(k.to_bytes(), params=False, public=None), curve="1.3.132.0.10"),
            "curve 1.3.132.0.10 is not the SM2 curve",
        ),
        (
            lambda k, o: _pkcs8(der.encode_sequence(der.encode_integer(0), der.encode_octet_string(k.to_bytes()))),
            "ECPrivateKey: version 0 is not 1",
        ),
        (
            lambda k, o: _pkcs8(_ec_private_key(k.to_bytes() + b"\x00", params=False, public=None)),
            "privateKey is 33 bytes",
        ),
        (
            lambda k, o: _pkcs8(_ec_private_key(k.to_bytes(), params=False, public=b"\x04" + bytes(64))),
            "point at infinity",
        ),
        (lambda k, o: k.to_der() + b"\x00", "trailing bytes"),
        (lambda k, o: k.to_der()[:-1], "runs past the end"),
    ],
)
def test_invalid_pkcs8_is_rejected(key: PrivateKey, make: object, expected: str) -> None:
    other = PrivateKey.generate()
    blob = make(key, other)  # type: ignore[operator]
    with pytest.raises(KeyFormatError) as info:
        PrivateKey.from_der(blob)
    assert expected in str(info.value)


def test_private_key_pem_errors(key: PrivateKey) -> None:
    sec1_without_curve = _ec_private_key(key.to_bytes(), params=False, public=None)
    with pytest.raises(KeyFormatError, match="no namedCurve"):
        PrivateKey.from_pem(der.pem_encode("EC PRIVATE KEY", sec1_without_curve))
    with pytest.raises(KeyFormatError, match="encrypted PKCS#8 is not supported"):
        PrivateKey.from_pem(der.pem_encode("ENCRYPTED PRIVATE KEY", b"\x30\x00"))
    with pytest.raises(KeyFormatError, match="found PUBLIC KEY"):
        PrivateKey.from_pem(key.public_key.to_pem())
    with pytest.raises(KeyFormatError, match="2 key blocks"):
        PrivateKey.from_pem(key.to_pem() + key.to_pem())


@given(st.binary(max_size=200))
def test_random_private_key_bytes_never_crash(blob: bytes) -> None:
    for parse in (PrivateKey.from_der, PrivateKey.from_bytes, PrivateKey.from_pem):
        with contextlib.suppress(KeyFormatError):
            parse(blob)


@given(data=st.data())
def test_mutated_pkcs8_never_crashes(key: PrivateKey, data: st.DataObject) -> None:
    blob = bytearray(key.to_der())
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del blob[data.draw(st.integers(0, len(blob) - 1)) :]
    with contextlib.suppress(KeyFormatError):
        PrivateKey.from_der(bytes(blob))


@given(st.text(max_size=300))
def test_random_pem_text_never_crashes(text: str) -> None:
    for parse in (PrivateKey.from_pem, PublicKey.from_pem):
        with contextlib.suppress(KeyFormatError):
            parse("-----BEGIN PRIVATE KEY-----\n" + text + "\n-----END PRIVATE KEY-----\n")


def test_format_errors_are_value_errors() -> None:
    assert issubclass(KeyFormatError, FormatError) and issubclass(SignatureFormatError, ValueError)
