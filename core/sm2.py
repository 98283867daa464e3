"""SM2 digital signatures (GB/T 32918.2-2016 / GM/T 0003.2-2012) on the recommended curve (GB/T 32918.5-2017).

Rules this module enforces, before any code:

1. **Signer ID.** A signature covers ``e = SM3(Z_A || M)`` where
   ``Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A)`` (GB/T 32918.2 §5.5). The signer
   ID defaults to ``"1234567812345678"`` (GM/T 0009-2012 §10), the value OpenSSL, GmSSL and Tongsuo use.
   ``Z_A`` is computed once per key and ID and cached on the :class:`PublicKey`.
2. **Public keys are validated on entry** (GB/T 32918.1 §6.2.1): uncompressed encoding only, not the point at
   infinity, coordinates below ``p``, on the curve. A :class:`PublicKey` object is therefore always valid.
3. **Private scalars** lie in ``[1, n-2]`` (GB/T 32918.2 §6.1 needs ``(1 + d)^-1 mod n``). A public key stored
   next to a scalar must equal ``d·G``; when a PKCS#8 file omits it, it is computed (:mod:`core.ec`).
4. **Signatures** are DER ``SEQUENCE { r INTEGER, s INTEGER }`` (GM/T 0009-2012 §7.3) read strictly by
   :mod:`core.der`, with ``r, s`` in ``[1, n-1]``; anything else is a :class:`SignatureFormatError`. A
   well-formed signature that does not verify is a :class:`SignatureError` naming the key.
5. **Key files** are what OpenSSL 3 reads and writes: SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) and PKCS#8
   (RFC 5208 / RFC 5958) with ``AlgorithmIdentifier { id-ecPublicKey, namedCurve sm2 }`` (RFC 5480 §2.1.1),
   the key itself an RFC 5915 ``ECPrivateKey``; plus SEC1 ``EC PRIVATE KEY`` / ``SM2 PRIVATE KEY`` PEM with
   the SM2 curve OID. Malformed keys raise :class:`KeyFormatError`, never another exception.

Signing and verification run in GmSSL 3.2 (``gmssl_pyx``) on the precomputed digest ``e``; GmSSL draws a fresh
random nonce ``k`` for every signature. GmSSL 3.2 is built with debug tracing: every *failed* verification
writes two ``sm2_sign.c:NNN:sm2_do_verify():`` lines to the process's C-level stderr. They are noise, not
errors; the outcome is the exception raised here.
"""

from __future__ import annotations

import hmac
from typing import Any

from gmssl_pyx import GmsslInnerError, sm2_key_generate, sm2_sign_sm3_digest, sm2_verify_sm3_digest

from core import der
from core.ec import SM2_P256, Curve
from core.errors import KeyFormatError, SignatureError, SignatureFormatError
from core.hashing import sm3

DEFAULT_SIGNER_ID: bytes = b"1234567812345678"
SM2_CURVE_OID = "1.2.156.10197.1.301"
EC_PUBLIC_KEY_OID = "1.2.840.10045.2.1"
CURVE: Curve = SM2_P256
MAX_SIGNER_ID_LENGTH = 8191
"""ENTL is the ID length in *bits* in two bytes (GB/T 32918.2 §5.5), so an ID has at most 8191 bytes."""

_N = CURVE.n
_ALGORITHM_IDENTIFIER = der.encode_sequence(der.encode_oid(EC_PUBLIC_KEY_OID), der.encode_oid(SM2_CURVE_OID))
_Z_CACHE_LIMIT = 16


def _field(value: int, curve: Curve) -> bytes:
    return value.to_bytes(curve.field_bytes, "big")


def _check_signer_id(signer_id: bytes) -> None:
    if not isinstance(signer_id, bytes):
        raise TypeError(f"signer_id must be bytes, not {type(signer_id).__name__}")
    if len(signer_id) > MAX_SIGNER_ID_LENGTH:
        raise ValueError(f"signer_id is {len(signer_id)} bytes; at most {MAX_SIGNER_ID_LENGTH} fit in ENTL")


