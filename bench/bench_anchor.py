"""Benchmark a provincial node end to end: licenses issued *and anchored* per second, against the raw SM2 signing
rate of the same run, on SQLite and PostgreSQL; and proof bundles (size, generation rate).

Usage: ``python3 bench/bench_anchor.py [--count N] [--proofs N] [--no-postgres] [--workers N]``. It starts a real
3-province network on loopback (`licledger network` code, one process per member), joins a node to a province
member per database (`node init --network-dir`), and measures, all in this run:

* ``raw SM2 sign/s``: ``PrivateKey.sign`` over a seal-sized payload (GB/T 32918.2), the bound every issued license
  pays once, on one core. The machine is shared: it is measured right before and right after each end-to-end
  run, each time once the ledger's peers are quiet (the last run's blocks and checkpoints done), and the ratio
  uses their mean;
* ``end to end``: N licenses from a JSON-lines file to anchored, by ``licledger node import``'s code
  (``node.importer.run_import``: the file's SM3 digest, chunks of ``DEFAULT_CHUNK_LINES`` lines, each parsed and
  validated, sealed, committed and stored with its outbox entries, its import progress and its audit entry in one
  transaction; the file is written before the clock starts),
  while the anchoring worker runs passes concurrently as ``node serve`` does, one every ``anchor_interval_ms``
  (batches of ``anchor_batch_size``, 4,096; RFC 9162 root, ``AnchorBatch`` signed and committed by the ledger,
  receipts written); the clock stops when the last receipt is written. The node's settings are its defaults except
  the pass interval (100 ms, default 1 s); once the last chunk is
  stored, the passes are forced (as ``licledger node anchor --once --force`` after an import), so the last, partial
  batch does not wait for the age threshold. The network's settings are its defaults (a checkpoint every 20 blocks).
  Twice: with everything in **1 process**, and with **N sealing workers** (``node.sealing.SealingPool``, default:
  the number of CPUs, started before the clock) sealing the next chunks while this process stores; the second ratio
  is against one core's SM2 rate, so it can exceed 1.0. The modes alternate ``--repeat`` times (default 2) and each
  ratio is reported per run and as min/max. The number of cores is printed;
* ``raw SM2 sign/s on all N cores``: one signing process per CPU, all at once (measured before and after each
  run, as the single-core rate). With sealing workers the node uses every core, so its rate is also given
  against this one (``end to end vs SM2 on all N cores``): the single-core ratio says how close the node comes to
  one core signing flat out, this one how much of the machine's whole signing capacity is left once storing,
  anchoring, the ledger's peers and the database share the same cores;
* the CPU time per license of this process and of the workers, of the ledger's four peers (which share the machine's
  cores here; they run on other machines in production) and of the PostgreSQL server's processes, against the CPU
  time of one raw signature: on a shared machine the wall-clock ratio depends on what else runs, the CPU ratio much
  less;
* the same steps measured alone over the same documents (validation, seal, store, anchoring), to show where the
  time goes;
* proof bundles: bytes (public view and full disclosure) and bundles/s (``ProofService.bundle``, ledger queries over
  HTTP with the node's caches; and ``GET /v1/licenses/{id}/proof`` from a real ``licledger node serve`` process
  over loopback HTTP, public and full (audited: one committed audit entry per request) views, 1 and 4 clients
  with kept-alive connections).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psycopg
from click.testing import CliRunner

from core import canonical, synth
from core.codes import LicenseId
from core.licenses import parse_document
from core.seal import seal_document, signed_payload
from core.sm2 import PrivateKey
from network.localnet import free_loopback_ports, init_network
from network.procs import down, up
from node import queries
from node.cli import cli
from node.context import NodeContext, open_node
from node.importer import DEFAULT_CHUNK_LINES, run_import
from node.proofs import ProofService
from node.sealing import SealingPool, default_workers
from node.settings import load_settings
from sync.anchor import AnchorWorker

KEK = "00112233445566778899aabbccddeeff"
MEMBER = "440000"
MEMBERS = {"sqlite": "440000", "postgres": "310000"}
CHUNK = DEFAULT_CHUNK_LINES  # the import path's transactions
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _sign_rate(count: int) -> float:
    return _sign(count)[0]


def _signing() -> tuple[PrivateKey, bytes]:
    """A fresh key and a seal-sized payload (a physician document under a seal), what the raw rates sign."""
    doc = parse_document(next(synth.generate("physician", 1, MEMBER, 1)))
    return PrivateKey.generate(), signed_payload(doc.to_canonical_dict(), {"pad": "x" * 200})


def _sign(count: int) -> tuple[float, float]:
    """Raw SM2 signatures per second (wall clock) and CPU microseconds per signature (this thread's CPU time:
    what a signature costs, whatever else the shared machine runs)."""
    key, payload = _signing()
    start, cpu = time.perf_counter(), time.thread_time()
    for _ in range(count):
        key.sign(payload)
    return count / (time.perf_counter() - start), (time.thread_time() - cpu) / count * 1e6


def _sign_until(start_at: float, count: int) -> tuple[int, float, float]:
    """In a process of the all-cores pool: wait for the common start, sign ``count`` times; returns the process id
    and the start and end instants (``time.time``, the clock all processes share)."""
    key, payload = _signing()
    while (now := time.time()) < start_at:
        time.sleep(min(0.01, start_at - now))
    begun = time.time()
    for _ in range(count):
        key.sign(payload)
    return os.getpid(), begun, time.time()


def _sign_all_cores(cores: ProcessPoolExecutor, processes: int, count: int) -> float:
    """Raw SM2 signatures per second with ``processes`` processes signing at once (``count`` each), from the first
    start to the last end: the machine's whole signing capacity, which the single-core rate leaves out.

    The executor starts its processes on demand, and a process that is up early can take a second job while
    another is still starting, which would measure one core twice in a row: a measurement whose jobs did not run
    in as many different processes is taken again (the processes are all up by then)."""
    for _ in range(5):
        start_at = time.time() + 0.5
        spans = list(cores.map(_sign_until, [start_at] * processes, [count] * processes))
        if len({pid for pid, _, _ in spans}) == processes:
            return processes * count / (max(end for _, _, end in spans) - min(begun for _, begun, _ in spans))
    raise RuntimeError(f"the all-cores SM2 measurement did not run in {processes} processes at once")


PASS_INTERVAL_MS = 100
CORES = os.cpu_count() or 1


def _stat(pid: int | str) -> tuple[str, float] | None:
    """Command name and user + system CPU seconds so far of process ``pid`` (Linux ``/proc``; ``None`` when
    there is no such process or no ``/proc``)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, rest = raw.split(" (", 1)[1].rsplit(") ", 1)
    fields = rest.split()
    return name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 where ``/proc`` does not tell)."""
    found = _stat(pid)
    return 0.0 if found is None else found[1]


def _server_cpu_s(name: str = "postgres") -> dict[int, float]:
    """CPU seconds so far of every process whose command is ``name`` (the PostgreSQL server's processes: the
    postmaster, its background workers and one backend per connection; Linux ``/proc``)."""
    found: dict[int, float] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _stat(entry.name)
        if stat is not None and stat[0] == name:
            found[int(entry.name)] = stat[1]
    return found


def _documents(member: str, count: int, uscc: str, start: int) -> list[bytes]:
    out = []
    for doc in synth.generate("physician", count, member, 7, start=start):
        old = LicenseId.parse(doc["license_id"])
        doc["issuer"]["authority_uscc"] = uscc
        doc["license_id"] = str(LicenseId.build(old.type_code, uscc, old.serial, old.version))
        out.append(canonical.encode(doc))
    return out


def _join(directory: Path, network_dir: Path, member: str, url: str | None) -> str:
    args = ["node", "init", "--dir", str(directory), "--network-dir", str(network_dir), "--member", member]
    args += ["--development", *(["--database-url", url] if url else [])]
    result = CliRunner().invoke(cli, args, env={"LICLEDGER_KEK": KEK})
    assert result.exit_code == 0, result.output
    return next(line for line in result.stdout.splitlines() if line.startswith("llk_"))


def _write(directory: Path, lines: list[bytes]) -> Path:
    """``lines`` as a JSON-lines file to import (a new name each time: the importer resumes a file it knows)."""
    path = directory / f"stock-{secrets.token_hex(4)}.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _store(ctx: NodeContext, path: Path, count: int, pool: SealingPool | None = None) -> None:
    """Import ``path`` (``count`` licenses) as ``licledger node import`` does: chunks parsed, validated and sealed,
    each committed with its outbox entries in one transaction; with a pool of worker processes the next chunks are
    sealed while this process stores the current one."""
    result = run_import(ctx, path, chunk_lines=CHUNK, pool=pool)
    assert (result.imported, result.present, result.rejected) == (count, 0, 0), result


def _settle(peers: list[int], timeout: float = 20.0) -> None:
    """Wait until the ledger's peers are quiet (together under 10 % of a core over half a second), so that the
    raw SM2 rate is not measured while they finish the last run's blocks and checkpoints."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(_cpu_s(p) for p in peers)
        time.sleep(0.5)
        if sum(_cpu_s(p) for p in peers) - before < 0.05:
            return


