"""``verifier.batch.verify_many``: the verdicts of worker processes are exactly ``verify_bundle``'s, in input order;
a malformed bundle among many is INVALID at step 1 alone; small inputs and ``workers=1`` stay in-process; misuse
raises before any worker starts; a kept pool (a service's) serves call after call. And ``licledger verify A.json
B.json ...``: one line per bundle, the exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from verifykit import scenario

from core.bundle import public_view
from node.cli import cli
from verifier import batch
from verifier.batch import verify_many
from verifier.core import Result, verify_bundle

DAY = 86_400_000


def mixed() -> list[bytes]:
    """VALID (disclosed and public), REVOKED, SUSPENDED, a reinstated VALID, another province's, garbage, a changed
    proof hash (INVALID at step 4), repeated so that every worker gets several chunks."""
    s = scenario()
    w = s.world
    good = [w.bundle(i, s.seq).to_json() for i in (s.active, s.revoked, s.suspended, s.reinstated, s.other)]
    value = json.loads(good[0])
    first = value["leaf"]["inclusion_proof"][0]
    value["leaf"]["inclusion_proof"][0] = ("1" if first[0] == "0" else "0") + first[1:]
    flipped = json.dumps(value, ensure_ascii=False).encode()  # LEAF_NOT_IN_BATCH at step 4
    public = public_view(w.bundle(s.active, s.seq)).to_json()
    one = [*good, public, b'{"format": "licledger-proof/1"}', b"\xff{", flipped]
    return [one[(i * 7) % len(one)] for i in range(90)]


def sequential(bundles: list[bytes], now_ms: int, max_age: int | None = DAY) -> list[object]:
    root = scenario().world.trust_root()
    return [verify_bundle(b, root, now_ms=now_ms, max_checkpoint_age_ms=max_age) for b in bundles]


def test_worker_verdicts_are_verify_bundles_in_order() -> None:
    s = scenario()
    now = s.checkpoint_ms + 60_000
    bundles = mixed()
    got = verify_many(bundles, s.world.trust_root(), now_ms=now, max_checkpoint_age_ms=DAY, workers=2)
    assert got == sequential(bundles, now)
    results = {v.result for v in got}
    assert {Result.VALID, Result.REVOKED, Result.SUSPENDED, Result.INVALID} <= results
    assert {v.failed_step.reason for v in got if v.failed_step is not None} >= {"MALFORMED_BUNDLE", "LEAF_NOT_IN_BATCH"}


def test_a_malformed_bundle_is_invalid_at_step_1_and_the_others_are_unaffected() -> None:
    s = scenario()
    now = s.checkpoint_ms + 60_000
    good = s.world.bundle(s.active, s.seq).to_json()
    bundles = [good] * 20 + [b"not json at all"] + [good] * 20
    got = verify_many(bundles, s.world.trust_root(), now_ms=now, max_checkpoint_age_ms=DAY, workers=2)
    assert [v.result for v in got] == [Result.VALID] * 20 + [Result.INVALID] + [Result.VALID] * 20
    failed = got[20].failed_step
    assert failed is not None and failed.number == 1 and failed.reason == "MALFORMED_BUNDLE"


def test_stale_checkpoint_policy_reaches_the_workers() -> None:
    s = scenario()
    later = s.checkpoint_ms + 3 * DAY
    bundles = mixed()[:40]
    got = verify_many(bundles, s.world.trust_root(), now_ms=later, max_checkpoint_age_ms=DAY, workers=2)
    assert got == sequential(bundles, later)
    assert Result.UNDECIDED in {v.result for v in got}


def test_expected_license_id_reaches_the_workers() -> None:
    s = scenario()
    now = s.checkpoint_ms + 60_000
    bundles = mixed()[:40]
    expected = str(s.active.license_id)
    root = s.world.trust_root()
    got = verify_many(bundles, root, now_ms=now, max_checkpoint_age_ms=DAY, expected_license_id=expected, workers=2)
    want = [
        verify_bundle(b, root, now_ms=now, max_checkpoint_age_ms=DAY, expected_license_id=expected) for b in bundles
    ]
    assert got == want
    assert any(v.failed_step is not None and v.failed_step.reason == "WRONG_LICENSE" for v in got)


def test_workers_1_and_small_inputs_stay_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(batch, "ProcessPoolExecutor", no_pool)
    s = scenario()
    now = s.checkpoint_ms + 60_000
    bundles = mixed()
    assert verify_many(bundles, s.world.trust_root(), now_ms=now, max_checkpoint_age_ms=DAY, workers=1) == sequential(
        bundles, now
    )
    few = bundles[: batch.MIN_PARALLEL * 2 - 1]  # not enough for two workers
    assert verify_many(few, s.world.trust_root(), now_ms=now, max_checkpoint_age_ms=DAY, workers=8) == sequential(
        few, now
    )
    assert verify_many([], s.world.trust_root(), now_ms=now, max_checkpoint_age_ms=DAY) == []


def test_misuse_raises_before_any_worker_starts() -> None:
    s = scenario()
    root, now = s.world.trust_root(), s.checkpoint_ms
    with pytest.raises(ValueError):
        verify_many([b"{}"], root, now_ms=now, max_checkpoint_age_ms=DAY, workers=0)
    with pytest.raises(TypeError):
        verify_many([b"{}"], "root", now_ms=now, max_checkpoint_age_ms=DAY)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        verify_many([b"{}"], root, now_ms=-1, max_checkpoint_age_ms=DAY)
    with pytest.raises(TypeError):
        verify_many([{"format": "x"}], root, now_ms=now, max_checkpoint_age_ms=DAY)  # type: ignore[list-item]
    with pytest.raises(ValueError):
        verify_many([b"{}"], root, now_ms=now, max_checkpoint_age_ms=DAY, expected_license_id="not an id")


def test_a_kept_pool_serves_many_calls_while_the_trust_root_advances() -> None:
    """A service's pool (``VerifierPool``): started once, fresh interpreters, the trust root sent with the chunks;
    each call's verdicts are ``verify_bundle``'s under that call's trust root, in order."""
    s = scenario()
    now = s.checkpoint_ms + 60_000
    bundles = mixed()[:48]
    genesis = s.world.trust_root()
    advanced = genesis.advanced(s.world.note(s.seq), [])
    with batch.VerifierPool(2) as pool:
        for root in (genesis, advanced, genesis):
            got = verify_many(bundles, root, now_ms=now, max_checkpoint_age_ms=DAY, pool=pool)
            assert got == [verify_bundle(b, root, now_ms=now, max_checkpoint_age_ms=DAY) for b in bundles]
        later = s.checkpoint_ms + 3 * DAY
        assert verify_many(bundles, advanced, now_ms=later, max_checkpoint_age_ms=DAY, pool=pool) == sequential(
            bundles, later
        )
        with pytest.raises(ValueError):
            verify_many(bundles, genesis, now_ms=now, max_checkpoint_age_ms=DAY, workers=2, pool=pool)
    with pytest.raises(ValueError):
        batch.VerifierPool(0)


