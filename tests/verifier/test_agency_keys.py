"""The standalone service's API key file (verifier/agency_keys.py): keys shown once and stored as SM3 hashes,
looked up by id and compared in constant time, revocation, a running service seeing changes, a corrupt file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from core.hashing import sm3
from verifier.agency_keys import KeyFile, KeyFileError


def test_a_key_is_stored_only_as_its_hash_and_authenticates(tmp_path: Path) -> None:
    keys = KeyFile(tmp_path / "keys.json")
    token, record = keys.create("某市医保局", "agency", now_ms=1)
    raw = (tmp_path / "keys.json").read_text(encoding="utf-8")
    assert token not in raw and token.split("_", 2)[2] not in raw
    assert record.hash == sm3(token.encode()).hex() and record.hash in raw
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert keys.authenticate(token) == record
    assert KeyFile(tmp_path / "keys.json").authenticate(token) == record  # another process reading the file


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character of the secret changed
        lambda t: "llv_00000000_" + t.split("_", 2)[2],  # the secret under another id
        lambda t: t + "x",  # trailing garbage
        lambda t: t.upper(),
        lambda t: "",
    ],
)
def test_forged_or_mangled_keys_do_not_authenticate(tmp_path: Path, forge: object) -> None:
    keys = KeyFile(tmp_path / "keys.json")
    token, _ = keys.create("agency", "agency", now_ms=1)
    assert callable(forge)
    assert keys.authenticate(forge(token)) is None


def test_revocation_is_seen_by_a_running_reader(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    service = KeyFile(path)
    token, record = KeyFile(path).create("agency", "auditor", now_ms=1)
    assert service.authenticate(token) == record
    KeyFile(path).revoke(record.id, now_ms=2)
    found = service.authenticate(token)
    assert found is not None and found.revoked_ms == 2  # known, and refused by the service (403)
    with pytest.raises(KeyFileError):
        service.revoke("ffffffff", now_ms=3)


def test_a_corrupt_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"format": "licledger-verifier-keys/1", "keys": [{"id": "x"}]}))
    with pytest.raises(KeyFileError):
        KeyFile(path).records()
    path.write_text(json.dumps({"format": "something-else", "keys": []}))
    with pytest.raises(KeyFileError):
        KeyFile(path).records()


def test_bad_names_and_roles_are_caller_errors(tmp_path: Path) -> None:
    keys = KeyFile(tmp_path / "keys.json")
    with pytest.raises(ValueError):
        keys.create("", "agency", now_ms=1)
    with pytest.raises(ValueError):
        keys.create("a\nb", "agency", now_ms=1)
    with pytest.raises(ValueError):
        keys.create("agency", "operator", now_ms=1)  # type: ignore[arg-type]
