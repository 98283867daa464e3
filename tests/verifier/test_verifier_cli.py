"""``licledger verify``: exit codes 0 / 1 / 2, the printed steps, JSON output, trust-root export, and the modes that
are not implemented yet saying so. Through click's CliRunner, and once as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from verifykit import scenario

from core.bundle import public_view
from node.cli import cli


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    s = scenario()
    d = tmp_path_factory.mktemp("verify")
    out = {
        "genesis": d / "genesis.json",
        "active": d / "active.json",
        "public": d / "public.json",
        "revoked": d / "revoked.json",
        "suspended": d / "suspended.json",
        "garbage": d / "garbage.json",
        "trust": d / "trust-root.json",
    }
    out["genesis"].write_text(json.dumps(s.world.c.genesis.to_dict(), indent=2))
    out["active"].write_bytes(s.world.bundle(s.active, s.seq).to_json())
    out["public"].write_bytes(public_view(s.world.bundle(s.active, s.seq)).to_json())
    out["revoked"].write_bytes(s.world.bundle(s.revoked, s.seq).to_json())
    out["suspended"].write_bytes(s.world.bundle(s.suspended, s.seq).to_json())
    out["garbage"].write_bytes(b'{"format": "licledger-proof/1"}')
    out["trust"].write_bytes(s.world.trust_root().to_json())
    return out


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, ["verify", *map(str, args)], catch_exceptions=False)


def at() -> str:
    return str(scenario().checkpoint_ms + 60_000)


def test_trust_root_export_writes_a_loadable_trust_root(files: dict[str, Path]) -> None:
    s = scenario()
    exported = files["trust"].with_name("exported.json")
    result = run("trust-root", "export", files["genesis"], "--network-id", s.world.nid, "-o", exported)
    assert result.exit_code == 0, result.output
    assert s.world.nid in result.output
    assert exported.read_bytes() == files["trust"].read_bytes()


def test_trust_root_export_refuses_a_genesis_with_another_network_id(files: dict[str, Path]) -> None:
    result = run("trust-root", "export", files["genesis"], "--network-id", "ab" * 32)
    assert result.exit_code == 2 and "pinned" in result.output


def test_valid_bundle_exits_0_and_prints_every_step_with_the_holder_masked(files: dict[str, Path]) -> None:
    s = scenario()
    result = run(files["active"], "--trust-root", files["genesis"], "--at", at())
    assert result.exit_code == 0, result.output
    assert result.output.startswith("VALID: physician " + str(s.active.license_id))
    for number in range(1, 9):
        assert f"  {number} ok " in result.output
    holder = s.active.license.to_canonical_dict()["holder"]
    assert holder["citizen_id"] not in result.output and "masked" in result.output


def test_show_personal_prints_the_holder(files: dict[str, Path]) -> None:
    s = scenario()
    result = run(files["active"], "--trust-root", files["trust"], "--at", at(), "--show-personal")
    assert result.exit_code == 0 and s.active.license.to_canonical_dict()["holder"]["citizen_id"] in result.output


def test_public_bundle_exits_0_without_a_holder(files: dict[str, Path]) -> None:
    result = run(files["public"], "--trust-root", files["trust"], "--at", at())
    assert result.exit_code == 0 and "not disclosed" in result.output


@pytest.mark.parametrize(("name", "word"), [("revoked", "REVOKED"), ("suspended", "SUSPENDED"), ("garbage", "INVALID")])
def test_revoked_suspended_and_invalid_bundles_exit_1(files: dict[str, Path], name: str, word: str) -> None:
    result = run(files[name], "--trust-root", files["trust"], "--at", at())
    assert result.exit_code == 1 and result.output.startswith(word), result.output


def test_stale_checkpoint_exits_2(files: dict[str, Path]) -> None:
    late = str(scenario().checkpoint_ms + 2 * 86_400_000)
    result = run(files["active"], "--trust-root", files["trust"], "--at", late, "--max-age", "1d")
    assert result.exit_code == 2 and "STALE_CHECKPOINT" in result.output
    assert run(files["active"], "--trust-root", files["trust"], "--at", late, "--max-age", "3d").exit_code == 0
    assert run(files["active"], "--trust-root", files["trust"], "--at", late, "--max-age", "none").exit_code == 0


def test_json_output_is_the_verdict(files: dict[str, Path]) -> None:
    result = run(files["revoked"], "--trust-root", files["trust"], "--at", at(), "--json")
    verdict = json.loads(result.output)
    assert result.exit_code == 1 and verdict["result"] == "REVOKED" and verdict["exit_code"] == 1
    assert [s["number"] for s in verdict["steps"]] == list(range(1, 9))
    assert verdict["steps"][6]["reason"] == "REVOKED"
    assert "*" in verdict["facts"]["holder"]["citizen_id"]  # masked unless --show-personal


def test_expect_another_license_exits_1(files: dict[str, Path]) -> None:
    other = str(scenario().other.license_id)
    result = run(files["active"], "--trust-root", files["trust"], "--at", at(), "--expect", other)
    assert result.exit_code == 1 and "WRONG_LICENSE" in result.output


def test_bundle_from_standard_input(files: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        cli, ["verify", "-", "--trust-root", str(files["trust"]), "--at", at()], input=files["active"].read_bytes()
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--qr", "/nonexistent/voucher.png"], "cannot read QR image"),
        (["--id", "1.2.156.3005.2.X", "--node", "https://node.example"], "not a license identifier"),
    ],
)
def test_unreadable_qr_image_or_bad_license_id_exits_2(files: dict[str, Path], args: list[str], message: str) -> None:
    result = run(*args, "--trust-root", files["trust"])
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["{bundle}"],  # no trust root
        ["{bundle}", "--trust-root", "/nonexistent/trust.json"],
        ["{bundle}", "--trust-root", "{garbage}"],
        ["/nonexistent/bundle.json", "--trust-root", "{trust}"],
    ],
)
def test_no_usable_trust_root_or_bundle_file_exits_2(files: dict[str, Path], args: list[str]) -> None:
    filled = [a.format(bundle=files["active"], garbage=files["garbage"], trust=files["trust"]) for a in args]
    result = CliRunner().invoke(cli, ["verify", *filled], env={"LICLEDGER_TRUST_ROOT": ""})
    assert result.exit_code == 2, result.output


def test_usage_errors_exit_2(files: dict[str, Path]) -> None:
    assert run().exit_code == 2  # nothing to verify
    assert run(files["active"], "--qr", "x.png").exit_code == 2  # two sources
    assert run(files["active"], "--trust-root", files["trust"], "--max-age", "soon").exit_code == 2
    assert run(files["active"], "--trust-root", files["trust"], "--expect", "nonsense").exit_code == 2


def test_real_process_exit_codes(files: dict[str, Path]) -> None:
    env = {**os.environ, "LICLEDGER_TRUST_ROOT": str(files["trust"])}
    code = "from node.cli import main; main()"
    for name, expected in (("active", 0), ("revoked", 1)):
        proc = subprocess.run(
            [sys.executable, "-c", code, "verify", str(files[name]), "--at", at()],
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert proc.returncode == expected, proc.stderr.decode()[-500:]
    proc = subprocess.run(
        [sys.executable, "-c", code, "verify", str(files["active"])],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2  # the scenario's checkpoint is from 2023: not fresh today
