"""Bulk import of a province's existing licenses from JSON lines (one document per line, as ``licledger gen``
writes them), resumable and idempotent.

Rules:

1. The file is named by its digest: SM3 (GM/T 0004) over the file in 4 MiB chunks,
   ``SM3("licledger-import/v1" || size || SM3(chunk_0) || SM3(chunk_1) || ...)`` (a hash list, because the SM3
   binding has no incremental interface). Progress is stored under that digest, so a resumed run continues
   only the very same bytes; an edited file is a new import.
2. Lines are processed in chunks; each chunk is **one database transaction**: its licenses (each with version,
   event and outbox leaf, as :func:`node.records.store_many`), its rejected lines, one audit entry and the new
   progress (byte offset and line number after the chunk). Killing the process at any point loses at most the
   uncommitted chunk, which the next run redoes from the recorded offset.
3. A line whose license is already registered (by an earlier run, the API, or an earlier line of the file)
   is counted as ``present`` and skipped: nothing stored is ever changed. A line that is not valid JSON or not
   a valid license of this node's authority is recorded in ``import_rejects`` with its line number and the
   field errors (never its values) and reported; blank lines are ignored.
4. Imported licenses get no holder token (holders ask the operator: ``POST /v1/holder-tokens``); their
   ``issue`` event has the reason ``stock_import``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import canonical
from core.errors import DocumentError, FormatError
from core.hashing import sm3
from core.licenses import License
from node import audit, records
from node.access import Principal
from node.context import NodeContext
from node.db.models import ImportProgress, ImportReject
from node.db.models import License as LicenseRow
from node.errors import ConflictError

CHUNK_BYTES = 4 * 1024 * 1024
DEFAULT_CHUNK_LINES = 200
MAX_LINE_BYTES = 1024 * 1024
IMPORTER = Principal("operator", "cli-import")


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Counts over the whole file (this run and any earlier interrupted runs)."""

    digest: str
    lines: int
    imported: int
    present: int
    rejected: int
    resumed_from_line: int


def file_digest(path: Path) -> str:
    """Rule 1: hex SM3 hash list of the file."""
    size = path.stat().st_size
    parts = [b"licledger-import/v1", size.to_bytes(8, "big")]
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            parts.append(sm3(chunk))
    return sm3(b"".join(parts)).hex()


def _describe(exc: FormatError) -> str:
    if isinstance(exc, DocumentError) and exc.errors:
        return "; ".join(f"{k}: {v}" for k, v in sorted(exc.errors.items()))[:1000]
    return str(exc)[:1000]


def _read_chunk(f: BinaryIO, max_lines: int) -> tuple[list[bytes | None], int]:
    """Up to ``max_lines`` raw lines (``None`` for one longer than the limit) and the bytes consumed."""
    lines: list[bytes | None] = []
    consumed = 0
    while len(lines) < max_lines:
        raw = f.readline(MAX_LINE_BYTES + 1)
        if not raw:
            break
        consumed += len(raw)
        if len(raw) <= MAX_LINE_BYTES:
            lines.append(raw)
            continue
        while not raw.endswith(b"\n"):  # skip the rest of an over-long line
            raw = f.readline(CHUNK_BYTES)
            if not raw:
                break
            consumed += len(raw)
        lines.append(None)
    return lines, consumed


def run_import(
    node: NodeContext,
    path: Path,
    *,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
    progress: Callable[[int], None] = lambda n: None,
    report: Callable[[int, str], None] = lambda line, error: None,
) -> ImportResult:
    """Import ``path`` into the node (rules above). ``progress(bytes)`` after each chunk, ``report(line,
    error)`` for each rejected line. Returns the totals."""
    if chunk_lines < 1:
        raise ValueError("chunk_lines must be at least 1")
    digest = file_digest(path)
    with node.sessions() as session, session.begin():
        state = session.get(ImportProgress, digest)
        if state is None:
            state = ImportProgress(
                file_sm3=digest,
                byte_offset=0,
                line_number=0,
                imported=0,
                present=0,
                rejected=0,
                completed=False,
                updated_ms=node.clock(),
            )
            session.add(state)
        offset, line_no, start_line = state.byte_offset, state.line_number, state.line_number
    progress(offset)
    with path.open("rb") as f:
        f.seek(offset)
        while True:
            lines, consumed = _read_chunk(f, chunk_lines)
            if not lines:
                break
            with node.sessions() as session, session.begin():
                rejects = _import_chunk(session, node, digest, lines, offset, line_no, consumed)
            offset += consumed
            line_no += len(lines)
            for number, error in rejects:
                report(number, error)
            progress(consumed)
    with node.sessions() as session, session.begin():
        state = session.get(ImportProgress, digest, with_for_update=True)
        assert state is not None
        state.completed = True
        return ImportResult(digest, state.line_number, state.imported, state.present, state.rejected, start_line)


def _import_chunk(
    session: Session,
    node: NodeContext,
    digest: str,
    lines: list[bytes | None],
    offset: int,
    line_no: int,
    consumed: int,
) -> list[tuple[int, str]]:
    """One transaction (rule 2). Returns the rejected lines (number, error)."""
    state = session.get(ImportProgress, digest, with_for_update=True)
    assert state is not None
    if state.byte_offset != offset:
        raise ConflictError(
            "another import of this file is running", current=str(state.byte_offset), requested=str(offset)
        )
    now = node.clock()
    req = records.Request(IMPORTER, f"import-{digest[:16]}-{line_no + 1}", now)
    rejects: list[tuple[int, str]] = []
    valid: list[tuple[int, License]] = []
    for i, raw in enumerate(lines):
        number = line_no + i + 1
        if raw is None:
            rejects.append((number, f"line is longer than {MAX_LINE_BYTES} bytes"))
            continue
        if not raw.strip():
            continue
        try:
            valid.append((number, records.validate(canonical.decode(raw), node)))
        except FormatError as exc:
            rejects.append((number, _describe(exc)))
    bases = {doc.license_id.base for _, doc in valid}
    stored = set(session.scalars(sa.select(LicenseRow.base_id).where(LicenseRow.base_id.in_(bases))))
    new: list[License] = []
    for _, doc in valid:
        base = doc.license_id.base
        if base not in stored:
            new.append(doc)
            stored.add(base)
    present = len(valid) - len(new)
    records.store_many(session, node, new, req, reason="stock_import", with_holder_token=False, audit_entry=False)
    imported = len(new)
    session.add_all(ImportReject(file_sm3=digest, line_number=n, error=e) for n, e in rejects)
    audit.record(
        session,
        IMPORTER,
        "license.import",
        now_ms=now,
        request_id=req.request_id,
        object=digest,
        detail={
            "first_line": line_no + 1,
            "last_line": line_no + len(lines),
            "imported": imported,
            "present": present,
            "rejected": len(rejects),
        },
    )
    state.byte_offset = offset + consumed
    state.line_number = line_no + len(lines)
    state.imported += imported
    state.present += present
    state.rejected += len(rejects)
    state.updated_ms = now
    return rejects


def list_rejects(node: NodeContext, digest: str) -> list[tuple[int, str]]:
    """Every rejected line of the import ``digest`` (this run's and earlier runs'), in line order."""
    with node.sessions() as session:
        rows = session.execute(
            sa.select(ImportReject.line_number, ImportReject.error)
            .where(ImportReject.file_sm3 == digest)
            .order_by(ImportReject.line_number)
        ).all()
    return [(n, e) for n, e in rows]
