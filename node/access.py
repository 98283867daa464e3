"""Who may do what on a provincial node (I/O-free): principals, roles and the personal-data rule.

Roles, before any code:

========== ================================================================== ===============================
role        may                                                                credential
========== ================================================================== ===============================
operator    write (issue, events, holder tokens); read everything; statistics   API key ``llk_...``
institution read its own staff's licenses and its own license; list its staff API key bound to one USCC
agency      check a license's status and facts (masked document)               API key
auditor     history, integrity data (documents and salts), audit log, stats    API key
holder      read their own licenses, applications and history                 holder token ``llh_...``
public      masked basic registration facts; rate-limited                      none
========== ================================================================== ===============================

Personal data (the fields of :data:`core.licenses.PERSONAL_FIELDS`) goes only to operator, auditor, the holder
and the institution the person is registered at (primary or filed); every such read is written to the audit
log by the route that serves it. Everyone else gets :meth:`core.licenses._License.masked`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

Role = Literal["operator", "institution", "agency", "auditor", "holder", "public"]
KEY_ROLES: tuple[Role, ...] = ("operator", "institution", "agency", "auditor")

WRITERS: frozenset[Role] = frozenset({"operator"})
READERS: frozenset[Role] = frozenset({"operator", "institution", "agency", "auditor", "holder"})
STATUS_READERS: frozenset[Role] = frozenset({"operator", "agency", "auditor", "institution", "holder"})
HISTORY_READERS: frozenset[Role] = frozenset({"operator", "auditor", "institution", "holder"})
STAFF_READERS: frozenset[Role] = frozenset({"operator", "auditor", "institution"})
STATISTICS_READERS: frozenset[Role] = frozenset({"operator", "auditor"})
AUDIT_READERS: frozenset[Role] = frozenset({"operator", "auditor"})
HOLDERS: frozenset[Role] = frozenset({"holder"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the public). ``id`` is a key or token id, never a secret."""

    role: Role
    id: str
    institution_uscc: str | None = None
    holder_hash: bytes | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"{self.role}:{self.id}"


PUBLIC = Principal("public", "anonymous")


def owns(principal: Principal, holder_hash: bytes | None, institutions: Collection[str]) -> bool:
    """Whether ``principal`` is the license's holder or an institution it names (scope check)."""
    if principal.role == "holder":
        return holder_hash is not None and principal.holder_hash == holder_hash
    if principal.role == "institution":
        return principal.institution_uscc in institutions
    return False


def sees_personal_data(principal: Principal, holder_hash: bytes | None, institutions: Collection[str]) -> bool:
    """Whether ``principal`` may see a license's personal data (the table above)."""
    if principal.role in ("operator", "auditor"):
        return True
    return owns(principal, holder_hash, institutions)


def in_scope(principal: Principal, holder_hash: bytes | None, institutions: Collection[str]) -> bool:
    """Whether a license is in ``principal``'s scope at all: holders and institutions see only their own."""
    if principal.role in ("holder", "institution"):
        return owns(principal, holder_hash, institutions)
    return principal.role in READERS
