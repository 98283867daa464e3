"""Raft ordering for a few ledger members on one host or a trusted LAN, embedded through ``pysyncobj`` 0.3.17.

Raft (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm", USENIX ATC 2014) gives a
replicated log: an entry acknowledged to the client is stored by a majority (§5.3) and every future leader
holds it (§5.4.1), so it survives the loss of any minority. pysyncobj supplies the protocol; this module
supplies the replicated state and the guard rails, because pysyncobj is unsafe by default.

Security posture (read before deploying):

* pysyncobj's wire format is ``pickle`` over TCP. Anyone who can send bytes to an unauthenticated node runs
  code in it. A per-network **secret of at least 16 bytes is mandatory**: with ``SyncObjConf(password=...)``
  every frame is a Fernet token (AES-128-CBC + HMAC-SHA256, key from PBKDF2-SHA256) that is authenticated
  *before* it is unpickled, so a party without the secret is disconnected without any of its bytes being
  unpickled. Anyone who *has* the secret can still run code in every node: the secret is a root credential for
  the ordering cluster.
* pysyncobj binds ``0.0.0.0`` unless told otherwise. This module always binds exactly ``self_address`` and
  refuses any member address outside 127.0.0.0/8 and ::1 unless ``allow_non_loopback=True`` (then it logs a
  warning). Addresses must be canonical IP literals (no host names: a DNS answer must not decide who is a
  member).
* The journal directory holds pickles too (journal entries, the full dump): whoever can write it can run code
  in the node. It is created ``0700`` and refused if group- or world-writable.
* Only opaque ``bytes`` pass through the replicated state: the single replicated command takes one ``bytes``
  argument (a length-prefixed batch of payloads) and the state is a list of ``bytes``. Results (positions)
  never cross the wire; each replica computes them by applying the same log.
* Transport crypto is Fernet, not a GM/T (SM2/SM4) channel. Embedded ordering is therefore for a single host
  or a trusted LAN run by one operator. Multi-organisation deployments order through etcd or a Fabric ordering
  service behind :class:`network.ordering.OrderingService`.

Durability: pysyncobj's file journal is an ``mmap`` that is never ``fsync``'d. It survives ``kill -9`` of any
or every process (the page cache outlives the process) but not a power loss of a majority of hosts. The peer's
own fsync'd block store is the source of truth; the orderer is how peers agree on the order of what they
store.

Log growth and compaction. The replicated state is the list of every payload ever ordered (plus an SM3 index
for de-duplication, rebuilt on load), so memory and disk grow with the ledger. pysyncobj compacts its log by
pickling the *whole* state to the full dump file (in a forked child, so the node keeps serving) and then
dropping the journal prefix; a member that fell behind the compaction point receives that dump. Compaction
therefore trades O(state) work per compaction (every ``compaction_min_entries`` entries, at most once per slot
of ``compaction_interval``) for bounded journal length and fast restarts; without it
(``compaction_min_entries=None``) the journal holds every entry, is replayed entry by entry on restart, and
every catch-up is a plain log copy. Members compact in disjoint time slots (``logCompactionSplit``) so that no
two rewrite their journals at once.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import stat
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, SyncObjException, replicated
from pysyncobj.config import FAIL_REASON
from pysyncobj.encryptor import HAS_CRYPTO
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.transport import TCPTransport

from core.hashing import sm3
from network.errors import OrderingUnavailableError
from network.ordering_checks import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_BATCH_BYTES,
    check_batch,
    check_payload,
    check_read,
    check_timeout,
)

logger = logging.getLogger(__name__)

#: Shortest accepted network secret; generate one with ``secrets.token_hex(32)`` (PBKDF2, fixed salt).
MIN_SECRET_BYTES = 16

#: Largest replicated command: one encoded batch (see ``network.ordering_checks.MAX_BATCH_BYTES`` for why).
MAX_COMMAND_BYTES = MAX_BATCH_BYTES
# pysyncobj sends one log entry larger than appendEntriesBatchSizeBytes in chunks, and 0.3.17 computes the
# final chunk's marker against the command length rather than the pickled entry length, which can end a
# transfer early. With every command at most half the batch size that code path is never taken; catch-up
# messages then hold at most 2 + 1 commands' worth of bytes (384 KiB).
_APPEND_ENTRIES_BATCH_BYTES = 2 * MAX_COMMAND_BYTES

_BATCH_TAG = b"\x01"
_JOURNAL_FILE = "raft.journal"
_DUMP_FILE = "raft.dump"
_LOCK_FILE = "lock"

_ROLES = {0: "follower", 1: "candidate", 2: "leader"}
_FAIL_REASONS = {
    FAIL_REASON.QUEUE_FULL: "queue_full",
    FAIL_REASON.MISSING_LEADER: "no_leader",
    FAIL_REASON.DISCARDED: "discarded",
    FAIL_REASON.NOT_LEADER: "not_leader",
    FAIL_REASON.LEADER_CHANGED: "leader_changed",
    FAIL_REASON.REQUEST_DENIED: "request_denied",
    FAIL_REASON.UNKNOWN_OUTCOME: "unknown_outcome",
}
# While a commit is pending, look this often whether the payload became visible locally by another route (a
# retried copy, a snapshot install that skipped the callback).
_POLL_SLICE = 0.25
_RETRY_BACKOFF = 0.05


# --- addresses ----------------------------------------------------------------------------------------------


def parse_address(address: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """Parse ``"ip:port"`` (IPv4 ``127.0.0.1:7001`` or IPv6 ``::1:7001``) into an address and a port.

    Raises ``ValueError`` unless the host is a canonical, specific IP literal and the port is in 1..65535.
    """
    if not isinstance(address, str):
        raise TypeError(f"address must be a str 'ip:port', not {type(address).__name__}")
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"address {address!r} is not 'ip:port'")
    port = int(port_text)
    if not 1 <= port <= 65535 or port_text != str(port):
        raise ValueError(f"address {address!r} has an invalid port")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"address {address!r}: the host must be an IP literal, not a name") from None
    if ip.is_unspecified:
        raise ValueError(f"address {address!r}: a wildcard address would accept connections on every interface")
    if str(ip) != host:
        raise ValueError(f"address {address!r} is not canonical; write {ip}:{port}")
    return ip, port


def check_addresses(self_address: str, partner_addresses: Sequence[str], *, allow_non_loopback: bool) -> list[str]:
    """Apply the address policy; return the partners (``self_address`` removed if listed, order kept).

    Every address must parse with :func:`parse_address`. Unless ``allow_non_loopback`` is true, every address
    must be a loopback address; when it is true, each non-loopback address is logged as a warning.
    """
    if isinstance(partner_addresses, str):
        raise TypeError("partner_addresses must be a sequence of 'ip:port' strings, not one string")
    partners = [a for a in partner_addresses if a != self_address]
    if len(set(partners)) != len(partners):
        raise ValueError(f"partner_addresses has duplicates: {sorted(partners)}")
    for address in [self_address, *partners]:
        ip, _ = parse_address(address)
        if ip.is_loopback:
            continue
        if not allow_non_loopback:
            raise ValueError(
                f"refusing non-loopback ordering address {address}: pysyncobj speaks pickle over TCP; "
                "embedded ordering is for one host or a trusted LAN (pass allow_non_loopback=True to accept)"
            )
        logger.warning(
            "ordering address %s is not loopback: the Raft port must only be reachable from a trusted LAN, "
            "and anyone holding the network secret can run code in every member",
            address,
        )
    return partners


def _secret_bytes(secret: bytes | str | None) -> bytes:
    if secret is None:
        raise ValueError("a per-network secret is mandatory: without it anyone reaching the Raft port runs code")
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not isinstance(secret, bytes):
        raise TypeError(f"secret must be bytes or str, not {type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the network secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}")
    return secret


def _prepare_journal_dir(journal_dir: Path | str) -> Path:
    path = Path(journal_dir)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ValueError(
            f"journal_dir {path} is writable by group or others (mode {stat.S_IMODE(mode):o}); its files are "
            "unpickled on start, so only the node's user may write it"
        )
    return path


# --- the replicated command: a length-prefixed batch of opaque payloads -------------------------------------


def encode_batch(payloads: Sequence[bytes]) -> bytes:
    """``0x01 || count (u32 BE) || (length (u32 BE) || payload)*``: the only argument ever replicated."""
    parts = [_BATCH_TAG, struct.pack(">I", len(payloads))]
    for payload in payloads:
        parts.append(struct.pack(">I", len(payload)))
        parts.append(payload)
    return b"".join(parts)


def decode_batch(blob: bytes) -> list[bytes] | None:
    """Inverse of :func:`encode_batch`; ``None`` unless ``blob`` is one well-formed, non-empty batch."""
    if len(blob) < 5 or blob[:1] != _BATCH_TAG:
        return None
    (count,) = struct.unpack_from(">I", blob, 1)
    offset, payloads = 5, []
    for _ in range(count):
        if offset + 4 > len(blob):
            return None
        (length,) = struct.unpack_from(">I", blob, offset)
        offset += 4
        if length == 0 or offset + length > len(blob):
            return None
        payloads.append(blob[offset : offset + length])
        offset += length
    if offset != len(blob) or not payloads:
        return None
    return payloads


class _PayloadLog(SyncObjConsumer):  # type: ignore[misc]  # pysyncobj is untyped
    """The replicated state machine: the ordered payloads and an SM3 digest -> position index.

    ``_apply`` runs on pysyncobj's tick thread, on every replica, in log order; readers take ``_cond``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition()
        self._payloads: list[bytes] = []
        self._index: dict[bytes, int] = {}
        self.corrupt = False

    @replicated  # type: ignore[untyped-decorator]
    def _apply(self, *args: object, **kwargs: object) -> tuple[int, ...] | None:
        # Deterministic on every replica. Anything but one well-formed batch (only a holder of the secret
        # could send it) is a no-op with result None rather than an exception, which would stall pysyncobj's
        # apply loop.
        if kwargs or len(args) != 1 or type(args[0]) is not bytes:
            return None
        payloads = decode_batch(args[0])
        if payloads is None:
            return None
        positions = []
        with self._cond:
            for payload in payloads:
                digest = sm3(payload)
                position = self._index.get(digest)
                if position is None:
                    position = len(self._payloads)
                    self._payloads.append(payload)
                    self._index[digest] = position
                positions.append(position)
            self._cond.notify_all()
        return tuple(positions)

    # pysyncobj pickles what _serialize returns into the full dump (in a forked child) and hands it back to
    # _deserialize on restart or snapshot install. Only the list of bytes is stored; the index is rebuilt.
    def _serialize(self) -> list[bytes]:
        return self._payloads

    def _deserialize(self, data: object) -> None:
        if not isinstance(data, list) or not all(type(p) is bytes and p for p in data):
            logger.critical("ordering full dump does not hold a list of payloads; refusing to serve this replica")
            self.corrupt = True
            return
        index: dict[bytes, int] = {}
        for position, payload in enumerate(data):
            index.setdefault(sm3(payload), position)
        with self._cond:
            self._payloads, self._index = data, index
            self._cond.notify_all()

    def size(self) -> int:
        with self._cond:
            return len(self._payloads)

    def read(self, position: int, limit: int) -> list[bytes]:
        with self._cond:
            return self._payloads[position : position + limit]

    def positions_of(self, digests: Sequence[bytes]) -> list[int] | None:
        with self._cond:
            found = [self._index.get(d) for d in digests]
        return None if any(p is None for p in found) else [p for p in found if p is not None]

    def wait_for(self, size: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._payloads) >= size, timeout)