def _pending(ctx: NodeContext) -> int:
    from node import outbox

    with ctx.sessions() as session:
        counts = outbox.pending_counts(session)
    return counts.get("leaf:pending", 0) + counts.get("leaf:batched", 0)


def _end_to_end(
    ctx: NodeContext, lines: list[bytes], peers: list[int], pool: SealingPool | None = None
) -> tuple[float, float, float, float, float, float]:
    """Licenses per second from the first line to the last receipt, the share of that time spent until the
    last chunk was stored (the rest is the anchoring worker catching up), and the CPU microseconds per license
    of this process (all its threads) and the sealing workers (not the ledger's peers nor PostgreSQL's server),
    of this process alone, of the ledger's peers (processes ``peers``) and of the PostgreSQL server's processes
    (0 on SQLite; a backend that exited during the run is missed)."""
    path = _write(ctx.settings.dir, lines)
    pids = pool.worker_pids() if pool is not None else []  # all started (``warm_up``); checked again at the end
    server_before = _server_cpu_s() if ctx.engine.dialect.name == "postgresql" else {}
    own_before = time.process_time()
    cpu_before = own_before + sum(_cpu_s(p) for p in pids)
    peers_before = sum(_cpu_s(p) for p in peers)
    interval = ctx.settings.anchor_interval_ms / 1000
    worker = AnchorWorker(ctx)
    stop = threading.Event()
    errors: list[str] = []

    def anchoring() -> None:  # as node serve's scheduler: a pass every interval, a long pass delays the next
        while not stop.is_set():
            started = time.monotonic()
            # once the input has ended, the last partial batch goes out at once (``node anchor --once --force``
            # after an import) instead of waiting for the age threshold
            report = worker.run_once(force=stored_all.is_set())
            if report.error:
                errors.append(report.error)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    thread = threading.Thread(target=anchoring, daemon=True)
    stored_all = threading.Event()
    start = time.perf_counter()
    thread.start()
    _store(ctx, path, len(lines), pool)
    stored_all.set()
    stored = time.perf_counter() - start
    while _pending(ctx):
        assert not errors, errors
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    assert not errors, errors
    own = time.process_time() - own_before
    if pool is not None and sorted(pool.worker_pids()) != sorted(pids):
        raise AssertionError(f"sealing workers changed during the run: {pids} -> {pool.worker_pids()}")
    cpu = own_before + own + sum(_cpu_s(p) for p in pids) - cpu_before
    ledger = sum(_cpu_s(p) for p in peers) - peers_before
    server_after = _server_cpu_s() if server_before else {}
    server = sum(v - server_before.get(pid, 0.0) for pid, v in server_after.items())
    n = len(lines)
    return n / elapsed, stored / elapsed, cpu / n * 1e6, own / n * 1e6, ledger / n * 1e6, server / n * 1e6


