"""Synthetic licenses (core.synth) and `licledger gen`: determinism, realism, every document parses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from core import canonical
from core.codes import LicenseId, citizen_id_birth_date, citizen_id_sex
from core.divisions import PROVINCES, XPCC
from core.hashing import sm3
from core.licenses import canonical_bytes, in_province, parse_document
from core.synth import INSTITUTION_POOL, generate
from node.commands.gen import gen

GOLDEN = Path(__file__).parent / "vectors" / "gen"
GOLDEN_RUNS = [
    ("physician", "440000", 7, 25),
    ("nurse", "310000", 7, 25),
    ("institution", "660000", 7, 10),
]
KINDS = ("physician", "nurse", "institution")


def golden_path(kind: str, province: str, seed: int, count: int) -> Path:
    return GOLDEN / f"{kind}-{province}-seed{seed}-count{count}.jsonl"


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **(env_extra or {})}
    code = "import sys; from node.cli import main; sys.argv[0] = 'licledger'; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, env=env, timeout=120)


# --- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_same_arguments_same_documents(kind: str) -> None:
    assert list(generate(kind, 50, "330000", 99)) == list(generate(kind, 50, "330000", 99))


@pytest.mark.parametrize("kind", KINDS)
def test_output_is_prefix_stable_and_seed_dependent(kind: str) -> None:
    long = list(generate(kind, 60, "420000", 1))
    assert list(generate(kind, 10, "420000", 1)) == long[:10]
    assert list(generate(kind, 10, "420000", 2)) != long[:10]


def test_start_numbers_a_disjoint_batch() -> None:
    first = list(generate("nurse", 20, "510000", 3))
    second = list(generate("nurse", 20, "510000", 3, start=20))
    ids = {LicenseId.parse(d["license_id"]).base for d in first + second}
    assert len(ids) == 40


@pytest.mark.parametrize(("kind", "province", "seed", "count"), GOLDEN_RUNS)
def test_cli_output_matches_the_golden_file(tmp_path: Path, kind: str, province: str, seed: int, count: int) -> None:
    golden = golden_path(kind, province, seed, count).read_bytes()
    args = ("gen", "--kind", kind, "--count", str(count), "--province", province, "--seed", str(seed))
    for hash_seed in ("0", "12345"):  # str hashing must not leak into the output
        result = run_cli(*args, env_extra={"PYTHONHASHSEED": hash_seed})
        assert result.returncode == 0, result.stderr
        assert sm3(result.stdout) == sm3(golden)
    out = tmp_path / "out.jsonl"
    assert run_cli(*args, "--out", str(out)).returncode == 0
    assert sm3(out.read_bytes()) == sm3(golden)


@pytest.mark.parametrize(("kind", "province", "seed", "count"), GOLDEN_RUNS)
def test_golden_files_are_canonical_lines_that_parse(kind: str, province: str, seed: int, count: int) -> None:
    lines = golden_path(kind, province, seed, count).read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert len(lines) == count + 1
    for line in lines[:-1]:
        license = parse_document(canonical.decode_canonical(line))
        assert canonical_bytes(license) == line
        assert license.kind == kind and license.issuer.province == province


# --- every document parses, and looks real ------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_generated_document_parses_in_every_province(kind: str) -> None:
    for province in PROVINCES:
        for doc in generate(kind, 25, province, 2024):
            license = parse_document(doc)
            assert license.to_canonical_dict() == doc
            assert license.issuer.province == province


def test_a_larger_run_parses_with_unique_people_and_identifiers() -> None:
    docs = list(generate("physician", 3000, "440000", 8))
    ids, citizens = set(), set()
    local = 0
    categories: Counter[str] = Counter()
    for doc in docs:
        license = parse_document(doc)
        ids.add(str(license.license_id))
        cid = doc["holder"]["citizen_id"]
        citizens.add(cid)
        local += cid.startswith("44")
        categories[doc["practice"]["category"]] += 1
        assert citizen_id_sex(cid) == doc["holder"]["sex"]
        age = int(doc["issued_on"][:4]) - citizen_id_birth_date(cid).year
        assert 22 <= age <= 61
        assert 2 <= len(doc["holder"]["name"]) <= 4
    assert len(ids) == len(citizens) == 3000
    assert 0.75 < local / 3000 < 0.95  # most are born in the province, some elsewhere
    assert categories.most_common(1)[0][0] == "clinical"
    assert set(categories) == {"clinical", "tcm", "dental", "public_health"}


@pytest.mark.parametrize("province", ["110000", XPCC])
def test_institutions_referenced_by_practitioners_are_generated_institutions(province: str) -> None:
    institutions = {
        (d["holder"]["name"], d["holder"]["uscc"]) for d in generate("institution", INSTITUTION_POOL, province, 5)
    }
    assert len({uscc for _, uscc in institutions}) == len(institutions)
    assert len({name for name, _ in institutions}) == len(institutions)
    for doc in generate("physician", 200, province, 5):
        primary = doc["practice"]["primary_institution"]
        assert (primary["name"], primary["uscc"]) in institutions
        for filed in doc["practice"]["filed_institutions"]:
            assert (filed["name"], filed["uscc"]) in institutions
    for doc in generate("nurse", 100, province, 5):
        practice = doc["practice"]["institution"]
        assert (practice["name"], practice["uscc"]) in institutions


def test_institutions_are_in_their_province_and_dental_physicians_practise_dentistry() -> None:
    for doc in generate("institution", 200, "320000", 6):
        assert in_province(doc["holder"]["division"], "320000")
        assert doc["holder"]["address"].startswith("江苏省")
        assert doc["holder"]["uscc"][2:8] == doc["holder"]["division"]
    dental = [d for d in generate("physician", 500, "320000", 6) if d["practice"]["category"] == "dental"]
    assert dental
    assert all(d["practice"]["scope"] == ["口腔专业"] for d in dental)


# --- arguments and CLI errors -------------------------------------------------------------------


def test_generate_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown license kind"):
        list(generate("pharmacist", 1, "440000", 1))
    with pytest.raises(ValueError, match="unknown province"):
        list(generate("nurse", 1, "440100", 1))
    with pytest.raises(ValueError):
        list(generate("nurse", -1, "440000", 1))
    with pytest.raises(TypeError):
        list(generate("nurse", 1, "440000", "1"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "nurse", "--count", "1", "--province", "999999", "--seed", "1"], "unknown province code"),
        (
            ["--kind", "doctor", "--count", "1", "--province", "440000", "--seed", "1"],
            "'doctor' is not one of",
        ),
        (["--kind", "nurse", "--count", "-1", "--province", "440000", "--seed", "1"], "--count"),
        (["--kind", "nurse", "--count", "1", "--province", "440000"], "--seed"),
    ],
)
def test_cli_errors_are_clear(args: list[str], message: str) -> None:
    result = CliRunner().invoke(gen, args)
    assert result.exit_code == 2
    assert message in result.output


def test_cli_in_process_writes_canonical_lines() -> None:
    result = CliRunner().invoke(gen, ["--kind", "nurse", "--count", "3", "--province", "530000", "--seed", "4"])
    assert result.exit_code == 0
    lines = result.stdout_bytes.splitlines()
    assert [canonical.decode_canonical(line) for line in lines] == list(generate("nurse", 3, "530000", 4))


def test_cli_unknown_province_exit_status() -> None:
    result = run_cli("gen", "--kind", "nurse", "--count", "1", "--province", "000000", "--seed", "1")
    assert result.returncode == 2
    assert b"unknown province code '000000'" in result.stderr
