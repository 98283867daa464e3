"""network.keyfile.KeyFile: a long-running process adopts a replaced key file (key rotation) without a restart,
and keeps its key when the replacement is unusable or not yet acceptable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.keystore import encrypt_private_key
from core.sm2 import PrivateKey
from network.keyfile import KeyFile, install_key_file

KEK = bytes(range(16))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def old() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def path(tmp_path: Path, old: PrivateKey) -> Path:
    p = tmp_path / "member.key"
    install_key_file(p, encrypt_private_key(old, KEK))
    return p


def test_replaced_file_is_adopted_after_the_check_interval(path: Path, old: PrivateKey) -> None:
    clock = Clock()
    kf = KeyFile(path, KEK, check_interval=1.0, clock=clock)
    assert kf.current().key_id == old.key_id
    new = PrivateKey.generate()
    install_key_file(path, encrypt_private_key(new, KEK))
    assert kf.current().key_id == old.key_id  # within the interval: no stat, same key
    clock.t = 1.0
    assert kf.current().key_id == new.key_id
    assert not path.with_name(path.name + ".tmp").exists()
    assert path.stat().st_mode & 0o777 == 0o600


def test_unusable_replacement_keeps_the_key_and_says_why(
    path: Path, old: PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    kf = KeyFile(path, KEK, clock=clock)
    install_key_file(path, encrypt_private_key(PrivateKey.generate(), bytes(16)))  # another KEK
    clock.t = 5
    with caplog.at_level(logging.ERROR, logger="network.keyfile"):
        assert kf.current().key_id == old.key_id
    assert "cannot be used" in caplog.text and old.key_id in caplog.text
    install_key_file(path, b"not a key envelope")
    clock.t = 10
    assert kf.current().key_id == old.key_id
    path.unlink()  # a missing file: the key in memory stays
    clock.t = 15
    assert kf.current().key_id == old.key_id


def test_refused_replacement_is_retried_until_accepted(path: Path, old: PrivateKey) -> None:
    clock = Clock()
    listed: set[str] = set()
    kf = KeyFile(path, KEK, clock=clock, accept=lambda k: None if k.key_id in listed else "not listed")
    new = PrivateKey.generate()
    install_key_file(path, encrypt_private_key(new, KEK))
    clock.t = 1
    assert kf.current().key_id == old.key_id
    listed.add(new.key_id)  # the rotation reaches this process's membership state
    clock.t = 1.5
    assert kf.current().key_id == old.key_id  # not before the next check
    clock.t = 2
    assert kf.current().key_id == new.key_id


def test_replace_adopts_at_once(path: Path, old: PrivateKey) -> None:
    clock = Clock()
    kf = KeyFile(path, KEK, clock=clock)
    new = PrivateKey.generate()
    install_key_file(path, encrypt_private_key(new, KEK))
    kf.replace(new)
    assert kf.current().key_id == new.key_id
    clock.t = 3
    assert kf.current().key_id == new.key_id


def test_fresh_looks_at_the_file_now(path: Path, old: PrivateKey) -> None:
    """A node's seal right after a rotation's switch must not use the key the file no longer holds."""
    clock = Clock()
    kf = KeyFile(path, KEK, check_interval=1.0, clock=clock)
    new = PrivateKey.generate()
    install_key_file(path, encrypt_private_key(new, KEK))
    assert kf.current().key_id == old.key_id  # within the interval
    assert kf.current(fresh=True).key_id == new.key_id
    assert kf.current().key_id == new.key_id
