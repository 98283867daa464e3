"""Where the other provinces' nodes are: the ledger's node announcements, overridden by the node's own setting.

Each member says where its node's API is with an ``AnnounceNode`` transaction signed by its own key
(:mod:`chaincode.nodes`; ``licledger node announce``), so a province announces its node once instead of
every node keeping a list of the others by hand. :class:`NodeDirectory` reads them (``GetNodes``) at most once
per :data:`REFRESH_S`, and ``LICLEDGER_NODE_DIRECTORY`` entries take precedence (an operator's override, and
the only source for a node without a ledger). Outside development mode only ``https`` announcements are used:
the node follows these URLs itself (``POST /v1/verify`` by license id) and refers clients to them.

A hint, never trust: whatever a referred-to node serves is verified like anything else; a member can only move
its own entry, and a replayed old announcement is refused by the contract.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.divisions import PROVINCES
from core.errors import LicledgerError
from core.transactions import announce_node, node_url_problem
from node.ledger import Ledger, LedgerRequestError, LedgerUnavailableError
from node.settings import NodeSettings

if TYPE_CHECKING:
    from node.context import NodeContext

__all__ = [
    "REFRESH_S",
    "RETRY_S",
    "AnnounceRefusedError",
    "Announcement",
    "NodeDirectory",
    "announce",
    "announced_urls",
]

log = logging.getLogger("licledger.directory")

REFRESH_S = 60.0
"""How long the ledger's announcements are reused before ``GetNodes`` is asked again."""
RETRY_S = 10.0
"""After a failed ``GetNodes``, how long the last known announcements are reused before asking again."""


def announced_urls(answer: Any, *, https_only: bool) -> dict[str, str]:
    """``{province: url}`` from a ``GetNodes`` answer: provinces' non-empty, well-formed URLs (``https`` only
    when ``https_only``); anything else in the answer is skipped."""
    out: dict[str, str] = {}
    nodes = answer.get("nodes") if isinstance(answer, dict) else None
    for record in nodes if isinstance(nodes, list) else []:
        if not isinstance(record, dict):
            continue
        member, url = record.get("member"), record.get("url")
        if not isinstance(member, str) or member not in PROVINCES or not isinstance(url, str) or not url:
            continue
        if node_url_problem(url) is not None or (https_only and not url.startswith("https://")):
            continue
        out[member] = url
    return out


class NodeDirectory:
    """``{province: node URL}`` for referrals; thread-safe (request threads share it)."""

    def __init__(
        self,
        settings: NodeSettings,
        ledger: Ledger | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.clock = clock
        self._lock = threading.Lock()
        self._announced: dict[str, str] = {}
        self._next_refresh = float("-inf")

    def current(self) -> dict[str, str]:
        """The ledger's announcements with the configured entries over them."""
        return {**self.announced(), **self.settings.node_directory_map}

    def announced(self) -> dict[str, str]:
        """The ledger's announcements (refreshed at most every :data:`REFRESH_S`; the last known ones while the
        ledger does not answer)."""
        if self.ledger is None:
            return {}
        with self._lock:
            now = self.clock()
            if now < self._next_refresh:
                return dict(self._announced)
            try:
                answer = self.ledger.query("GetNodes")
            except (LedgerUnavailableError, LedgerRequestError) as exc:
                log.warning("node directory: the ledger's announcements could not be read: %s", type(exc).__name__)
                self._next_refresh = now + RETRY_S
                return dict(self._announced)
            self._announced = announced_urls(answer, https_only=self.settings.mode != "development")
            self._next_refresh = now + REFRESH_S
            return dict(self._announced)

    def invalidate(self) -> None:
        """Read the ledger again on the next call (after this node announced itself)."""
        with self._lock:
            self._next_refresh = float("-inf")


class AnnounceRefusedError(LicledgerError):
    """The URL cannot be announced, or the ledger refused the announcement (with the contract's reason)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Announcement:
    member: str
    url: str
    seq: int
    block: int | None
    """The block that committed it; ``None`` when the ledger already held this URL (nothing was signed)."""


def _check_node_url(url: str, settings: NodeSettings) -> None:
    """:class:`AnnounceRefusedError` unless ``url`` may be announced by this node (``""`` withdraws)."""
    if not url:
        return
    problem = node_url_problem(url)
    if problem is not None:
        raise AnnounceRefusedError(f"{url!r}: {problem}")
    if settings.mode != "development" and not url.startswith("https://"):
        raise AnnounceRefusedError(f"{url!r}: outside development mode the node's URL must be https")


def announce(node: NodeContext, url: str) -> Announcement:
    """Put ``url`` on the ledger as this node's (``AnnounceNode``), unless the ledger holds it already.

    Raises :class:`AnnounceRefusedError` (a bad URL, the contract's refusal), :class:`~node.errors.
    RotationPendingError` (nothing is signed while a key rotation is pending), and the ledger's
    :class:`~node.ledger.LedgerUnavailableError` / :class:`~node.ledger.LedgerRequestError`."""
    _check_node_url(url, node.settings)
    ledger = node.ledger
    if ledger is None:
        raise AnnounceRefusedError("this node has not joined a ledger (LICLEDGER_LEDGER_URLS, LICLEDGER_NETWORK_ID)")
    member = node.settings.province
    node.check_no_pending_rotation()
    answer = ledger.query("GetNodes") or {"nodes": []}
    current = next((n for n in answer["nodes"] if n.get("member") == member), None)
    if current is not None and current["url"] == url:
        return Announcement(member, url, int(current["seq"]), None)
    seq = 0 if current is None else int(current["seq"]) + 1
    envelope = announce_node(
        ledger.network_id, member=member, seq=seq, url=url, key=node.sealing_key(), timestamp_ms=node.clock()
    )
    [verdict] = ledger.submit([envelope])
    if not verdict.valid:
        raise AnnounceRefusedError(f"the ledger refused the announcement: {verdict.reason}: {verdict.message}")
    node.directory.invalidate()
    log.info("node announced on the ledger (seq %d, block %d)", seq, verdict.block)
    return Announcement(member, url, seq, verdict.block)