def measured_run(
    ctx: NodeContext,
    lines: list[bytes],
    ledger_pids: list[int],
    pool: SealingPool | None,
    out: dict[str, float],
    tag: str,
    ledger_label: str,
    cores: ProcessPoolExecutor | None = None,
) -> tuple[float, float | None]:
    """One end-to-end run between two raw SM2 measurements, each taken once the ledger's processes are quiet;
    its figures go to ``out`` under ``tag``; returns the ratio to the mean SM2 rate and, with ``cores`` (a pool
    of one process per CPU), the ratio to the machine's all-cores SM2 rate, measured before and after too."""
    processes = CORES
    _settle(ledger_pids)
    before, sign_cpu = _sign(2000)
    before_all = _sign_all_cores(cores, processes, 1000) if cores is not None else 0.0
    rate, stored, cpu, own, ledger, server = _end_to_end(ctx, lines, ledger_pids, pool)
    _settle(ledger_pids)
    after, sign_cpu_after = _sign(2000)
    after_all = _sign_all_cores(cores, processes, 1000) if cores is not None else 0.0
    sign = (before + after) / 2
    out[f"{tag}: raw SM2 sign/s (mean of before and after)"] = sign
    out[f"{tag}: end to end, licenses/s ({len(lines):,} validated, sealed, stored, anchored)"] = rate
    out[f"{tag}: share of the time until the last chunk was stored"] = stored
    out[f"{tag}: CPU us per license (this process + sealing workers)"] = cpu
    out[f"{tag}: CPU us per license, of which this process (storing, anchoring)"] = own
    out[f"{tag}: CPU us per license of {ledger_label} (same cores)"] = ledger
    if ctx.engine.dialect.name == "postgresql":
        out[f"{tag}: CPU us per license of the PostgreSQL server (same cores)"] = server
    out[f"{tag}: CPU us per raw SM2 signature"] = (sign_cpu + sign_cpu_after) / 2
    out[f"{tag}: CPU per SM2 signature / CPU per license (the ratio on 1 dedicated core)"] = (
        (sign_cpu + sign_cpu_after) / 2 / cpu
    )
    # every process of the run (the ledger's peers and the database server too) against one signature: what the
    # ratio would be on cores that did nothing else
    out[f"{tag}: CPU per SM2 signature / CPU per license of all processes (node, workers, peers, server)"] = (
        (sign_cpu + sign_cpu_after) / 2 / (cpu + ledger + server)
    )
    out[f"{tag}: end_to_end_vs_sm2_sign"] = rate / sign
    if cores is None:
        return rate / sign, None
    sign_all = (before_all + after_all) / 2
    out[f"{tag}: raw SM2 sign/s on all {processes} cores ({processes} processes; mean of before and after)"] = sign_all
    out[f"{tag}: end to end vs SM2 on all {processes} cores"] = rate / sign_all
    return rate / sign, rate / sign_all


