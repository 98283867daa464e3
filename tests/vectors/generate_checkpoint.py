"""Generate the checkpoint golden vectors: ``tests/vectors/checkpoint/<case>.json``.

Deterministic, so running it again reproduces the committed files byte for byte (checked by
``tests/test_checkpoint_vectors.py``). Usage:

    python3 tests/vectors/generate_checkpoint.py [--out DIR]

Member keys are fixed: ``d = SM3("licledger checkpoint vector key" || 0x00 || name) mod (n - 2) + 1``. SM2
signing is randomised in licledger (GmSSL draws ``k``); here signatures are computed in pure Python with a
nonce derived from the key and the digest, *for these vectors only*, and each is checked by GmSSL through
:meth:`core.sm2.PublicKey.verify` before it is written.

One case per file: ``description``; ``note`` (the checkpoint text); ``members`` (name -> list of base64 SPKI
DER); ``quorum``; ``expected``: ``"ok"``, or the error class :func:`core.checkpoint.parse_checkpoint` /
:func:`core.checkpoint.verify_cosignatures` must raise (``FormatError`` or ``QuorumError``); for ``ok`` and
``QuorumError``, ``verified`` (the member names that count, in order) and ``failures`` (``[name, key hint
hex]`` of each line that did not count). The case ``valid-all-members`` is the example in docs/checkpoint.md.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.checkpoint import Checkpoint, Cosignature, key_hint, render
from core.ec import SM2_P256
from core.hashing import sm3
from core.sm2 import PrivateKey, PublicKey, encode_signature

OUT = Path(__file__).resolve().parent / "checkpoint"
MEMBERS = ("110000", "310000", "440000", "national")
N = SM2_P256.n

CHECKPOINT = Checkpoint(
    origin="licledger.example/consortium-demo",
    height=1207,
    log_size=48213,
    log_root=sm3(b"licledger example anchor log"),
    status_root=sm3(b"licledger example status map"),
    membership_root=sm3(b"licledger example membership"),
    block_hash=sm3(b"licledger example block 1207"),
    timestamp_ms=1_763_870_400_000,
)


def fixed_key(label: str) -> PrivateKey:
    d = int.from_bytes(sm3(b"licledger checkpoint vector key\x00" + label.encode()), "big") % (N - 2) + 1
    return PrivateKey.from_bytes(d.to_bytes(32, "big"))


def deterministic_sign(key: PrivateKey, message: bytes) -> bytes:
    """GB/T 32918.2 §6.1 with a derived nonce. Vectors only: never sign like this in production."""
    d = int.from_bytes(key.to_bytes(), "big")
    digest = key.public_key.digest(message)
    e = int.from_bytes(digest, "big")
    counter = 0
    while True:
        k = int.from_bytes(sm3(key.to_bytes() + digest + counter.to_bytes(4, "big")), "big") % (N - 1) + 1
        counter += 1
        point = SM2_P256.multiply(k)
        assert point is not None
        r = (e + point[0]) % N
        if r == 0 or r + k == N:
            continue
        s = pow(1 + d, -1, N) * (k - r * d) % N
        if s == 0:
            continue
        signature = encode_signature(r, s)
        key.public_key.verify(message, signature)
        return signature


def sign(checkpoint: Checkpoint, name: str, key: PrivateKey) -> Cosignature:
    return Cosignature(name, key_hint(name, key.public_key), deterministic_sign(key, checkpoint.body()))


def _spki(key: PublicKey) -> str:
    return base64.b64encode(key.to_der()).decode()


class Writer:
    def __init__(self, out: Path) -> None:
        self.dir = out
        self.dir.mkdir(parents=True, exist_ok=True)
        self.names: set[str] = set()

    def write(self, name: str, case: dict[str, Any]) -> None:
        assert name not in self.names, name
        self.names.add(name)
        text = json.dumps(case, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (self.dir / f"{name}.json").write_text(text, encoding="utf-8", newline="\n")


def generate(out: Path = OUT) -> None:
    keys = {name: fixed_key(name) for name in MEMBERS}
    members = {name: [_spki(k.public_key)] for name, k in keys.items()}
    good = {name: sign(CHECKPOINT, name, key) for name, key in keys.items()}
    all_sigs = [good[name] for name in MEMBERS]
    w = Writer(out)

    def verdict(
        name: str,
        description: str,
        sigs: list[Cosignature],
        expected: str,
        verified: list[str],
        failures: list[Cosignature],
        *,
        quorum: int = 3,
        checkpoint: Checkpoint = CHECKPOINT,
        member_keys: dict[str, list[str]] | None = None,
    ) -> None:
        w.write(
            name,
            {
                "description": description,
                "note": render(checkpoint, sigs).decode("utf-8"),
                "members": member_keys or members,
                "quorum": quorum,
                "expected": expected,
                "verified": verified,
                "failures": [[f.name, f.key_hint.hex()] for f in failures],
            },
        )

    # --- valid notes -------------------------------------------------------------------------------------
    verdict("valid-all-members", "all four members cosigned; quorum 3", all_sigs, "ok", list(MEMBERS), [])
    verdict(
        "valid-exact-quorum",
        "three of four members cosigned; quorum 3",
        all_sigs[:3],
        "ok",
        list(MEMBERS[:3]),
        [],
    )
    verdict(
        "valid-quorum-one",
        "a single member cosigned; quorum 1",
        all_sigs[3:],
        "ok",
        ["national"],
        [],
        quorum=1,
    )
    verdict("valid-unordered", "signature lines in any order", all_sigs[::-1], "ok", list(MEMBERS[::-1]), [])

    # --- cosignatures that do not count ------------------------------------------------------------------
    verdict(
        "below-quorum",
        "two of four members cosigned; quorum 3",
        all_sigs[:2],
        "QuorumError",
        list(MEMBERS[:2]),
        [],
    )
    second = dataclasses.replace(good["110000"], signature=deterministic_sign(keys["110000"], b"x"))
    verdict(
        "duplicate-counts-once",
        "one member's line three times plus one other member; quorum 3",
        [good["110000"], good["110000"], good["310000"], good["110000"]],
        "QuorumError",
        ["110000", "310000"],
        [],
    )
    verdict(
        "duplicate-with-quorum",
        "duplicates of one member next to a quorum of others",
        [good["110000"], good["110000"], *all_sigs[1:3]],
        "ok",
        list(MEMBERS[:3]),
        [],
    )
    verdict(
        "duplicate-bad-then-good",
        "a member's bad line (signature over other bytes) then its good line",
        [second, *all_sigs[:3]],
        "ok",
        list(MEMBERS[:3]),
        [second],
    )
    stranger = sign(CHECKPOINT, "999999", fixed_key("stranger"))
    verdict(
        "unknown-signer-ignored",
        "a non-member's valid signature next to a quorum",
        [stranger, *all_sigs[:3]],
        "ok",
        list(MEMBERS[:3]),
        [stranger],
    )
    verdict(
        "unknown-signer-no-quorum",
        "a non-member's signature cannot make up the quorum",
        [stranger, *all_sigs[:2]],
        "QuorumError",
        list(MEMBERS[:2]),
        [stranger],
    )
    forged = sign(CHECKPOINT, "440000", fixed_key("attacker"))
    verdict(
        "forged-own-hint",
        "a line under a member's name signed by another key (its own key hint)",
        [*all_sigs[:2], forged],
        "QuorumError",
        list(MEMBERS[:2]),
        [forged],
    )
    forged_hint = dataclasses.replace(forged, key_hint=good["440000"].key_hint)
    verdict(
        "forged-member-hint",
        "a line with the member's key hint but another key's signature",
        [*all_sigs[:2], forged_hint],
        "QuorumError",
        list(MEMBERS[:2]),
        [forged_hint],
    )
    swapped = dataclasses.replace(good["440000"], name="national")
    verdict(
        "signature-under-other-name",
        "one member's line relabelled with another member's name",
        [*all_sigs[:2], swapped],
        "QuorumError",
        list(MEMBERS[:2]),
        [swapped],
    )
    older = dataclasses.replace(CHECKPOINT, height=CHECKPOINT.height - 1)
    replayed = sign(older, "440000", keys["440000"])
    verdict(
        "replayed-from-older-checkpoint",
        "a member's signature over the previous checkpoint",
        [*all_sigs[:2], replayed],
        "QuorumError",
        list(MEMBERS[:2]),
        [replayed],
    )
    malformed = dataclasses.replace(good["national"], signature=b"\x30\x06\x02\x01\x00\x02\x01\x01")
    verdict(
        "malformed-signature-der",
        "a line whose signature is DER with r = 0, next to a quorum",
        [*all_sigs[:3], malformed],
        "ok",
        list(MEMBERS[:3]),
        [malformed],
    )
    rotated_key = fixed_key("national-2026")
    rotated = sign(CHECKPOINT, "national", rotated_key)
    with_rotation = {**members, "national": [members["national"][0], _spki(rotated_key.public_key)]}
    verdict(
        "rotated-key",
        "a member with two keys signs with the newer one",
        [*all_sigs[:2], rotated],
        "ok",
        [*MEMBERS[:2], "national"],
        [],
        member_keys=with_rotation,
    )

    # --- the body changed after signing ------------------------------------------------------------------
    changes: dict[str, Any] = {
        "origin": "licledger.example/consortium-other",
        "height": CHECKPOINT.height + 1,
        "log_size": CHECKPOINT.log_size - 1,
        "log_root": sm3(b"other"),
        "status_root": sm3(b"other"),
        "membership_root": sm3(b"other"),
        "block_hash": sm3(b"other"),
        "timestamp_ms": CHECKPOINT.timestamp_ms + 1,
    }
    for field, value in changes.items():
        changed = dataclasses.replace(CHECKPOINT, **{field: value})
        verdict(
            f"changed-{field.replace('_', '-')}",
            f"{field} changed after all four members signed",
            all_sigs,
            "QuorumError",
            [],
            all_sigs,
            checkpoint=changed,
            quorum=1,
        )

    # --- malformed notes ---------------------------------------------------------------------------------
    note = render(CHECKPOINT, all_sigs).decode("utf-8")
    lines = note.split("\n")
    root_b64 = lines[2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    noncanonical = root_b64[:-2] + alphabet[alphabet.index(root_b64[-2]) ^ 1] + "="
    sig_block = note[note.index("\n\n") + 2 :]
    malformed_notes = {
        "no-blank-line": ("no empty line between body and signatures", note.replace("\n\n", "\n", 1)),
        "no-signatures": ("body and empty line but no signature line", note[: note.index("\n\n") + 2]),
        "missing-final-newline": ("last signature line not terminated", note[:-1]),
        "extra-final-newline": ("an empty line after the signatures", note + "\n"),
        "crlf": ("CRLF line endings", note.replace("\n", "\r\n")),
        "leading-zero-size": (
            "tree size with a leading zero",
            note.replace(f"\n{CHECKPOINT.log_size}\n", f"\n0{CHECKPOINT.log_size}\n", 1),
        ),
        "size-too-large": ("tree size 2^63", note.replace(f"\n{CHECKPOINT.log_size}\n", f"\n{2**63}\n", 1)),
        "noncanonical-base64": (
            "root hash with a non-zero padding bit",
            note.replace(root_b64, noncanonical),
        ),
        "short-root": ("31-byte root hash", note.replace(root_b64, base64.b64encode(bytes(31)).decode())),
        "missing-extension": ("no height line", note.replace(f"height {CHECKPOINT.height}\n", "")),
        "extra-extension": ("an unknown extension line", note.replace("timestamp", "extra 1\ntimestamp")),
        "reordered-extensions": (
            "height after timestamp",
            note.replace(f"height {CHECKPOINT.height}\n", "").replace(
                "\n\n", f"\nheight {CHECKPOINT.height}\n\n"
            ),
        ),
        "double-space": ("two spaces after a key", note.replace("height ", "height  ")),
        "origin-with-space": (
            "a space in the origin",
            note.replace("licledger.example/", "licledger example/"),
        ),
        "non-ascii-body": ("a non-ASCII origin", note.replace("consortium", "联盟")),
        "hyphen-not-em-dash": (
            "signature line starts with '-' not U+2014",
            note.replace("— 110000", "- 110000"),
        ),
        "plus-in-name": ("a signer name containing '+'", note.replace("— 110000", "— 110+000")),
        "space-in-signature": (
            "base64 split by a space",
            note.replace(sig_block[12:20], sig_block[12:16] + " " + sig_block[16:20], 1),
        ),
        "signature-too-short": ("a signature line with only a key hint", note + "— 110000 AAAAAA==\n"),
        "too-many-signatures": ("101 signature lines", note + sig_block * 24 + lines[9] + "\n"),
    }
    for name, (description, text) in malformed_notes.items():
        assert text != note, name
        w.write(
            f"malformed-{name}",
            {
                "description": description,
                "note": text,
                "members": members,
                "quorum": 3,
                "expected": "FormatError",
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    generate(args.out)


if __name__ == "__main__":
    main()