def _as_bytes(value: Any, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{name} must be bytes, not {type(value).__name__}")


def compute_z(point: tuple[int, int], signer_id: bytes = DEFAULT_SIGNER_ID, curve: Curve = CURVE) -> bytes:
    """``Z = SM3(ENTL || ID || a || b || x_G || y_G || x_A || y_A)`` (GB/T 32918.2-2016 §5.5)."""
    _check_signer_id(signer_id)
    entl = (len(signer_id) * 8).to_bytes(2, "big")
    fields = (curve.a, curve.b, curve.gx, curve.gy, point[0], point[1])
    return sm3(entl + signer_id + b"".join(_field(v, curve) for v in fields))


# --- signatures --------------------------------------------------------------------------------------------


def decode_signature(signature: bytes) -> tuple[int, int]:
    """``(r, s)`` from a strict DER ``SEQUENCE { r INTEGER, s INTEGER }`` with ``r, s`` in ``[1, n-1]``."""
    signature = _as_bytes(signature, "signature")
    top = der.Reader(signature, "SM2 signature", SignatureFormatError)
    seq = top.read_sequence("top-level value")
    top.finish()
    r = seq.read_integer("r")
    s = seq.read_integer("s")
    seq.finish()
    for name, value in (("r", r), ("s", s)):
        if not 1 <= value < _N:
            raise SignatureFormatError(f"SM2 signature: {name} is outside [1, n-1]")
    return r, s


def encode_signature(r: int, s: int) -> bytes:
    """DER ``SEQUENCE { r INTEGER, s INTEGER }`` (GM/T 0009-2012 §7.3)."""
    if not (1 <= r < _N and 1 <= s < _N):
        raise ValueError("r and s must lie in [1, n-1]")
    return der.encode_sequence(der.encode_integer(r), der.encode_integer(s))


# --- key encodings -----------------------------------------------------------------------------------------


def _decode_point(data: bytes, what: str) -> tuple[int, int]:
    """An uncompressed point (``04 || x || y`` or bare ``x || y``) validated per GB/T 32918.1 §6.2.1."""
    size = CURVE.field_bytes
    if len(data) == 2 * size + 1 and data[0] == 0x04:
        body = data[1:]
    elif len(data) == 2 * size:
        body = data
    elif len(data) == size + 1 and data[0] in (0x02, 0x03):
        raise KeyFormatError(f"{what}: compressed points are not accepted; use the uncompressed form")
    elif data == b"\x00":
        raise KeyFormatError(f"{what}: the point at infinity is not a public key")
    else:
        raise KeyFormatError(f"{what}: expected 64 bytes x||y or 65 bytes 04||x||y, got {len(data)} bytes")
    x = int.from_bytes(body[:size], "big")
    y = int.from_bytes(body[size:], "big")
    if x == 0 and y == 0:
        raise KeyFormatError(f"{what}: (0, 0) encodes the point at infinity, which is not a public key")
    if x >= CURVE.p or y >= CURVE.p:
        raise KeyFormatError(f"{what}: coordinate not below the field prime p")
    if not CURVE.is_on_curve((x, y)):
        raise KeyFormatError(f"{what}: point is not on the SM2 curve")
    return x, y


def _read_algorithm(seq: der.Reader) -> None:
    """RFC 5480 §2.1.1: ``AlgorithmIdentifier { id-ecPublicKey, namedCurve }`` with the SM2 curve."""
    alg = seq.read_sequence("AlgorithmIdentifier")
    oid = alg.read_oid("algorithm")
    if oid != EC_PUBLIC_KEY_OID:
        raise KeyFormatError(f"key algorithm {oid} is not id-ecPublicKey ({EC_PUBLIC_KEY_OID})")
    if alg.peek_tag() != der.OBJECT_IDENTIFIER:
        raise alg.fail("parameters: expected the namedCurve OID (explicit curve parameters are not supported)")
    _check_curve(alg.read_oid("namedCurve"))
    alg.finish()


def _check_curve(oid: str) -> None:
    if oid != SM2_CURVE_OID:
        raise KeyFormatError(f"curve {oid} is not the SM2 curve ({SM2_CURVE_OID})")


def _single_pem_block(data: bytes | str, wanted: dict[str, str]) -> tuple[str, bytes]:
    """The one PEM block whose label is in ``wanted`` (label -> kind); parameter blocks are skipped."""
    if not isinstance(data, bytes | bytearray | str):
        raise TypeError(f"PEM data must be bytes or str, not {type(data).__name__}")
    blocks = der.pem_blocks(data, KeyFormatError)
    found = [(label, body) for label, body in blocks if label in wanted]
    others = [label for label, _ in blocks if label not in wanted and not label.endswith("PARAMETERS")]
    kinds = " or ".join(sorted(set(wanted.values())))
    if others and not found:
        hint = ""
        if "ENCRYPTED PRIVATE KEY" in others:
            hint = "; encrypted PKCS#8 is not supported: use a licledger keystore file"
        raise KeyFormatError(f"PEM: expected {kinds}, found {', '.join(others)}{hint}")
    if not found:
        raise KeyFormatError(f"PEM: no {kinds} block found")
    if len(found) + len(others) > 1:
        raise KeyFormatError(f"PEM: {len(found) + len(others)} key blocks found, expected exactly one")
    return found[0]


# --- public keys -------------------------------------------------------------------------------------------


class PublicKey:
    """A validated SM2 public key. Immutable; equal and hashed by its point."""

    __slots__ = ("_der", "_key_id", "_point", "_raw", "_z_cache")

    _raw: bytes
    _point: tuple[int, int]
    _der: bytes
    _key_id: str
    _z_cache: dict[bytes, bytes]

    def __init__(self, point: bytes) -> None:
        """Build from a raw point (see :meth:`from_raw`); raises :class:`KeyFormatError` if it is invalid."""
        point = _as_bytes(point, "point")
        x, y = _decode_point(point, "SM2 public key")
        raw = _field(x, CURVE) + _field(y, CURVE)
        spki = der.encode_sequence(_ALGORITHM_IDENTIFIER, der.encode_bit_string(b"\x04" + raw))
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_point", (x, y))
        object.__setattr__(self, "_der", spki)
        object.__setattr__(self, "_key_id", sm3(spki).hex())
        object.__setattr__(self, "_z_cache", {})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PublicKey is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("PublicKey is immutable")

    @classmethod
    def from_raw(cls, point: bytes) -> PublicKey:
        """From 64 bytes ``x || y`` or 65 bytes ``04 || x || y`` (GB/T 32918.1 §4.2.9, uncompressed)."""
        return cls(point)

    @classmethod
    def from_der(cls, spki: bytes) -> PublicKey:
        """From a DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7, RFC 5480) for the SM2 curve."""
        spki = _as_bytes(spki, "spki")
        top = der.Reader(spki, "SubjectPublicKeyInfo", KeyFormatError)
        seq = top.read_sequence("top-level value")
        top.finish()
        _read_algorithm(seq)
        point = seq.read_bit_string("subjectPublicKey")
        seq.finish()
        return cls(point)

    @classmethod
    def from_pem(cls, data: bytes | str) -> PublicKey:
        """From a ``PUBLIC KEY`` PEM block (RFC 7468 §13), as ``openssl pkey -pubout`` writes."""
        _, body = _single_pem_block(data, {"PUBLIC KEY": "PUBLIC KEY"})
        return cls.from_der(body)

    def to_der(self) -> bytes:
        return self._der

    def to_pem(self) -> bytes:
        return der.pem_encode("PUBLIC KEY", self._der)

    @property
    def raw(self) -> bytes:
        """64 bytes ``x || y``."""
        return self._raw

    @property
    def point(self) -> tuple[int, int]:
        return self._point

    @property
    def key_id(self) -> str:
        """Lower-case hex of SM3 over the SubjectPublicKeyInfo DER."""
        return self._key_id

    def z(self, signer_id: bytes = DEFAULT_SIGNER_ID) -> bytes:
        """``Z_A`` for this key and ``signer_id`` (GB/T 32918.2 §5.5), cached per signer ID."""
        cached = self._z_cache.get(signer_id)
        if cached is None:
            cached = compute_z(self._point, signer_id)
            if len(self._z_cache) >= _Z_CACHE_LIMIT:
                self._z_cache.clear()
            self._z_cache[signer_id] = cached
        return cached

    def digest(self, message: bytes, signer_id: bytes = DEFAULT_SIGNER_ID) -> bytes:
        """``e = SM3(Z_A || M)`` (GB/T 32918.2 §6.1 steps A1-A2)."""
        return sm3(self.z(signer_id) + _as_bytes(message, "message"))

    def verify(self, message: bytes, signature: bytes, signer_id: bytes = DEFAULT_SIGNER_ID) -> None:
        """Verify per GB/T 32918.2 §7.1; raises :class:`SignatureFormatError` or :class:`SignatureError`."""
        signature = _as_bytes(signature, "signature")
        decode_signature(signature)  # B1-B2: r, s in [1, n-1]; strict DER
        e = self.digest(message, signer_id)
        try:
            ok = sm2_verify_sm3_digest(self._raw, e, signature)
        except GmsslInnerError as exc:  # not reachable for validated input; never let it escape as-is
            raise SignatureFormatError(f"SM2 signature refused by GmSSL: {exc}") from None
        if not ok:
            raise SignatureError("SM2 signature does not verify", key_id=self._key_id)

    def is_valid_signature(self, message: bytes, signature: bytes, signer_id: bytes = DEFAULT_SIGNER_ID) -> bool:
        """``True`` if :meth:`verify` passes; ``False`` for a malformed or wrong signature."""
        try:
            self.verify(message, signature, signer_id)
        except (SignatureError, SignatureFormatError):
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"PublicKey(key_id={self._key_id[:16]}…)"

    def __reduce__(self) -> tuple[type[PublicKey], tuple[bytes]]:
        return (PublicKey, (self._raw,))


# --- private keys ------------------------------------------------------------------------------------------


class PrivateKey:
    """An SM2 private key with its public key. ``repr`` shows the key ID, never the scalar."""

    __slots__ = ("_d", "_public")

    _d: bytes
    _public: PublicKey

    def __init__(self, scalar: bytes, public_key: PublicKey | None = None) -> None:
        """Use :meth:`generate`, :meth:`from_bytes`, :meth:`from_pem` or :meth:`from_der`.

        ``public_key``, when given, must equal ``d·G``: it is checked, not trusted.
        """
        scalar = _as_bytes(scalar, "scalar")
        if len(scalar) != CURVE.field_bytes:
            raise KeyFormatError(f"SM2 private key: expected a 32-byte scalar, got {len(scalar)} bytes")
        d = int.from_bytes(scalar, "big")
        if not 1 <= d <= _N - 2:
            raise KeyFormatError("SM2 private key: scalar is outside [1, n-2]")
        derived = CURVE.multiply(d)
        assert derived is not None  # d < n, so d·G is not O
        computed = PublicKey(_field(derived[0], CURVE) + _field(derived[1], CURVE))
        if public_key is not None and public_key != computed:
            raise KeyFormatError("SM2 private key: the stored public key does not match the private scalar")
        object.__setattr__(self, "_d", scalar)
        object.__setattr__(self, "_public", computed)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PrivateKey is immutable")

    @classmethod
    def generate(cls) -> PrivateKey:
        """A fresh key from GmSSL's random generator (GB/T 32918.1 §6.1)."""
        raw_public, scalar = sm2_key_generate()
        d = int.from_bytes(scalar, "big")
        if not 1 <= d <= _N - 2:  # pragma: no cover - probability 2^-256
            return cls.generate()
        key = object.__new__(cls)
        object.__setattr__(key, "_d", scalar)
        object.__setattr__(key, "_public", PublicKey(raw_public))
        return key

    @classmethod
    def from_bytes(cls, scalar: bytes) -> PrivateKey:
        """From the 32-byte big-endian scalar ``d``, ``1 <= d <= n-2``; the public key is computed."""
        return cls(scalar)

    @classmethod
    def from_der(cls, pkcs8: bytes) -> PrivateKey:
        """From DER PKCS#8 ``PrivateKeyInfo`` (RFC 5208) or ``OneAsymmetricKey`` v2 (RFC 5958 §2)."""
        pkcs8 = _as_bytes(pkcs8, "pkcs8")
        top = der.Reader(pkcs8, "PrivateKeyInfo", KeyFormatError)
        seq = top.read_sequence("top-level value")
        top.finish()
        version = seq.read_integer("version")
        if version not in (0, 1):
            raise KeyFormatError(f"PrivateKeyInfo: version {version} is not 0 (v1) or 1 (v2)")
        _read_algorithm(seq)
        inner = seq.read_octet_string("privateKey")
        if seq.peek_tag() == der.context_tag(0):
            seq.read_tlv("attributes")  # [0] IMPLICIT Attributes: carries nothing licledger uses
        outer_public: bytes | None = None
        if version == 1 and seq.peek_tag() == der.context_tag(1, constructed=False):
            _, bits, _ = seq.read_tlv("publicKey")
            if not bits or bits[0] != 0:
                raise KeyFormatError("PrivateKeyInfo: publicKey BIT STRING must have 0 unused bits")
            outer_public = bits[1:]
        seq.finish()
        key = cls._from_ec_private_key(inner, require_curve=False)
        if outer_public is not None and PublicKey(outer_public) != key.public_key:
            raise KeyFormatError("PrivateKeyInfo: the publicKey field does not match the private scalar")
        return key

    @classmethod
    def _from_ec_private_key(cls, data: bytes, *, require_curve: bool) -> PrivateKey:
        """RFC 5915 §3 ``ECPrivateKey``; a bare SEC1 key must name its curve in ``parameters``."""
        top = der.Reader(data, "ECPrivateKey", KeyFormatError)
        seq = top.read_sequence("top-level value")
        top.finish()
        version = seq.read_integer("version")
        if version != 1:
            raise KeyFormatError(f"ECPrivateKey: version {version} is not 1 (ecPrivkeyVer1)")
        scalar = seq.read_octet_string("privateKey")
        if not 1 <= len(scalar) <= CURVE.field_bytes:
            raise KeyFormatError(f"ECPrivateKey: privateKey is {len(scalar)} bytes, expected at most 32")
        if seq.peek_tag() == der.context_tag(0):
            params = seq.read_explicit(0, "parameters")
            _check_curve(params.read_oid("namedCurve"))
            params.finish()
        elif require_curve:
            raise KeyFormatError("ECPrivateKey: no namedCurve parameters; cannot tell it is an SM2 key")
        public: PublicKey | None = None
        if seq.peek_tag() == der.context_tag(1):
            pub = seq.read_explicit(1, "publicKey")
            public = PublicKey(pub.read_bit_string("publicKey"))
            pub.finish()
        seq.finish()
        return cls(scalar.rjust(CURVE.field_bytes, b"\x00"), public)

    @classmethod
    def from_pem(cls, data: bytes | str) -> PrivateKey:
        """From unencrypted PKCS#8 ``PRIVATE KEY`` PEM (``openssl genpkey -algorithm SM2``), or SEC1
        ``EC PRIVATE KEY`` / ``SM2 PRIVATE KEY`` PEM naming the SM2 curve (``openssl ec``)."""
        label, body = _single_pem_block(
            data,
            {"PRIVATE KEY": "PRIVATE KEY", "EC PRIVATE KEY": "PRIVATE KEY", "SM2 PRIVATE KEY": "PRIVATE KEY"},
        )
        if label == "PRIVATE KEY":
            return cls.from_der(body)
        return cls._from_ec_private_key(body, require_curve=True)

    def to_der(self) -> bytes:
        """PKCS#8 ``PrivateKeyInfo`` v1 holding an ``ECPrivateKey`` with its public key, byte for byte as
        OpenSSL 3 writes it."""
        ec_private_key = der.encode_sequence(
            der.encode_integer(1),
            der.encode_octet_string(self._d),
            der.encode_explicit(1, der.encode_bit_string(b"\x04" + self._public.raw)),
        )
        return der.encode_sequence(
            der.encode_integer(0), _ALGORITHM_IDENTIFIER, der.encode_octet_string(ec_private_key)
        )

    def to_pem(self) -> bytes:
        return der.pem_encode("PRIVATE KEY", self.to_der())

    def to_bytes(self) -> bytes:
        """The 32-byte scalar ``d``. Secret: store it only encrypted (:mod:`core.keystore`)."""
        return self._d

    @property
    def public_key(self) -> PublicKey:
        return self._public

    @property
    def key_id(self) -> str:
        return self._public.key_id

    def sign(self, message: bytes, signer_id: bytes = DEFAULT_SIGNER_ID) -> bytes:
        """DER signature of ``message`` (GB/T 32918.2 §6.1) with a fresh random nonce."""
        e = self._public.digest(message, signer_id)
        signature: bytes = sm2_sign_sm3_digest(self._d, e)
        return signature

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivateKey) and hmac.compare_digest(self._d, other._d)

    def __hash__(self) -> int:
        return hash(self._public)

    def __repr__(self) -> str:
        return f"PrivateKey(key_id={self._public.key_id[:16]}…)"

    def __copy__(self) -> PrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> PrivateKey:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("PrivateKey cannot be pickled; serialise it with core.keystore.encrypt_private_key")
