"""node.lifecycle (no I/O): transitions agree with the ledger's rule, and version events build valid documents."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from nodekit import institutions, nurses, physicians

from chaincode.anchoring import ALLOWED_TRANSITIONS
from core.errors import DocumentError
from core.licenses import PhysicianLicense, parse_document
from node import lifecycle

WHEN = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)


def _physician(value: object) -> PhysicianLicense:
    assert isinstance(value, PhysicianLicense)
    return value


def test_every_node_transition_is_allowed_by_the_ledger() -> None:
    for status, events in lifecycle.TRANSITIONS.items():
        for event, after in events.items():
            assert after in ALLOWED_TRANSITIONS[status], (status, event, after)
            assert lifecycle.status_after(status, event) == after
    assert lifecycle.TRANSITIONS["revoked"] == {}


@pytest.mark.parametrize(
    ("status", "event"),
    [("revoked", "reinstate"), ("active", "reinstate"), ("suspended", "suspend"), ("revoked", "revoke")],
)
def test_forbidden_transitions(status: str, event: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        lifecycle.status_after(status, event)


def test_change_makes_the_next_version_with_the_event_time() -> None:
    doc = _physician(parse_document(physicians(1)[0]))
    event = lifecycle.ChangeEvent(type="change", changes={"practice": {"scope": ["内科专业"], "category": "clinical"}})
    new = _physician(lifecycle.next_document(doc, event, WHEN))
    assert new.version == doc.version + 1 and new.license_id == doc.license_id.next_version()
    assert new.issued_at == WHEN
    assert new.practice.scope == ("内科专业",)
    assert new.holder == doc.holder and new.practice.primary_institution == doc.practice.primary_institution


def test_change_is_revalidated_and_cannot_touch_envelope_or_identity() -> None:
    doc = parse_document(nurses(1)[0])
    with pytest.raises(DocumentError) as caught:
        lifecycle.next_document(doc, lifecycle.ChangeEvent(type="change", changes={"valid_to": "1999-01-01"}), WHEN)
    assert set(caught.value.errors) == {"valid_to"}
    with pytest.raises(DocumentError) as caught:
        bad = {"version": 9, "issued_at": "x", "holder": {"citizen_id": "x"}, "kind": "physician"}
        lifecycle.next_document(doc, lifecycle.ChangeEvent(type="change", changes=bad), WHEN)
    assert set(caught.value.errors) == {
        "changes.version",
        "changes.issued_at",
        "changes.holder.citizen_id",
        "changes.kind",
    }
    inst = parse_document(institutions(1)[0])
    with pytest.raises(DocumentError) as caught:
        lifecycle.next_document(inst, lifecycle.ChangeEvent(type="change", changes={"holder": {"uscc": "x"}}), WHEN)
    assert set(caught.value.errors) == {"changes.holder.uscc"}


def test_filing_and_cancel_filing_on_a_physician() -> None:
    doc = _physician(parse_document(physicians(1)[0]))
    other = institutions(4)[3]["holder"]
    filing = lifecycle.FilingEvent(
        type="filing",
        institution=lifecycle.InstitutionRefIn(name=other["name"], uscc=other["uscc"]),
        filed_on="2025-02-01",
    )
    v2 = _physician(lifecycle.next_document(doc, filing, WHEN))
    assert v2.practice.filed_institutions[-1].uscc == other["uscc"]
    with pytest.raises(DocumentError) as caught:  # the same institution twice
        lifecycle.next_document(v2, filing, WHEN)
    assert any(k.endswith(".uscc") for k in caught.value.errors)
    v3 = _physician(
        lifecycle.next_document(v2, lifecycle.CancelFilingEvent(type="cancel-filing", uscc=other["uscc"]), WHEN)
    )
    assert v3.practice.filed_institutions == doc.practice.filed_institutions and v3.version == doc.version + 2
    with pytest.raises(DocumentError, match="no such filing"):
        lifecycle.next_document(v3, lifecycle.CancelFilingEvent(type="cancel-filing", uscc=other["uscc"]), WHEN)


def test_renew_applies_to_nurses_and_institutions_only() -> None:
    renew = lifecycle.RenewEvent(type="renew", valid_from="2025-01-01", valid_to="2029-12-31")
    for doc in (nurses(1)[0], institutions(1)[0]):
        new = lifecycle.next_document(parse_document(doc), renew, WHEN)
        assert new.to_canonical_dict()["valid_to"] == "2029-12-31"
    with pytest.raises(DocumentError) as caught:
        lifecycle.next_document(parse_document(physicians(1)[0]), renew, WHEN)
    assert set(caught.value.errors) == {"type"}


def test_version_999_has_no_successor() -> None:
    doc = physicians(1)[0]
    from core.codes import LicenseId

    last = LicenseId.parse(doc["license_id"]).with_version(999)
    doc.update(license_id=str(last), version=999)
    event = lifecycle.ChangeEvent(type="change", changes={"holder": {"name": "李四"}})
    with pytest.raises(ValueError, match="last version"):
        lifecycle.next_document(parse_document(doc), event, WHEN)
