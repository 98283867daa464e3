"""Request and response bodies of the node's HTTP API (documented in the OpenAPI spec at ``/openapi.json``).

Event bodies are the models of :mod:`node.lifecycle`; a license document is parsed by
:func:`core.licenses.parse_document` from the raw request bytes (strict JSON: no floats, no duplicate keys),
so its schema here is descriptive (:data:`LICENSE_BODY`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Out):
    detail: str
    errors: dict[str, str] | None = None
    current: str | None = None
    requested: str | None = None
    request_id: str | None = None


class Issued(_Out):
    license_id: str = Field(description="The GB/T 36904 identifier of the stored version.")
    base_id: str = Field(description="The identifier without version: names the license across versions.")
    version: int
    status: Literal["pending"] = Field(description="Anchoring status: pending until the ledger has its leaf.")
    license_status: str
    commitment: str = Field(description="Hex SM3(salt || canonical document): what the ledger will hold.")
    seal_key_id: str
    holder_token: str | None = Field(
        description="For a natural-person holder: a token (llh_...) to give the holder. Shown only here."
    )


class IssuedBatch(_Out):
    count: int = Field(description="How many licenses were stored (all of the batch: it is all or nothing).")
    licenses: list[Issued] = Field(description="One answer per document, in the order of the request.")


class EventDone(_Out):
    base_id: str
    license_id: str = Field(description="The identifier of the license's current version after the event.")
    event: str
    version: int
    new_version: bool
    license_status: str
    status: Literal["pending"] = Field(description="Anchoring status of what the event sends to the ledger.")


class AnchorRef(_Out):
    batch_seq: int
    leaf_index: int
    batch_root: str
    tx_id: str
    block_number: int
    log_index: int | None
    anchored_ms: int


class LicenseOut(_Out):
    license_id: str
    base_id: str
    kind: str
    version: int
    current_version: int
    status: Literal["pending", "anchored"]
    license_status: str
    commitment: str
    seal: dict[str, Any]
    document: dict[str, Any]
    masked: bool = Field(description="True when personal data is masked (the caller is not entitled to it).")
    anchor: AnchorRef | None
    salt: str | None = Field(default=None, description="Hex salt of the commitment; only with the full document.")


class StatusOut(_Out):
    license_id: str
    base_id: str
    kind: str
    current_version: int
    license_status: str
    status: Literal["pending", "anchored"]
    commitment: str
    seal_key_id: str
    anchor: AnchorRef | None


class PublicOut(StatusOut):
    document: dict[str, Any] = Field(description="The document with personal data masked.")


class HistoryOut(_Out):
    base_id: str
    kind: str
    current_version: int
    license_status: str
    versions: list[dict[str, Any]]
    events: list[dict[str, Any]]


class HolderLicense(LicenseOut):
    events: list[dict[str, Any]]


class HolderLicenses(_Out):
    licenses: list[HolderLicense]


class HolderTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    citizen_id: str = Field(min_length=1, max_length=32, description="The holder's citizen ID (GB 11643).")


class HolderTokenOut(_Out):
    holder_token: str


class StaffPage(_Out):
    uscc: str
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


class AuditPage(_Out):
    entries: list[dict[str, Any]]


class Health(_Out):
    status: Literal["ok"]
    province: str
    authority_uscc: str
    signing_key_id: str


LICENSE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "A license document of kind institution, physician or nurse (docs/formats.md), issued by this "
            "node's "
            "authority. Strict JSON: no floats, no duplicate keys."
        ),
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["format", "kind", "license_id", "version", "issuer", "issued_at"],
                    "properties": {
                        "format": {"type": "integer", "enum": [1]},
                        "kind": {"type": "string", "enum": ["institution", "physician", "nurse"]},
                        "license_id": {"type": "string"},
                        "version": {"type": "integer", "minimum": 1, "maximum": 999},
                        "issuer": {"type": "object"},
                        "issued_at": {"type": "string"},
                        "holder": {"type": "object"},
                        "practice": {"type": "object"},
                    },
                }
            }
        },
    }
}


BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "1 to 500 license documents of this node's authority, stored all or nothing in one transaction. "
            "Strict JSON: no floats, no duplicate keys. The body must also stay under LICLEDGER_MAX_BODY_BYTES."
        ),
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["documents"],
                    "additionalProperties": False,
                    "properties": {
                        "documents": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 500,
                            "items": LICENSE_BODY["requestBody"]["content"]["application/json"]["schema"],
                        }
                    },
                }
            }
        },
    }
}
