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
   uncommitted chunks, which the next run redoes from the recorded offset. With ``workers`` > 0 the next chunks
   are validated and sealed by worker processes (:class:`node.sealing.SealingPool`) while this process stores
   the current one; chunks are still committed one at a time, in file order, so the recorded offset always
   covers exactly the committed lines.
3. A line whose license is already registered (by an earlier run, the API, or an earlier line of the file)
   is counted as ``present`` and skipped: nothing stored is ever changed. A line that is not valid JSON or not
   a valid license of this node's authority is recorded in ``import_rejects`` with its line number and the
   field errors (never its values) and reported; blank lines are ignored.
4. Imported licenses get no holder token (holders ask the operator: ``POST /v1/holder-tokens``); their
   ``issue`` event has the reason ``stock_import``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.hashing import sm3
from node import audit, bulk, records
from node.access import Principal
from node.context import NodeContext
from node.db.models import ImportProgress, ImportReject
from node.db.models import License as LicenseRow
from node.errors import ConflictError
from node.sealing import Rejected, Sealed, SealingPool

CHUNK_BYTES = 4 * 1024 * 1024
DEFAULT_CHUNK_LINES = 5000
"""Lines per transaction. Large, because at scale a commit's cost is the pages it writes: the random-keyed
indexes (commitment, leaf hash, holder hash) dirty about one page per license whatever the chunk, until a chunk
is large enough for its licenses to share pages. Measured storing 200,000 sealed licenses on SQLite
(``synchronous=FULL``): 347 µs/license of wall time in chunks of 500, 241 in chunks of 2,000, 161 in chunks of
5,000; a whole import of 150,000 with 2 sealing workers, 1,939 vs 2,834 licenses/s in chunks of 500 vs 5,000
(``bench/bench_node.py --count 150000 --modes importN --no-postgres --chunk-lines N``). A chunk holds SQLite's
write lock while it is stored (about a second at this size), and a killed import redoes at most the uncommitted
chunks."""
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


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Lines read for one transaction: where they start, how many bytes, which are too long (rejected before
    sealing) and the line numbers of the documents sent to be sealed."""

    offset: int
    line_no: int
    lines: int
    consumed: int
    now_ms: int
    too_long: tuple[int, ...]
    numbers: tuple[int, ...]


def _chunks(
    node: NodeContext, f: BinaryIO, offset: int, line_no: int, chunk_lines: int
) -> Iterator[tuple[_Chunk, list[bytes], int]]:
    """Rule 2's chunks from ``offset`` as sealing jobs ``(chunk, documents, now_ms)``; blank lines dropped."""
    while True:
        lines, consumed = _read_chunk(f, chunk_lines)
        if not lines:
            return
        too_long, numbers, documents = [], [], []
        for i, raw in enumerate(lines):
            if raw is None:
                too_long.append(line_no + i + 1)
            elif raw.strip():
                numbers.append(line_no + i + 1)
                documents.append(raw)
        now = node.clock()
        yield _Chunk(offset, line_no, len(lines), consumed, now, tuple(too_long), tuple(numbers)), documents, now
        offset += consumed
        line_no += len(lines)


def run_import(
    node: NodeContext,
    path: Path,
    *,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
    workers: int = 0,
    pool: SealingPool | None = None,
    progress: Callable[[int], None] = lambda n: None,
    report: Callable[[int, str], None] = lambda line, error: None,
) -> ImportResult:
    """Import ``path`` into the node (rules above). ``workers`` processes validate and seal the next chunks while
    this one stores the current chunk (0: all in this process; :mod:`node.sealing`), or ``pool``, a pool of this
    node already started (left open: a caller importing several files, or a benchmark starting its workers
    before the clock). ``progress(bytes)`` after each chunk, ``report(line, error)`` for each rejected line.
    Returns the totals."""
    if chunk_lines < 1:
        raise ValueError("chunk_lines must be at least 1")
    if pool is not None and workers:
        raise ValueError("give workers or a pool, not both")
    if pool is not None and pool.sealer.key.key_id != node.signing_key.key_id:
        raise ValueError("the pool seals with another key than this node's")
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
    with path.open("rb") as f, contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(SealingPool(node, workers))
        f.seek(offset)
        for chunk, answers in pool.stream(_chunks(node, f, offset, line_no, chunk_lines)):
            with node.sessions() as session, session.begin():
                rejects = _import_chunk(session, node, digest, chunk, answers)
            for number, error in rejects:
                report(number, error)
            progress(chunk.consumed)
    with node.sessions() as session, session.begin():
        state = session.get(ImportProgress, digest, with_for_update=True)
        assert state is not None
        state.completed = True
        return ImportResult(digest, state.line_number, state.imported, state.present, state.rejected, start_line)


def _import_chunk(
    session: Session,
    node: NodeContext,
    digest: str,
    chunk: _Chunk,
    answers: list[Sealed | Rejected],
) -> list[tuple[int, str]]:
    """One transaction (rule 2). Returns the rejected lines (number, error)."""
    state = session.get(ImportProgress, digest, with_for_update=True)
    assert state is not None
    if state.byte_offset != chunk.offset:
        raise ConflictError(
            "another import of this file is running", current=str(state.byte_offset), requested=str(chunk.offset)
        )
    now = chunk.now_ms
    line_no = chunk.line_no
    req = records.Request(IMPORTER, f"import-{digest[:16]}-{line_no + 1}", now)
    rejects = [(number, f"line is longer than {MAX_LINE_BYTES} bytes") for number in chunk.too_long]
    valid: list[Sealed] = []
    for number, answer in zip(chunk.numbers, answers, strict=True):
        if isinstance(answer, Rejected):
            rejects.append((number, answer.describe()))
        else:
            valid.append(answer)
    rejects.sort()
    bases = {item.base_id for item in valid}
    known = sa.select(LicenseRow.base_id).where(bulk.one_of(session, LicenseRow.base_id, list(bases)))
    stored = set(session.scalars(known))
    new: list[Sealed] = []
    for item in valid:
        if item.base_id not in stored:
            new.append(item)
            stored.add(item.base_id)
    present = len(valid) - len(new)
    records.store_sealed(session, node, new, req, reason="stock_import", with_holder_token=False, audit_entry=False)
    imported = len(new)
    if rejects:
        session.execute(
            sa.insert(ImportReject), [{"file_sm3": digest, "line_number": n, "error": e} for n, e in rejects]
        )
    audit.record(
        session,
        IMPORTER,
        "license.import",
        now_ms=now,
        request_id=req.request_id,
        object=digest,
        detail={
            "first_line": line_no + 1,
            "last_line": line_no + chunk.lines,
            "imported": imported,
            "present": present,
            "rejected": len(rejects),
        },
    )
    state.byte_offset = chunk.offset + chunk.consumed
    state.line_number = line_no + chunk.lines
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
