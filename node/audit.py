"""The audit log: who did or read what, when, in which request (DOMAIN: "traceable and trackable").

Rules:

1. Every write and every disclosure of personal data adds one row, in the same database transaction as the
   work it describes: if the work rolls back, so does its audit entry, and a read's response is only sent
   after its audit entry committed.
2. Rows hold identifiers only: the actor's key or token id, the license identifier, counts and versions.
   ``detail`` is canonical JSON of strings and integers, checked against the patterns in :data:`_SAFE`,
   so no name, citizen ID or free text can reach it by accident.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy.orm import Session

from core import canonical
from node.access import Principal
from node.db.models import AuditEntry

MAX_DETAIL = 500
_SAFE = re.compile(r"[0-9A-Za-z_.:\-]{0,160}")
"""Identifiers, codes, key ids, hex: what an audit value may look like."""


def record(
    session: Session,
    principal: Principal,
    action: str,
    *,
    now_ms: int,
    request_id: str,
    object: str | None = None,
    personal_data: bool = False,
    detail: Mapping[str, str | int] | None = None,
) -> AuditEntry:
    """Add an audit entry to ``session`` (committed with the caller's unit of work)."""
    values = dict(detail or {})
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"audit detail {key!r} must be an int or an identifier string")
        if isinstance(value, str) and _SAFE.fullmatch(value) is None:
            raise ValueError(f"audit detail {key!r} is not an identifier")
    text = canonical.encode(values).decode("utf-8")
    if len(text) > MAX_DETAIL:
        raise ValueError(f"audit detail is longer than {MAX_DETAIL} characters")
    if object is not None and _SAFE.fullmatch(object) is None:
        raise ValueError("audit object must be an identifier")
    entry = AuditEntry(
        occurred_ms=now_ms,
        actor=principal.actor[:64],
        role=principal.role,
        action=action,
        object=object,
        personal_data=personal_data,
        detail=text,
        request_id=request_id[:64],
    )
    session.add(entry)
    return entry