def _phases(ctx: NodeContext, lines: list[bytes], results: dict[str, float], name: str) -> None:
    """Each step alone, per license, over the same kind of documents."""
    n = len(lines)
    start = time.perf_counter()
    docs = [parse_document(line) for line in lines]
    t_parse = time.perf_counter() - start
    start = time.perf_counter()
    for doc in docs:
        seal_document(doc, ctx.signing_key, ctx.clock())
    t_seal = time.perf_counter() - start
    postgres = ctx.engine.dialect.name == "postgresql"

    def server() -> float:
        return sum(_server_cpu_s().values()) if postgres else 0.0

    path = _write(ctx.settings.dir, lines)
    start, cpu, db = time.perf_counter(), time.process_time(), server()
    _store(ctx, path, n)
    t_store_all = time.perf_counter() - start
    cpu_store, db_store = time.process_time() - cpu, server() - db
    start, cpu, db = time.perf_counter(), time.process_time(), server()
    report = AnchorWorker(ctx).run_once(force=True)
    t_anchor = time.perf_counter() - start
    cpu_anchor, db_anchor = time.process_time() - cpu, server() - db
    assert report.error is None and report.leaves == n, report
    for step, own, database in (("validate+seal+commit+store", cpu_store, db_store), ("anchor", cpu_anchor, db_anchor)):
        results[f"{name}: step alone, {step}, CPU us/license of this process"] = own / n * 1e6
        if postgres:
            results[f"{name}: step alone, {step}, CPU us/license of the PostgreSQL server"] = database / n * 1e6
    total = t_store_all + t_anchor
    results[f"{name}: step alone, parse+validate, us/license"] = t_parse / n * 1e6
    results[f"{name}: step alone, seal (SM2 sign), us/license"] = t_seal / n * 1e6
    results[f"{name}: step alone, validate+seal+commit+store, us/license"] = t_store_all / n * 1e6
    results[f"{name}: step alone, anchor (batches of {ctx.settings.anchor_batch_size}), us/license"] = (
        t_anchor / n * 1e6
    )
    results[f"{name}: sequential issue then anchor, licenses/s"] = n / total
    results[f"{name}: share of time in the SM2 seal, %"] = 100 * t_seal / total


