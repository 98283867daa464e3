"""Elliptic-curve arithmetic over a prime field in pure Python (GB/T 32918.1-2016 §3-4; GM/T 0003.1-2012).

licledger signs and verifies through GmSSL (``gmssl_pyx``), which has no "public key from private key" call.
This module fills that gap and nothing more:

* :meth:`Curve.multiply` computes ``k·P`` (used to derive the public key ``P = d·G`` when a PKCS#8 file
  carries only the private scalar, and to check that a stored public key belongs to its scalar);
* :meth:`Curve.is_on_curve` is the public-key validation of GB/T 32918.1 §6.2.1 that every point licledger
  accepts goes through: not the point at infinity, both coordinates in ``[0, p-1]``, ``y² = x³ + ax + b``.
  The SM2 curves have cofactor 1, so a point on the curve other than O has order ``n``.

Points are affine ``(x, y)`` tuples; ``None`` is the point at infinity O. The ladder works in Jacobian
coordinates (X, Y, Z) ↦ (X/Z², Y/Z³). Python integers are not constant-time: the ladder performs the same
sequence of group operations for every scalar of a given bit length, but the big-integer arithmetic underneath
can still leak through timing. It only runs on keys loaded from local files, never in a loop an attacker can
time.
"""

from __future__ import annotations

from dataclasses import dataclass

Point = tuple[int, int] | None
_Jacobian = tuple[int, int, int]
_INFINITY: _Jacobian = (1, 1, 0)


@dataclass(frozen=True, slots=True)
class Curve:
    """The curve ``y² = x³ + a·x + b`` over ``F_p`` with base point ``G = (gx, gy)`` of prime order ``n``."""

    name: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int

    @property
    def g(self) -> tuple[int, int]:
        return (self.gx, self.gy)

    @property
    def field_bytes(self) -> int:
        return (self.p.bit_length() + 7) // 8

    def is_on_curve(self, point: Point) -> bool:
        """GB/T 32918.1 §6.2.1 public-key validation steps (a)-(c) for a curve of cofactor 1."""
        if point is None:
            return False
        x, y = point
        if not (0 <= x < self.p and 0 <= y < self.p):
            return False
        return (y * y - (x * x * x + self.a * x + self.b)) % self.p == 0

    # --- Jacobian arithmetic (GB/T 32918.1 Annex A.1.2.3) ---------------------------------------------

    def _double(self, pt: _Jacobian) -> _Jacobian:
        x1, y1, z1 = pt
        p = self.p
        if z1 == 0 or y1 == 0:
            return _INFINITY
        yy = y1 * y1 % p
        s = 4 * x1 * yy % p
        zz = z1 * z1 % p
        m = (3 * x1 * x1 + self.a * zz * zz) % p
        x3 = (m * m - 2 * s) % p
        y3 = (m * (s - x3) - 8 * yy * yy) % p
        z3 = 2 * y1 * z1 % p
        return (x3, y3, z3)

    def _add(self, p1: _Jacobian, p2: _Jacobian) -> _Jacobian:
        x1, y1, z1 = p1
        x2, y2, z2 = p2
        if z1 == 0:
            return p2
        if z2 == 0:
            return p1
        p = self.p
        z1z1 = z1 * z1 % p
        z2z2 = z2 * z2 % p
        u1 = x1 * z2z2 % p
        u2 = x2 * z1z1 % p
        s1 = y1 * z2 * z2z2 % p
        s2 = y2 * z1 * z1z1 % p
        h = (u2 - u1) % p
        r = (s2 - s1) % p
        if h == 0:
            return self._double(p1) if r == 0 else _INFINITY
        hh = h * h % p
        hhh = h * hh % p
        v = u1 * hh % p
        x3 = (r * r - hhh - 2 * v) % p
        y3 = (r * (v - x3) - s1 * hhh) % p
        z3 = h * z1 * z2 % p
        return (x3, y3, z3)

    def _to_affine(self, pt: _Jacobian) -> Point:
        x, y, z = pt
        if z == 0:
            return None
        zinv = pow(z, -1, self.p)
        zinv2 = zinv * zinv % self.p
        return (x * zinv2 % self.p, y * zinv2 * zinv % self.p)

    # --- public operations ---------------------------------------------------------------------------

    def add(self, p1: Point, p2: Point) -> Point:
        """``P1 + P2`` (GB/T 32918.1 §3.2.3.1)."""
        j1 = _INFINITY if p1 is None else (p1[0], p1[1], 1)
        j2 = _INFINITY if p2 is None else (p2[0], p2[1], 1)
        return self._to_affine(self._add(j1, j2))

    def multiply(self, k: int, point: Point = None) -> Point:
        """``k·P`` by a Montgomery ladder; ``P`` defaults to the base point G and ``k`` is any integer ≥ 0."""
        if k < 0:
            raise ValueError("scalar must be non-negative")
        base = self.g if point is None else point
        if not self.is_on_curve(base):
            raise ValueError("point is not on the curve")
        r0: _Jacobian = _INFINITY
        r1: _Jacobian = (base[0], base[1], 1)
        for i in reversed(range(max(k.bit_length(), 1))):
            if (k >> i) & 1:
                r0, r1 = self._add(r0, r1), self._double(r1)
            else:
                r0, r1 = self._double(r0), self._add(r0, r1)
        return self._to_affine(r0)


SM2_P256 = Curve(
    name="sm2p256v1",
    p=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF,
    a=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC,
    b=0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93,
    gx=0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    gy=0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
    n=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123,
)
"""The SM2 recommended curve (GB/T 32918.5-2017 §2; GM/T 0003.5-2012), OID 1.2.156.10197.1.301."""
