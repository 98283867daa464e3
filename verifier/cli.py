"""``licledger verify``: check a license proof bundle offline against a pinned trust root, and export trust roots.

Usage::

    licledger verify BUNDLE.json --trust-root FILE [--max-age 1d] [--expect LICENSE_ID] [--json]
    licledger verify A.json B.json ... --trust-root FILE [--workers N]   # one line each, in N processes
    licledger verify --qr IMAGE.png [--trust-root FILE] [--node URL ...]
    licledger verify --id LICENSE_ID --node URL [--node URL2 | --peer URL ...] [--trust-root FILE] [--state FILE]
    licledger verify trust-root export GENESIS_OR_NETWORK_JSON [--network-id HEX] [-o FILE]

Exit codes: 0 valid (active), 1 invalid, revoked, suspended or superseded, or a split view (two conflicting checkpoints,
printed as evidence), 2 could not decide (stale or future checkpoint, no usable trust root, unreadable input,
fewer sources than ``--min-sources``). The verdict and each step are printed; the holder's personal data only with
``--show-personal``. All decisions are :func:`verifier.core.verify_bundle`'s; online fetching is
:mod:`verifier.online`'s, QR images :mod:`verifier.qr`'s; this module reads files and prints.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from core.bundle import InvalidBundleError, ProofBundle, QrReference, from_qr_payload
from core.commitment import parse_commitment_hex
from verifier.batch import verify_many
from verifier.core import Result, TrustRoot, TrustRootError, Verdict, load_trust_root, verify_bundle
from verifier.online import OnlineReport, Source, VerifierState, default_state_path, verify_online

__all__ = ["verify"]

EXIT_UNDECIDED = 2
_DURATION = re.compile(r"([0-9]{1,12})(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _undecided(message: str) -> SystemExit:
    click.echo(f"licledger verify: {message}", err=True)
    return SystemExit(EXIT_UNDECIDED)


def parse_duration(text: str) -> int | None:
    """``30s``, ``15m``, ``12h``, ``1d``, ``500ms`` in milliseconds; ``none`` = no freshness policy."""
    if text.strip().lower() == "none":
        return None
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r} is not a duration like 30s, 15m, 12h, 1d or 'none'")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_instant(text: str) -> int:
    """Milliseconds since the epoch, or an RFC 3339 UTC instant (``2024-05-01T08:00:00Z``)."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither milliseconds nor YYYY-MM-DDTHH:MM:SSZ") from None
    return int(when.timestamp() * 1000)