def _proofs(ctx: NodeContext, directory: Path, operator: str, count: int, results: dict[str, float], name: str) -> None:
    service = ProofService(ctx)
    with ctx.sessions() as session:
        from node.db.models import License as Row

        bases = list(session.scalars(Row.__table__.select().with_only_columns(Row.base_id).limit(count)))
    deadline = time.monotonic() + 60
    while True:  # wait until a final checkpoint covers the last batch
        cp = service.latest_checkpoint()
        ledger = ctx.ledger
        assert ledger is not None
        info = ledger.query("GetLedgerInfo")
        if cp is not None and int(cp["fields"]["log_size"]) >= int(info["log"]["size"]):
            break
        assert time.monotonic() < deadline, "no final checkpoint over the anchored batches"
        time.sleep(0.5)
    sizes: dict[bool, list[int]] = {True: [], False: []}
    for disclose in (False, True):
        with ctx.sessions() as session:
            loaded = [queries.load(session, queries.LicenseRef(b, None)) for b in bases]
            service.bundle(session, loaded[0], disclose=disclose)  # warm the caches of the shared parts
            start = time.perf_counter()
            for item in loaded:
                sizes[disclose].append(len(service.bundle(session, item, disclose=disclose).to_json()))
            rate = len(loaded) / (time.perf_counter() - start)
        label = "full" if disclose else "public"
        results[f"{name}: proof bundle ({label}), bytes (median)"] = statistics.median(sizes[disclose])
        results[f"{name}: proof bundle ({label}), bundles/s (service)"] = rate
    with _served(directory) as url:
        headers = {"Authorization": f"Bearer {operator}"}
        for label, view, clients in (
            ("public", "public", 1),
            ("full, audited", "full", 1),
            ("public", "public", 4),
            ("full, audited", "full", 4),
        ):
            rate = _route_rate(url, bases, view, headers, clients)
            results[f"{name}: GET /v1/licenses/{{id}}/proof ({label}), bundles/s over HTTP, {clients} client(s)"] = rate


