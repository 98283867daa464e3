"""An encrypted SM2 key file that a long-running process picks up again when it is replaced (key rotation).

A province's key is rotated through the ledger (``RotateKey``, docs/chaincode.md; :mod:`node.keyrotation`): once
the transaction is committed, ``licledger node rotate-key submit`` replaces the node's key file, and with
``--network-dir`` the member's key file that its peer reads, each with one atomic ``os.replace``. The processes
that hold the key in memory (``licledger node serve`` with its anchoring worker, the member's peer with its
checkpoint duties) keep a :class:`KeyFile` and ask it for the key each time they sign; it re-reads the file when
the file's identity (inode, size, modification time) changed, at most once per ``check_interval`` seconds, so
a rotation takes effect without a restart and costs one ``stat`` per second otherwise.

A replaced file is adopted only if it decrypts under the same KEK and, when an ``accept`` check is given, the
check passes (the peer adopts only a key that the membership state lists as valid for it). Otherwise the old key
stays in use, the refusal is logged (key ids only: never key material) and the file is tried again at the next
check, so a rotation that is not yet visible to this process is adopted once it is.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.errors import LicledgerError
from core.keystore import decrypt_private_key
from core.sm2 import PrivateKey

__all__ = ["KeyFile", "install_key_file"]

log = logging.getLogger(__name__)

Accept = Callable[[PrivateKey], str | None]
"""A check on a replacement key: ``None`` to adopt it, else the reason it is refused for now."""


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class KeyFile:
    """The key in ``path`` (SM4-GCM envelope of :mod:`core.keystore`, under ``kek``), re-read when replaced."""

    def __init__(
        self,
        path: Path,
        kek: bytes,
        key: PrivateKey | None = None,
        *,
        check_interval: float = 1.0,
        accept: Accept | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._kek = kek
        self._accept = accept
        self._interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._seen = _identity(self.path)
        self._key = key if key is not None else decrypt_private_key(self.path.read_bytes(), kek)
        self._checked = clock()

    def current(self, *, fresh: bool = False) -> PrivateKey:
        """The key to sign with now: the file's key if it was replaced by an acceptable one, else the same.

        ``fresh`` looks at the file now (one ``stat``) instead of at most once per ``check_interval``: for a
        signature that must not be made with a key the file no longer holds (a node's seal right after a
        rotation's switch, docs/node.md "Key rotation")."""
        now = self._clock()
        if not fresh and now - self._checked < self._interval:
            return self._key
        with self._lock:
            if fresh or now - self._checked >= self._interval:
                self._checked = now
                self._reload()
            return self._key

    def replace(self, key: PrivateKey) -> None:
        """Adopt ``key`` at once (the process that wrote the file itself); the file's identity is re-read."""
        with self._lock:
            self._key = key
            self._seen = _identity(self.path)

    def _reload(self) -> None:
        seen = _identity(self.path)
        if seen is None or seen == self._seen:
            return
        try:
            key = decrypt_private_key(self.path.read_bytes(), self._kek)
        except (OSError, LicledgerError) as exc:
            log.error(
                "key file %s was replaced but cannot be used (%s); still signing with key %s",
                self.path,
                type(exc).__name__,
                self._key.key_id,
            )
            self._seen = seen  # retried when the file changes again
            return
        if key.key_id == self._key.key_id:
            self._seen = seen
            return
        why = self._accept(key) if self._accept is not None else None
        if why is not None:
            log.warning(
                "key file %s holds key %s, not adopted yet: %s; still signing with key %s",
                self.path,
                key.key_id,
                why,
                self._key.key_id,
            )
            return  # not remembered: checked again at the next interval
        log.info("key file %s replaced: signing with key %s instead of %s", self.path, key.key_id, self._key.key_id)
        self._key, self._seen = key, seen


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install_key_file(path: Path, blob: bytes) -> None:
    """Replace ``path`` with ``blob`` atomically and durably (temp file, fsync, ``os.replace``, fsync the dir)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, blob)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
