"""licledger core: the I/O-free kernel.

Canonical encoding, SM2/SM3/SM4 (GB/T 32918, GM/T 0004, GB/T 32907), RFC 9162 Merkle proofs and the
e-license document formats. Nothing in this package opens a file, a socket or a database.
"""