class _FlushingTCPTransport(TCPTransport):  # type: ignore[misc]  # pysyncobj is untyped
    """pysyncobj's TCP transport, made to finish sending a message without waiting for the next one.

    In 0.3.17 a connection asks the poller for write-readiness only while it is being set up. A message
    larger than the socket buffer therefore sends its first part and leaves the rest in the connection's
    buffer until the next ``send`` on that connection, usually the heartbeat ``appendEntriesPeriod`` (100 ms)
    later. After each send that leaves data behind, subscribe for write-readiness, exactly as the
    connection's own poll callback does after a partial write. Runs on the tick thread.
    """

    _WRITE_EVENTS = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.ERROR

    def send(self, node: object, message: object) -> bool:
        sent = bool(super().send(node, message))
        conn = self._connections.get(node)
        if conn is not None and conn.getSendBufferSize() > 0 and conn.fileno() is not None:
            callback = conn._TcpConnection__processConnection  # the pinned 0.3.17 poll callback
            self._syncObj._poller.subscribe(conn.fileno(), callback, self._WRITE_EVENTS)
        return sent


class _Outcome:
    """The callback pysyncobj calls once with ``(result, fail_reason)``."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.result: object = None
        self.error: int | None = None

    def __call__(self, result: object, error: int) -> None:
        self.result, self.error = result, error
        self.event.set()


class RaftOrdering:
    """An :class:`network.ordering.OrderingService` replicated by Raft among ``self_address`` and partners.

    Construction binds ``self_address`` (exactly that address) and starts pysyncobj's tick thread; it returns
    once the port is bound, before a leader is known (``wait_for`` / ``append`` then wait for one). The node
    replays its journal and full dump from ``journal_dir`` on start, so a restarted member resumes where it
    stopped and catches up from the leader. Construct it from a long-lived thread: pysyncobj stops ticking
    when the constructing thread exits.

    Raises ``ValueError`` (missing or short secret, an address outside loopback without
    ``allow_non_loopback``, a non-canonical address, an unsafe or already used ``journal_dir``),
    ``ImportError`` if ``cryptography`` is missing, and :class:`OrderingUnavailableError`
    (``reason="bind_failed"``) if the port cannot be bound within ``bind_timeout`` seconds.

    Tuning: ``low_latency`` sends each entry at once (pysyncobj ``appendEntriesUseBatch=False``; about 100 ms
    per synchronous commit otherwise); ``connection_retry`` is the reconnect interval to a lost member;
    ``compaction_min_entries`` / ``compaction_interval`` are described in the module docstring.
    """

    def __init__(
        self,
        self_address: str,
        partner_addresses: Sequence[str],
        *,
        secret: bytes | str,
        journal_dir: Path | str,
        allow_non_loopback: bool = False,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        compaction_min_entries: int | None = 100_000,
        compaction_interval: float = 86_400.0,
        connection_retry: float = 0.5,
        low_latency: bool = True,
        bind_timeout: float = 5.0,
    ) -> None:
        secret_bytes = _secret_bytes(secret)
        self._partners = check_addresses(self_address, partner_addresses, allow_non_loopback=allow_non_loopback)
        self._self_address = self_address
        if not 0 < max_payload_bytes <= DEFAULT_MAX_PAYLOAD_BYTES:
            raise ValueError(f"max_payload_bytes must be in 1..{DEFAULT_MAX_PAYLOAD_BYTES}")
        if compaction_min_entries is not None and compaction_min_entries < 2:
            raise ValueError("compaction_min_entries must be >= 2 or None (no compaction)")
        check_timeout(compaction_interval)
        check_timeout(connection_retry)
        check_timeout(bind_timeout)
        if not HAS_CRYPTO:
            raise ImportError("pysyncobj needs the 'cryptography' package to encrypt and authenticate its traffic")
        self._max_payload_bytes = max_payload_bytes
        self._journal_dir = _prepare_journal_dir(journal_dir)
        self._lock_fd = self._lock_journal_dir()

        never = float(2**62)
        conf = SyncObjConf(
            password=secret_bytes,
            bindAddress=self_address,
            journalFile=str(self._journal_dir / _JOURNAL_FILE),
            fullDumpFile=str(self._journal_dir / _DUMP_FILE),
            appendEntriesUseBatch=not low_latency,
            appendEntriesBatchSizeBytes=_APPEND_ENTRIES_BATCH_BYTES,
            connectionRetryTime=connection_retry,
            leaderFallbackTimeout=5.0,
            logCompactionMinEntries=compaction_min_entries or 2**62,
            logCompactionMinTime=compaction_interval if compaction_min_entries else never,
            logCompactionSplit=True,
            dynamicMembershipChange=False,
            commandsWaitLeader=True,
            bindRetryTime=0.25,
            maxBindRetries=max(1, int(bind_timeout / 0.25)),
            onStateChanged=self._on_state_changed,
        )
        self._log = _PayloadLog()
        self._close_lock = threading.Lock()
        self._closed = False
        self._sync = SyncObj(
            self_address,
            self._partners,
            conf=conf,
            consumers=[self._log],
            transportClass=_FlushingTCPTransport,
        )
        try:
            self._sync.waitBinded()
        except SyncObjException:
            self._sync.destroy_synchronous()
            os.close(self._lock_fd)
            raise OrderingUnavailableError(
                f"cannot bind the Raft port {self_address}", reason="bind_failed", timeout=bind_timeout
            ) from None

    # --- OrderingService ------------------------------------------------------------------------------------

    def append(self, payload: bytes, timeout: float = 10.0) -> int:
        """Order one payload; see :meth:`network.ordering.OrderingService.append` for the full contract.

        Commits through the leader (a follower forwards). Transient Raft failures inside the deadline (no
        leader yet, leader changed, command discarded by a new leader) are retried; the SM3 de-duplication in
        the replicated state makes every retry safe.
        """
        check_payload(payload, self._max_payload_bytes)
        return self._order([payload], timeout)[0]

    def append_batch(self, payloads: Sequence[bytes], timeout: float = 10.0) -> list[int]:
        """Order several payloads as one Raft entry (see ``OrderingService.append_batch``)."""
        return self._order(check_batch(payloads, self._max_payload_bytes), timeout)

    @property
    def max_payload_bytes(self) -> int:
        """The largest payload :meth:`append` accepts."""
        return self._max_payload_bytes

    def read(self, position: int, limit: int = 1000) -> list[bytes]:
        """Committed payloads ``[position, position + limit)`` applied here (local, non-blocking)."""
        check_read(position, limit)
        self._check_state()
        return self._log.read(position, limit)

    def committed_size(self) -> int:
        """Number of payloads this replica has applied, all of them committed by a majority."""
        return self._log.size()

    def wait_for(self, size: int, timeout: float) -> bool:
        """Block until this replica applied ``size`` payloads or ``timeout`` passes; return whether it did."""
        return self._log.wait_for(size, check_timeout(timeout))

    def position_of(self, payload: bytes) -> int | None:
        """Position of ``payload`` if this replica applied it (a lagging follower may not have yet)."""
        found = self._log.positions_of([sm3(check_payload(payload, self._max_payload_bytes))])
        return None if found is None else found[0]

    def leader(self) -> str | None:
        """The last known leader's address; stale for up to one election timeout after the leader fails."""
        node = self._sync._getLeader()
        return None if node is None else str(node.id)

    def status(self) -> dict[str, Any]:
        """Role, term, Raft commit index, applied payloads, leader, partner reachability (diagnostics)."""
        raw = self._raw_status()
        return {
            "backend": "raft",
            "self": self._self_address,
            "role": "closed" if self._closed else _ROLES.get(raw["state"], "unknown"),
            "term": raw["raft_term"],
            "leader": self.leader(),
            "commit_index": raw["commit_idx"],
            "last_applied": raw["last_applied"],
            "log_entries": raw["log_len"],
            "committed_size": self.committed_size(),
            "has_quorum": raw["has_quorum"],
            "peers": {a: raw.get(f"partner_node_status_server_{a}") == 2 for a in self._partners},
        }

    def close(self) -> None:
        """Leave the cluster: stop the tick thread, unbind the port, close the journal. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._sync.destroy_synchronous()
        os.close(self._lock_fd)

    def __enter__(self) -> RaftOrdering:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------------------

    def _order(self, batch: list[bytes], timeout: float) -> list[int]:
        timeout = check_timeout(timeout)
        if self._closed:
            raise ValueError("the ordering service is closed")
        self._check_state()
        blob = encode_batch(batch)
        digests = [sm3(p) for p in batch]
        known = self._log.positions_of(digests)
        if known is not None:
            return known
        deadline = time.monotonic() + timeout
        reason = "timeout"
        while True:
            if time.monotonic() >= deadline:
                if reason == "timeout" and self.leader() is None:
                    reason = "no_leader"
                raise OrderingUnavailableError(
                    "the ordering service did not confirm the commit in time",
                    reason=reason,
                    leader=self.leader(),
                    timeout=timeout,
                )
            outcome = _Outcome()
            try:
                self._log._apply(blob, callback=outcome)
            except OSError:  # pysyncobj's wake-up pipe is full: the command queue is saturated
                outcome(None, FAIL_REASON.QUEUE_FULL)
            while not outcome.event.wait(max(0.0, min(_POLL_SLICE, deadline - time.monotonic()))):
                known = self._log.positions_of(digests)
                if known is not None:
                    return known
                if time.monotonic() >= deadline:
                    break
            if not outcome.event.is_set():
                reason = "timeout"
                continue
            if outcome.error == FAIL_REASON.SUCCESS:
                if isinstance(outcome.result, tuple) and len(outcome.result) == len(batch):
                    return list(outcome.result)
                raise RuntimeError(f"replicated state rejected a well-formed batch: {outcome.result!r}")
            reason = _FAIL_REASONS.get(outcome.error or 0, f"fail_{outcome.error}")
            time.sleep(max(0.0, min(_RETRY_BACKOFF, deadline - time.monotonic())))

    def _check_state(self) -> None:
        if self._log.corrupt:
            raise OrderingUnavailableError(
                "this replica could not load its full dump", reason="state_corrupt", leader=self.leader()
            )

    def _raw_status(self) -> dict[str, Any]:
        # getStatus reads pysyncobj's dictionaries from this thread while the tick thread may resize them.
        for _ in range(20):
            try:
                status: dict[str, Any] = self._sync.getStatus()
                return status
            except RuntimeError:
                time.sleep(0.001)
        raise RuntimeError("could not read a consistent pysyncobj status")

    def _lock_journal_dir(self) -> int:
        fd = os.open(self._journal_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(f"journal_dir {self._journal_dir} is in use by another ordering node") from None
        return fd

    def _on_state_changed(self, old: int, new: int) -> None:
        logger.info("raft %s: %s -> %s", self._self_address, _ROLES.get(old, old), _ROLES.get(new, new))
