"""``licledger gen``: write deterministic synthetic licenses (core.synth) as JSON lines.

One document per line, each line the canonical encoding (RFC 8785 subset, core.canonical) of the document, so
the output can be hashed or committed to line by line. Same arguments, same bytes, on every machine.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

import click

from core.canonical import encode
from core.codes import LicenseKind
from core.divisions import PROVINCES
from core.synth import generate

_BATCH = 1000


def _province(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value not in PROVINCES:
        known = ", ".join(f"{code} {d.name_en}" for code, d in PROVINCES.items())
        raise click.BadParameter(
            f"unknown province code {value!r}. Use a GB/T 2260 provincial-level code or 660000 (XPCC): {known}"
        )
    return value


def write_jsonl(out: BinaryIO, kind: str, count: int, province: str, seed: int, start: int = 0) -> int:
    """Write the documents to ``out``; returns how many were written."""
    written = 0
    lines: list[bytes] = []
    for doc in generate(kind, count, province, seed, start=start):
        lines.append(encode(doc))
        if len(lines) == _BATCH:
            out.write(b"\n".join(lines) + b"\n")
            written += len(lines)
            lines.clear()
    if lines:
        out.write(b"\n".join(lines) + b"\n")
        written += len(lines)
    return written


@click.command("gen")
@click.option(
    "--kind",
    required=True,
    type=click.Choice([k.value for k in LicenseKind]),
    help="License kind: physician (医师执业证书), nurse (护士执业证书), institution (医疗机构执业许可证).",
)
@click.option("--count", required=True, type=click.IntRange(min=0), help="Number of documents.")
@click.option(
    "--province",
    required=True,
    callback=_province,
    help="Issuing province: GB/T 2260 provincial code such as 440000, or 660000 for the XPCC.",
)
@click.option("--seed", required=True, type=int, help="Seed: the same seed gives the same documents.")
@click.option("--start", default=0, show_default=True, type=click.IntRange(min=0), help="First document index.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of standard output.",
)
def gen(kind: str, count: int, province: str, seed: int, start: int, out: Path | None) -> None:
    """Write COUNT synthetic licenses of KIND issued by PROVINCE as canonical JSON lines."""
    if out is None:
        write_jsonl(sys.stdout.buffer, kind, count, province, seed, start)
        sys.stdout.buffer.flush()
        return
    with out.open("wb") as stream:
        write_jsonl(stream, kind, count, province, seed, start)