def _read(path: str, what: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise _undecided(f"cannot read {what} {path}: {exc.strerror or exc}") from None


class _DefaultCommandGroup(click.Group):
    """``licledger verify ARGS`` runs the ``check`` command unless ARGS starts with a subcommand name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
def verify() -> None:
    """Verify a license proof bundle, a voucher QR code, or a license id or commitment against a node.

    \b
    licledger verify BUNDLE.json --trust-root FILE [--max-age 1d] [--json]
    licledger verify A.json B.json ... --trust-root FILE [--workers N]
    licledger verify trust-root export NETWORK_GENESIS.json -o trust-root.json

    Exit codes: 0 valid, 1 invalid/revoked/suspended/superseded, 2 could not decide.
    """


@verify.command("check")
@click.argument("bundles", nargs=-1, metavar="BUNDLE.json...")
@click.option("--qr", "qr_image", metavar="IMAGE.png", help="A photo or scan of a voucher's QR code.")
@click.option(
    "--id",
    "license_id",
    metavar="LICENSE_ID",
    help="Fetch and verify this license from the --node URLs (a node of another province refers to the issuer's).",
)
@click.option(
    "--commitment",
    "commitment_hex",
    metavar="HEX",
    help="Fetch and verify the license version with this commitment (64 hex digits) from the --node URLs; only "
    "the issuer's node holds it.",
)
@click.option("--node", "nodes", metavar="URL", multiple=True, help="A provincial node (online mode; repeatable).")
@click.option("--peer", "peers", metavar="URL", multiple=True, help="A ledger peer (online mode; repeatable).")
@click.option(
    "--state",
    "state_path",
    metavar="FILE",
    envvar="LICLEDGER_VERIFIER_STATE",
    help="Online mode: where the trusted checkpoint is kept (default ~/.licledger/verifier/<network id>.json).",
)
@click.option("--min-sources", default=2, show_default=True, type=click.IntRange(1, 64), help="Online mode.")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0.1, 300), help="Per request, s.")
@click.option(
    "--trust-root",
    "trust_root_path",
    metavar="FILE",
    envvar="LICLEDGER_TRUST_ROOT",
    help="Trust-root file, or the network's genesis (genesis JSON, GetGenesis answer or network.json). "
    "Default: $LICLEDGER_TRUST_ROOT.",
)
@click.option("--network-id", metavar="HEX", help="Require the genesis to have this network id (its SM3).")
@click.option("--max-age", default="1d", show_default=True, help="Oldest acceptable checkpoint, or 'none'.")
@click.option("--at", "at", metavar="TIME", help="Judge freshness at this instant (ms or RFC 3339) instead of now.")
@click.option("--expect", metavar="LICENSE_ID", help="The bundle must be for this license (full id or base).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option("--show-personal", is_flag=True, help="Print the holder's personal data instead of masking it.")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Several bundles: verify them in this many processes [default: one per CPU].",
)
def check(
    bundles: tuple[str, ...],
    qr_image: str | None,
    license_id: str | None,
    commitment_hex: str | None,
    nodes: tuple[str, ...],
    peers: tuple[str, ...],
    state_path: str | None,
    min_sources: int,
    timeout: float,
    trust_root_path: str | None,
    network_id: str | None,
    max_age: str,
    at: str | None,
    expect: str | None,
    as_json: bool,
    show_personal: bool,
    workers: int | None,
) -> None:
    """Verify BUNDLE.json ("-" for standard input) offline against a pinned trust root, a voucher's QR code, or a
    license fetched from nodes (online: checkpoints from at least --min-sources nodes/peers, advanced only through
    consistency proofs and kept in --state). Several BUNDLE.json files are verified offline, in --workers processes,
    one line each (--json: one JSON object per line); --commitment fetches a license version by its commitment
    from the --node URLs (only its issuer's node holds it). The exit code is 1 if any was rejected, else 2 if any could
    not be decided or read, else 0."""
    sources_of = (("BUNDLE", bundles), ("--qr", qr_image), ("--id", license_id), ("--commitment", commitment_hex))
    given = [name for name, value in sources_of if value]
    if len(given) != 1:
        raise click.UsageError("give exactly one of BUNDLE.json, --qr IMAGE.png, --id LICENSE_ID or --commitment HEX")
    lookup: bytes | None = None
    if commitment_hex is not None:
        lookup = parse_commitment_hex(commitment_hex)
        if lookup is None:
            raise click.BadParameter("must be 64 hex digits (an SM3 hash)", param_hint="--commitment")
    max_age_ms = parse_duration(max_age)
    now_ms = parse_instant(at) if at is not None else int(time.time() * 1000)
    if len(bundles) > 1:
        if nodes or peers:
            raise click.UsageError("several bundles are verified offline only: drop --node/--peer")
        root = _trust_root(trust_root_path, network_id)
        verify_files(
            bundles, root, now_ms, max_age_ms, expect, workers=workers, as_json=as_json, personal=show_personal
        )
    bundle = bundles[0] if bundles else None
    try:
        sources = [Source(u, "node", timeout) for u in nodes] + [Source(u, "peer", timeout) for u in peers]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--node/--peer") from None
    data: bytes | ProofBundle | None = None
    commitment: bytes | None = None
    if qr_image is not None:
        payload = _qr_payload(qr_image)
        if isinstance(payload, QrReference):
            license_id, commitment = payload.license_id, payload.commitment
            if payload.node_url and payload.node_url.rstrip("/") not in {s.url for s in sources}:
                sources.insert(0, Source(payload.node_url, "node", timeout))
        else:
            data = payload
    elif bundle is not None:
        data = _read(bundle, "bundle")
    if (license_id is not None or lookup is not None) and not sources:
        what = "--id" if lookup is None else "--commitment"
        raise click.UsageError(f"{what} needs --node URL (and a second --node or --peer, or --min-sources 1)")
    if sources:
        online = Online(trust_root_path, network_id, state_path, min_sources, now_ms, max_age_ms)
        online.run(sources, license_id=license_id, bundle=data, commitment=commitment, expect=expect, lookup=lookup)
        online.finish(as_json=as_json, show_personal=show_personal)
    assert data is not None
    root = _trust_root(trust_root_path, network_id)
    try:
        verdict = verify_bundle(data, root, now_ms=now_ms, max_checkpoint_age_ms=max_age_ms, expected_license_id=expect)
    except ValueError as exc:  # --expect that is not a license identifier
        raise click.BadParameter(str(exc), param_hint="--expect") from None
    if as_json:
        click.echo(json.dumps(verdict.to_dict(personal=show_personal), ensure_ascii=False, indent=2))
    else:
        click.echo(render(verdict, show_personal=show_personal))
    raise SystemExit(verdict.exit_code)


def verify_files(
    paths: tuple[str, ...],
    root: TrustRoot,
    now_ms: int,
    max_age_ms: int | None,
    expect: str | None,
    *,
    workers: int | None,
    as_json: bool,
    personal: bool,
) -> NoReturn:
    """Several bundle files, offline (:func:`verifier.batch.verify_many`): one line per file, in the order given; a
    file that cannot be read is ``UNREADABLE`` (exit code 2) and the others are still verified. Exits."""
    read: dict[int, bytes] = {}
    problems: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            read[i] = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as exc:
            problems[i] = f"cannot read {path}: {exc.strerror or exc}"
    try:
        verdicts = verify_many(
            list(read.values()),
            root,
            now_ms=now_ms,
            max_checkpoint_age_ms=max_age_ms,
            expected_license_id=expect,
            workers=workers,
        )
    except ValueError as exc:  # --expect that is not a license identifier
        raise click.BadParameter(str(exc), param_hint="--expect") from None
    by_index = dict(zip(read, verdicts, strict=True))
    codes: set[int] = set()
    for i, path in enumerate(paths):
        verdict = by_index.get(i)
        if verdict is None:
            codes.add(EXIT_UNDECIDED)
            line = {"file": path, "result": "UNREADABLE", "problem": problems[i]} if as_json else None
            click.echo(json.dumps(line, ensure_ascii=False) if line else f"{path}: UNREADABLE: {problems[i]}")
            continue
        codes.add(verdict.exit_code)
        if as_json:
            click.echo(json.dumps({"file": path, **verdict.to_dict(personal=personal)}, ensure_ascii=False))
        else:
            click.echo(f"{path}: {render_line(verdict)}")
    raise SystemExit(1 if 1 in codes else max(codes, default=0))


def render_line(verdict: Verdict) -> str:
    """The verdict in one line: the result, the headline, the failing step's number and reason code."""
    failed = verdict.failed_step
    reason = f" [{failed.number} {failed.reason}]" if failed is not None else ""
    return f"{verdict.result.value}: {_headline(verdict)}{reason}"


def _trust_root(path: str | None, network_id: str | None) -> TrustRoot:
    if not path:
        raise _undecided("no trust root: give --trust-root FILE (or set LICLEDGER_TRUST_ROOT)")
    try:
        return load_trust_root(_read(path, "trust root"), network_id=network_id)
    except TrustRootError as exc:
        raise _undecided(f"unusable trust root {path}: {exc}") from None


def _qr_payload(path: str) -> ProofBundle | QrReference:
    from verifier.qr import QrImageError, decode_qr_image  # Pillow and zxing-cpp only when reading a photo

    try:
        text = decode_qr_image(_read(path, "QR image"))
    except QrImageError as exc:
        raise _undecided(f"cannot read a voucher QR code in {path}: {exc}") from None
    try:
        return from_qr_payload(text)
    except InvalidBundleError as exc:
        click.echo(f"INVALID: the QR code in {path} is not a valid licledger payload: {exc}")
        raise SystemExit(1) from None


class Online:
    """One online run from the command line: the trust root (state file, else --trust-root), the run, the output,
    the state saved only when the trusted checkpoint advanced."""

    def __init__(
        self,
        trust_root_path: str | None,
        network_id: str | None,
        state_path: str | None,
        min_sources: int,
        now_ms: int,
        max_age_ms: int | None,
    ) -> None:
        self.min_sources, self.now_ms, self.max_age_ms = min_sources, now_ms, max_age_ms
        pinned = _trust_root(trust_root_path, network_id) if trust_root_path or not state_path else None
        nid = pinned.network_id if pinned is not None else network_id
        self.state_path = Path(state_path) if state_path else default_state_path(str(nid))
        self.root, self.seq = pinned, None
        if self.state_path.exists():
            try:
                state = VerifierState.load(self.state_path, network_id=nid)
            except (OSError, TrustRootError) as exc:
                raise _undecided(f"unusable verifier state {self.state_path}: {exc}") from None
            if pinned is None or state.trust_root.checkpoint is not None:
                self.root, self.seq = state.trust_root, state.checkpoint_seq
        if self.root is None:
            raise _undecided(f"no trust root: give --trust-root FILE ({self.state_path} does not exist)")
        self.report: OnlineReport | None = None

    def run(
        self,
        sources: list[Source],
        *,
        license_id: str | None,
        bundle: bytes | ProofBundle | None,
        commitment: bytes | None,
        expect: str | None,
        lookup: bytes | None = None,
    ) -> None:
        """``lookup``: fetch the bundle by this commitment (``--commitment``); ``commitment``: the one the
        bundle must carry (a voucher's QR reference)."""
        assert self.root is not None
        try:
            self.report = verify_online(
                self.root,
                sources,
                now_ms=self.now_ms,
                max_checkpoint_age_ms=self.max_age_ms,
                license_id=license_id,
                bundle=bundle,
                expected_license_id=expect,
                expected_commitment=commitment,
                checkpoint_seq=self.seq,
                min_sources=self.min_sources,
                commitment=lookup,
            )
        except ValueError as exc:  # a license id that is not one
            raise click.BadParameter(str(exc), param_hint="--id/--expect") from None
        report = self.report
        if report.advanced and report.trust_root is not None and report.trusted_after is not None:
            VerifierState(report.trust_root, report.trusted_after.seq).save(self.state_path)

    def finish(self, *, as_json: bool, show_personal: bool) -> None:
        report = self.report
        assert report is not None
        if as_json:
            value = report.to_dict(personal=show_personal)
            value["state"] = str(self.state_path)
            click.echo(json.dumps(value, ensure_ascii=False, indent=2))
        else:
            click.echo(render_online(report, show_personal=show_personal, state_path=self.state_path))
        raise SystemExit(report.exit_code)


def render_online(report: OnlineReport, *, show_personal: bool = False, state_path: Path | None = None) -> str:
    """An online run for a person: sources, trusted checkpoint, notes, then the verdict or the evidence."""
    lines = ["sources:"]
    for s in report.sources:
        if s.get("ok"):
            lines.append(f"  ok    {s['source']}: tree_size {s['tree_size']}, height {s['height']}")
        else:
            lines.append(f"  FAIL  {s['source']}: {s.get('problem')}")
    before, after = report.trusted_before, report.trusted_after
    if report.advanced and after is not None:
        was = "none" if before is None else f"tree_size {before.checkpoint.log_size}"
        saved = f" (saved to {state_path})" if state_path else ""
        lines.append(f"trusted checkpoint advanced: {was} -> tree_size {after.checkpoint.log_size}{saved}")
    elif after is not None:
        lines.append(f"trusted checkpoint: tree_size {after.checkpoint.log_size} (unchanged)")
    lines.extend(f"note: {n}" for n in report.notes)
    if report.bundle_source:
        lines.append(f"bundle from {report.bundle_source}")
    if report.split_view is not None:
        lines.append(f"SPLIT VIEW: {report.split_view['problem']}")
        lines.append("Two checkpoints of this ledger that cannot both be true (evidence, keep it):")
        for cp in report.split_view["checkpoints"]:
            lines.append(f"--- from {cp['source']} (tree_size {cp['tree_size']}, height {cp['height']}):")
            lines.append(cp["note"].rstrip("\n"))
        if report.split_view["consistency_proof"]:
            lines.append("consistency proof given: " + " ".join(report.split_view["consistency_proof"]))
    elif report.verdict is None:
        lines.append(f"UNDECIDED: {report.undecided}")
    else:
        lines.append(render(report.verdict, show_personal=show_personal))
    return "\n".join(lines)


_MARK = {True: "ok  ", False: "FAIL", None: "--  "}


def _when(ms: int | None) -> str:
    if ms is None:
        return "?"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(verdict: Verdict, *, show_personal: bool = False) -> str:
    """The verdict for a person: the result, who issued what to whom, and every step."""
    facts = verdict.facts
    lines = [f"{verdict.result.value}: {_headline(verdict)}"]
    for step in verdict.steps:
        reason = f" [{step.reason}]" if step.reason else ""
        lines.append(f"  {step.number} {_MARK[step.ok]} {step.name:<20} {step.detail}{reason}")
        if step.ok is False and step.evidence:
            for key, value in step.evidence.items():
                lines.append(f"           {key}: {_short(value)}")
    if facts.proven:
        if facts.disclosed:
            holder = facts.holder if show_personal else facts.holder_masked
            note = "" if show_personal else "  (masked; --show-personal to show)"
            lines.append(f"holder: {_holder(holder)}{note}")
        else:
            lines.append("holder: not disclosed (commitment-only bundle)")
        lines.append(
            f"checkpoint: {_when(facts.checkpoint_timestamp_ms)}, anchor log size {facts.checkpoint_log_size}, "
            f"cosigned by {', '.join(facts.cosigners)}"
        )
    return "\n".join(lines)


def _headline(verdict: Verdict) -> str:
    facts = verdict.facts
    if not facts.proven:
        claimed = facts.license_id or "an unreadable bundle"
        return f"{claimed} is not proven by this bundle"
    who = f"{facts.issuer_authority} ({facts.issuer})" if facts.issuer_authority else f"province {facts.issuer}"
    status = {Result.UNDECIDED: f"{facts.status} as of the checkpoint, but that is too old or too new to decide"}.get(
        verdict.result, f"{facts.status} as of {_when(facts.checkpoint_timestamp_ms)}"
    )
    if verdict.result is Result.SUPERSEDED:
        status = f"superseded by the newer version {facts.superseded_by} ({status})"
    return f"{facts.kind or 'license'} {facts.license_id} issued by {who}; {status}"


def _holder(holder: Any) -> str:
    if not isinstance(holder, dict):
        return "?"
    return ", ".join(f"{k} {v}" for k, v in holder.items())


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 400 else text[:400] + "…"


# --- trust roots --------------------------------------------------------------------------------------------------


@verify.group("trust-root")
def trust_root_group() -> None:
    """Produce and inspect trust-root files (the pinned genesis and, later, a verified checkpoint)."""


@trust_root_group.command("export")
@click.argument("source", metavar="GENESIS_OR_NETWORK_JSON")
@click.option("--network-id", metavar="HEX", help="Refuse unless the genesis has this network id (its SM3).")
@click.option("-o", "--output", metavar="FILE", help="Write here instead of standard output.")
def export(source: str, network_id: str | None, output: str | None) -> None:
    """Write a trust-root file from a genesis document, a GetGenesis answer, a network.json or a trust root."""
    try:
        root = load_trust_root(_read(source, "genesis"), network_id=network_id)
    except TrustRootError as exc:
        raise _undecided(f"{source}: {exc}") from None
    data = root.to_json()
    if output:
        tmp = Path(output + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, output)
    else:
        click.echo(data.decode("utf-8"))
    click.echo(f"network id {root.network_id} ({len(root.members)} members, quorum {root.quorum})", err=True)
