"""Public routes, no credential, rate-limited per client IP: basic registration facts and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from node import queries
from node.api.deps import NodeDep, PublicRateLimit, SessionDep
from node.api.routes.licenses import ERRORS, LicenseIdPath
from node.api.schemas import Health, PublicOut

router = APIRouter(tags=["public"])


@router.get("/v1/public/licenses/{license_id}", response_model=PublicOut, responses=ERRORS)
def public_license(license_id: LicenseIdPath, _: PublicRateLimit, session: SessionDep) -> dict[str, Any]:
    """Basic registration facts of a license with personal data masked (names ``张*``, IDs ``4401**...``)."""
    loaded = queries.load(session, queries.parse_license_ref(license_id))
    return queries.public_view(session, loaded)


@router.get("/healthz", response_model=Health, responses=ERRORS)
def health(_: PublicRateLimit, node: NodeDep) -> Health:
    """Liveness: the node's province, authority and signing key id."""
    s = node.settings
    return Health(
        status="ok",
        province=s.province,
        authority_uscc=s.authority_uscc,
        signing_key_id=node.signing_key.key_id,
    )
