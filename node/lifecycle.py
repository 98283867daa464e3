"""License lifecycle events and the documents they produce (I/O-free).

Rules, before any code:

1. **Statuses** are the ledger's (:data:`core.transactions.STATUSES`): ``active`` as issued, ``suspended``,
   ``revoked`` (final: 注销/吊销), ``reinstated``. :data:`TRANSITIONS` is the ledger's rule 5 for
   ``ChangeStatus`` (``chaincode/anchoring.py``) restricted to the events a province performs: *suspend*
   from active or reinstated, *revoke* from active, reinstated or suspended, *reinstate* from suspended.
   A status event produces no new version; it goes to the ledger's status map.
2. **Version events** produce the license's next version (GB/T 36904
   :meth:`~core.codes.LicenseId.next_version`, ``issued_at`` = the event time) and a new leaf to anchor.
   They need an active or reinstated license:
   *change* deep-merges a patch into the document (objects merge, arrays and values replace) and may not touch
   the envelope (``format``, ``kind``, ``license_id``, ``version``, ``issuer``, ``issued_at``) or the holder's
   identity (``holder.citizen_id``, ``holder.uscc``); *filing* adds an institution to a physician's
   多机构备案; *cancel-filing* removes one; *renew* sets a nurse's or institution's ``valid_from`` and
   ``valid_to``.
3. Every new document is validated again by :func:`core.licenses.parse_document`; anything wrong is a
   :class:`~core.errors.DocumentError` naming each bad field, so an event can never store an invalid license.
4. ``reason`` is a code ``[A-Za-z0-9_.-]{1,64}`` (what the ledger accepts): free text could carry personal
   data.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.codes import LicenseKind
from core.errors import DocumentError
from core.licenses import License, parse_document
from core.transactions import ACTIVE, REINSTATED, REVOKED, SUSPENDED

VERSION_EVENTS = ("change", "filing", "cancel-filing", "renew")
STATUS_EVENTS: dict[str, str] = {"suspend": SUSPENDED, "revoke": REVOKED, "reinstate": REINSTATED}
TRANSITIONS: dict[str, dict[str, str]] = {
    ACTIVE: {"suspend": SUSPENDED, "revoke": REVOKED},
    REINSTATED: {"suspend": SUSPENDED, "revoke": REVOKED},
    SUSPENDED: {"reinstate": REINSTATED, "revoke": REVOKED},
    REVOKED: {},
}
"""status -> {status event -> resulting status}; a subset of the ledger's allowed transitions."""
WRITABLE_STATUSES = (ACTIVE, REINSTATED)
"""Statuses in which version events are allowed."""
_ENVELOPE = ("format", "kind", "license_id", "version", "issuer", "issued_at")
_IDENTITY = ("holder.citizen_id", "holder.uscc")

ReasonCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="A reason code.")]
USCCText = Annotated[str, Field(min_length=18, max_length=18, description="Unified social credit code.")]
DateText = Annotated[str, Field(min_length=10, max_length=10, description="A date, YYYY-MM-DD.")]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ChangeEvent(_Event):
    """Change fields of the license (practice institution, scope, address, ...): a new version."""

    type: Literal["change"]
    reason: ReasonCode = "change"
    changes: dict[str, Any] = Field(description="A patch deep-merged into the current document.")


class InstitutionRefIn(_Event):
    name: str = Field(min_length=1, max_length=200)
    uscc: USCCText


class FilingEvent(_Event):
    """File an additional practice institution (多机构备案) on a physician license: a new version."""

    type: Literal["filing"]
    reason: ReasonCode = "filing"
    institution: InstitutionRefIn
    filed_on: DateText


class CancelFilingEvent(_Event):
    """Cancel a filed institution of a physician license: a new version."""

    type: Literal["cancel-filing"]
    reason: ReasonCode = "cancel-filing"
    uscc: USCCText


class RenewEvent(_Event):
    """Renew a nurse or institution license with a new validity period: a new version."""

    type: Literal["renew"]
    reason: ReasonCode = "renew"
    valid_from: DateText
    valid_to: DateText


class StatusEvent(_Event):
    """Suspend, revoke or reinstate: a status change on the ledger, no new version."""

    type: Literal["suspend", "revoke", "reinstate"]
    reason: ReasonCode


Event = Annotated[ChangeEvent | FilingEvent | CancelFilingEvent | RenewEvent | StatusEvent, Field(discriminator="type")]
VersionEvent = ChangeEvent | FilingEvent | CancelFilingEvent | RenewEvent


def status_after(status: str, event: str) -> str:
    """The status after status event ``event``; ``ValueError`` if it is not allowed (rule 1)."""
    try:
        return TRANSITIONS[status][event]
    except KeyError:
        raise ValueError(f"event {event!r} is not allowed from status {status!r}") from None


def instant(when: datetime) -> str:
    """``issued_at`` text of ``when``: RFC 3339 UTC, second precision."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_document(current: License, event: VersionEvent, when: datetime) -> License:
    """The next version of ``current`` after ``event`` at ``when`` (rules 2 and 3).

    Raises :class:`DocumentError` naming each bad field, and ``ValueError`` after version 999.
    """
    doc = current.to_canonical_dict()
    if isinstance(event, ChangeEvent):
        _check_patch(event.changes)
        doc = _merge(doc, event.changes)
    elif isinstance(event, FilingEvent | CancelFilingEvent):
        if current.license_id.kind is not LicenseKind.PHYSICIAN:
            raise DocumentError("not a physician license", {"type": f"{event.type} applies to physicians only"})
        filed = list(doc["practice"]["filed_institutions"])
        if isinstance(event, FilingEvent):
            filed.append({**event.institution.model_dump(), "filed_on": event.filed_on})
        else:
            kept = [f for f in filed if f["uscc"] != event.uscc]
            if len(kept) == len(filed):
                raise DocumentError("no such filing", {"uscc": "is not a filed institution of this license"})
            filed = kept
        doc["practice"]["filed_institutions"] = filed
    else:
        if current.license_id.kind is LicenseKind.PHYSICIAN:
            raise DocumentError("nothing to renew", {"type": "a physician practice certificate has no validity period"})
        doc["valid_from"], doc["valid_to"] = event.valid_from, event.valid_to
    next_id = current.license_id.next_version()
    doc.update(license_id=str(next_id), version=next_id.version, issued_at=instant(when))
    return parse_document(doc)


def _check_patch(changes: Mapping[str, Any]) -> None:
    errors: dict[str, str] = {}
    if not changes:
        errors["changes"] = "must change at least one field"
    for key in _ENVELOPE:
        if key in changes:
            errors[f"changes.{key}"] = "is set by the node and cannot be changed"
    holder = changes.get("holder")
    for path in _IDENTITY:
        field = path.split(".")[1]
        if isinstance(holder, Mapping) and field in holder:
            errors[f"changes.{path}"] = "identifies the holder and cannot be changed; issue a new license"
    if errors:
        raise DocumentError("invalid change", errors)


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, Mapping):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(patch)