@contextlib.contextmanager
def _served(directory: Path) -> Iterator[str]:
    """``licledger node serve`` for the node in ``directory`` (uvicorn, its own process, its anchoring pass and
    caches); yields its URL once ``/healthz`` answers."""
    [port] = free_loopback_ports(1)
    env = {**os.environ, "LICLEDGER_KEK": KEK, "LICLEDGER_PORT": str(port), "LICLEDGER_PUBLIC_RATE_PER_SECOND": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from node.cli import main; main()", "node", "serve", "--dir", str(directory)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "node serve exited"
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "node serve did not answer within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _route_rate(url: str, bases: list[str], view: str, headers: dict[str, str], clients: int) -> float:
    """Bundles per second from ``GET /v1/licenses/{id}/proof?view=...``: ``clients`` threads, each with its own
    kept-alive connection, asking for every license in ``bases`` once (split between them), after one warm-up
    request each."""
    parts = [bases[i::clients] for i in range(clients)]

    def fetch(part: list[str]) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            for base in part:
                answer = client.get(f"/v1/licenses/{base}/proof", params={"view": view})
                assert answer.status_code == 200, answer.text

    fetch(bases[:clients])  # warm the node's caches of the shared parts
    threads = [threading.Thread(target=fetch, args=(part,)) for part in parts]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(bases) / (time.perf_counter() - start)


def _bench(
    name: str,
    network_dir: Path,
    url: str | None,
    count: int,
    proofs: int,
    workers: int,
    repeat: int,
    peers: list[int],
    out: dict[str, float],
    cores: ProcessPoolExecutor | None = None,
) -> None:
    member = MEMBERS[name]  # one node per province member: two nodes of one member would fight over batch_seq
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "node"
        operator = _join(directory, network_dir, member, url)
        ctx = open_node(load_settings(directory, anchor_interval_ms=PASS_INTERVAL_MS))
        try:
            uscc = ctx.settings.authority_uscc
            with SealingPool(ctx, workers) as pool:
                # start every worker before the clock (the executor spawns them on demand: a worker started during
                # a timed run would charge its start to that run and be missed by the CPU count)
                pool.warm_up()
                pool.map(_documents(member, workers, uscc, 2 * count), ctx.clock())
                modes: list[tuple[str, SealingPool | None]] = [
                    ("1 process", None),
                    (f"{workers} sealing workers + this process", pool),
                ]
                ratios: dict[str, list[float]] = {label: [] for label, _ in modes}
                all_cores: list[float] = []
                for r in range(repeat):  # the modes alternate, so both see the same moods of the shared machine
                    for m, (label, with_pool) in enumerate(modes):
                        # the SM2 rate is measured right before and after each run, the ratio uses their mean
                        lines = _documents(member, count, uscc, (3 + 2 * r + m) * count)
                        tag = f"{name}: run {r + 1}, {label}"
                        ratio, ratio_all = measured_run(
                            ctx, lines, peers, with_pool, out, tag, "the ledger's 4 peers", cores
                        )
                        ratios[label].append(ratio)
                        if with_pool is not None and ratio_all is not None:
                            all_cores.append(ratio_all)
                for label, with_pool in modes:
                    note = "" if with_pool is None else " (vs one core's SM2 rate: can exceed 1.0)"
                    values = sorted(ratios[label])
                    out[f"{name}: end_to_end_vs_sm2_sign, {label}{note}, min"] = values[0]
                    out[f"{name}: end_to_end_vs_sm2_sign, {label}{note}, max"] = values[-1]
                if all_cores:
                    label = f"{workers} sealing workers + this process vs SM2 on all {CORES} cores"
                    out[f"{name}: {label}, min"] = min(all_cores)
                    out[f"{name}: {label}, max"] = max(all_cores)
            _phases(ctx, _documents(member, count, uscc, count), out, name)
            if proofs > 0:
                _proofs(ctx, directory, operator, proofs, out, name)
        finally:
            ctx.close()


def run(
    count: int = 10_000, proofs: int = 500, postgres: bool = True, workers: int | None = None, repeat: int = 2
) -> dict[str, float]:
    os.environ["LICLEDGER_KEK"] = KEK
    results: dict[str, float] = {"CPU cores (os.cpu_count; shared with other work)": float(CORES)}
    workers = workers if workers is not None else default_workers()
    with tempfile.TemporaryDirectory() as tmp:
        config = init_network(Path(tmp) / "net", ["110000", "310000", MEMBER], seed="bench-anchor")
        statuses = up(config)
        assert all(s.healthy for s in statuses), statuses
        peers = [s.pid for s in statuses if s.pid is not None]
        # one process per CPU for the machine's all-cores SM2 rate, started (and its processes warmed) up front
        cores = ProcessPoolExecutor(CORES, mp_context=multiprocessing.get_context("spawn"))
        try:
            results["raw SM2 sign/s (at the start)"] = _sign_rate(2000)
            results[f"raw SM2 sign/s on all {CORES} cores (at the start)"] = _sign_all_cores(cores, CORES, 1000)
            _bench("sqlite", config.directory, None, count, proofs, workers, repeat, peers, results, cores)
            if postgres:
                db = f"licledger_bench_{secrets.token_hex(4)}"
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{db}"')
                try:
                    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
                    _bench("postgres", config.directory, url, count, proofs, workers, repeat, peers, results, cores)
                finally:
                    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            results["raw SM2 sign/s (again, after)"] = _sign_rate(2000)
        finally:
            cores.shutdown()
            down(config)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--proofs", type=int, default=500)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workers", type=int, default=None, help="sealing worker processes (default: CPUs)")
    parser.add_argument("--repeat", type=int, default=2, help="end-to-end runs per mode, alternating (default 2)")
    args = parser.parse_args()
    results: dict[str, Any] = run(args.count, args.proofs, not args.no_postgres, args.workers, args.repeat)
    for name, value in results.items():
        print(f"{name:100} {value:12,.2f}")


if __name__ == "__main__":
    main()