# --- the command line ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    s = scenario()
    d = tmp_path_factory.mktemp("verify-many")
    out = {name: d / f"{name}.json" for name in ("active", "public", "revoked", "garbage", "trust")}
    out["active"].write_bytes(s.world.bundle(s.active, s.seq).to_json())
    out["public"].write_bytes(public_view(s.world.bundle(s.active, s.seq)).to_json())
    out["revoked"].write_bytes(s.world.bundle(s.revoked, s.seq).to_json())
    out["garbage"].write_bytes(b'{"format": "licledger-proof/1"}')
    out["trust"].write_bytes(s.world.trust_root().to_json())
    return out


def run(*args: object) -> tuple[int, str]:
    at = str(scenario().checkpoint_ms + 60_000)
    result = CliRunner().invoke(cli, ["verify", *map(str, args), "--at", at], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_cli_several_bundles_one_line_each_in_order(files: dict[str, Path], workers: str) -> None:
    names = ["active", "revoked", "garbage", "public"] * 5
    code, out = run(*(files[n] for n in names), "--trust-root", files["trust"], "--workers", workers)
    lines = out.splitlines()
    assert len(lines) == len(names), out
    for name, line in zip(names, lines, strict=True):
        assert line.startswith(f"{files[name]}: ")
    assert lines[0].split(": ")[1] == "VALID"
    assert lines[1].split(": ")[1] == "REVOKED"
    assert lines[2].split(": ")[1] == "INVALID" and "[1 MALFORMED_BUNDLE]" in lines[2]
    assert code == 1  # something was rejected


def test_cli_several_bundles_exit_codes(files: dict[str, Path]) -> None:
    assert run(files["active"], files["public"], "--trust-root", files["trust"])[0] == 0
    late = str(scenario().checkpoint_ms + 3 * DAY)
    result = CliRunner().invoke(
        cli, ["verify", str(files["active"]), str(files["public"]), "--trust-root", str(files["trust"]), "--at", late]
    )
    assert result.exit_code == 2, result.output  # undecided, nothing rejected
    missing = files["active"].with_name("missing.json")
    code, out = run(files["active"], missing, "--trust-root", files["trust"])
    assert code == 2 and f"{missing}: UNREADABLE" in out
    assert run(files["active"], missing, files["revoked"], "--trust-root", files["trust"])[0] == 1


def test_cli_several_bundles_json_lines(files: dict[str, Path]) -> None:
    code, out = run(files["active"], files["revoked"], "--trust-root", files["trust"], "--json")
    values = [json.loads(line) for line in out.splitlines()]
    assert [v["file"] for v in values] == [str(files["active"]), str(files["revoked"])]
    assert [v["result"] for v in values] == ["VALID", "REVOKED"]
    assert values[0]["facts"]["holder"] != scenario().active.license.to_canonical_dict()["holder"]  # masked
    assert code == 1


def test_cli_several_bundles_are_offline_only(files: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        cli, ["verify", str(files["active"]), str(files["revoked"]), "--node", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2 and "offline only" in result.output
