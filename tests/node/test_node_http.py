"""End to end over real HTTP: ``licledger node serve`` in its own process (uvicorn), driven with urllib.
Its captured log must show the requests and contain no personal data and no secrets; the public rate limit
answers 429 with Retry-After."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from nodekit import KEK, PROVINCE, init_node, physicians

from core import canonical
from node.api.ratelimit import TokenBucket
from node.cli import cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(
    base: str, method: str, path: str, body: bytes | None = None, token: str | None = None
) -> tuple[int, Any, dict[str, str]]:
    request = urllib.request.Request(base + path, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


@pytest.mark.integration
def test_served_node_end_to_end_with_clean_logs(tmp_path: Path) -> None:
    directory = tmp_path / "node"
    operator = init_node(directory)
    port = _free_port()
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        "LICLEDGER_KEK": KEK,
        "LICLEDGER_PUBLIC_RATE_PER_SECOND": "0.5",
        "LICLEDGER_PUBLIC_RATE_BURST": "3",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from node.cli import main; main()",
                "node",
                "serve",
                "--dir",
                str(directory),
                "--port",
                str(port),
                "--seal-workers",
                "1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        doc = physicians(1, seed=77)[0]
        status, issued, _ = _call(base, "POST", "/v1/licenses", canonical.encode(doc), operator)
        assert status == 201, issued
        holder = issued["holder_token"]
        status, view, headers = _call(base, "GET", f"/v1/licenses/{issued['base_id']}", token=operator)
        assert status == 200 and view["document"] == doc and headers.get("x-request-id")
        status, mine, _ = _call(base, "GET", "/v1/holder/licenses", token=holder)
        assert status == 200 and mine["licenses"][0]["base_id"] == issued["base_id"]
        bad = dict(doc, holder=dict(doc["holder"], citizen_id=doc["holder"]["citizen_id"][:-1] + "0"))
        status, _, _ = _call(base, "POST", "/v1/licenses", canonical.encode(bad), operator)
        assert status in (409, 422)
        batch = physicians(3, seed=78)
        status, done, _ = _call(base, "POST", "/v1/licenses/batch", canonical.encode({"documents": batch}), operator)
        assert status == 201 and [x["license_id"] for x in done["licenses"]] == [d["license_id"] for d in batch]
        wrong = [batch[0], dict(batch[1], version=2)]  # sealed by the --seal-workers pool, named by index
        status, errors, _ = _call(base, "POST", "/v1/licenses/batch", canonical.encode({"documents": wrong}), operator)
        assert status == 422 and any(k.startswith("documents[1].") for k in errors["errors"]), errors
        status, _, _ = _call(base, "GET", "/v1/stats", token=holder)
        assert status == 403
        status, _, _ = _call(base, "GET", "/v1/stats", token=operator[:-2] + "xx")
        assert status == 401
        codes = []
        for _ in range(5):
            status, _, headers = _call(base, "GET", f"/v1/public/licenses/{issued['base_id']}")
            codes.append(status)
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        assert int(headers["retry-after"]) >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    assert '"POST /v1/licenses" 201' in log_text, log_text  # access lines: method, path, status only
    assert not [line for line in log_text.splitlines() if "uvicorn.access" in line and "127.0.0.1" in line]
    assert "429" in log_text
    secrets = [KEK, operator, holder, operator.split("_", 2)[2], holder.split("_", 2)[2]]
    personal = [
        *(d["holder"]["citizen_id"] for d in batch),
        *(d["holder"]["name"] for d in batch),
        doc["holder"]["citizen_id"],
        bad["holder"]["citizen_id"],
        doc["holder"]["name"],
        doc["practice"]["qualification_certificate_no"],
    ]
    for value in secrets + personal:
        assert value not in log_text, "a secret or personal value reached the log"


def test_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.take("a") for _ in range(3)] == [None, None, None]
    assert bucket.take("a") == 1
    assert bucket.take("b") is None  # per client
    now[0] += 0.5
    assert bucket.take("a") is None
    assert bucket.take("a") == 1
    now[0] += 100
    assert [bucket.take("a") for _ in range(4)] == [None, None, None, 1]  # capped at the burst
    assert TokenBucket(0, 0).take("x") is None  # off


def test_token_bucket_forgets_the_least_recent_clients() -> None:
    bucket = TokenBucket(0.001, 1, max_clients=2, clock=lambda: 0.0)
    assert bucket.take("a") is None and bucket.take("a") is not None
    bucket.take("b")
    bucket.take("c")  # evicts a
    assert bucket.take("a") is None


def test_public_routes_are_rate_limited_and_others_are_not(tmp_path: Path) -> None:
    from nodekit import start_node

    n = start_node(tmp_path / "n", public_rate_per_second=0.001, public_rate_burst=2)
    try:
        codes = [n.client.get("/healthz").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = n.client.get("/v1/public/licenses/1.2.156.3005.2.x")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert n.client.get("/v1/stats", headers=n.auth("operator")).status_code == 200
    finally:
        n.client.close()
        n.ctx.close()


def test_init_prints_the_operator_key_once_and_refuses_to_reinitialise(tmp_path: Path) -> None:
    from core.errors import DecryptionError
    from core.keystore import decrypt_private_key

    directory = tmp_path / "n"
    runner = CliRunner()
    env = {"LICLEDGER_KEK": KEK}
    result = runner.invoke(
        cli, ["node", "init", "--dir", str(directory), "--province", PROVINCE, "--development"], env=env
    )
    assert result.exit_code == 0, result.output
    assert sum(line.startswith("llk_") for line in result.stdout.splitlines()) == 1
    assert {
        p.name: oct(p.stat().st_mode & 0o777) for p in directory.iterdir() if p.suffix in (".enc", ".env", ".db")
    } == {"province-key.enc": "0o600", "node-secret.enc": "0o600", "node.env": "0o600", "node.db": "0o600"}
    assert b"PRIVATE" not in (directory / "province-key.enc").read_bytes()
    decrypt_private_key((directory / "province-key.enc").read_bytes(), bytes.fromhex(KEK))
    with pytest.raises(DecryptionError):
        decrypt_private_key((directory / "province-key.enc").read_bytes(), bytes(16))
    again = runner.invoke(
        cli, ["node", "init", "--dir", str(directory), "--province", PROVINCE, "--development"], env=env
    )
    assert again.exit_code != 0 and "already holds a node" in again.output
    # apikey create / list / revoke
    made = runner.invoke(
        cli,
        [
            "node",
            "apikey",
            "create",
            "--dir",
            str(directory),
            "--role",
            "institution",
            "--institution",
            "12440303344752713B",
            "--label",
            "hospital-1",
        ],
        env=env,
    )
    assert made.exit_code == 0, made.output
    key_id = made.stdout.split("API key ")[1].split()[0]
    listing = runner.invoke(cli, ["node", "apikey", "list", "--dir", str(directory)], env=env).stdout
    assert key_id in listing and "llk_" not in listing and "12440303344752713B" in listing
    assert runner.invoke(cli, ["node", "apikey", "revoke", "--dir", str(directory), key_id], env=env).exit_code == 0
    listing = runner.invoke(cli, ["node", "apikey", "list", "--dir", str(directory)], env=env).stdout
    assert next(line for line in listing.splitlines() if line.startswith(key_id)).split()[3] == "revoked"
    wrong = runner.invoke(
        cli,
        [
            "node",
            "apikey",
            "create",
            "--dir",
            str(directory),
            "--role",
            "agency",
            "--institution",
            "12440303344752713B",
        ],
        env=env,
    )
    assert wrong.exit_code != 0


def test_production_init_needs_a_kek_and_an_authority(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["node", "init", "--dir", str(tmp_path / "p"), "--province", PROVINCE])
    assert result.exit_code != 0 and "--authority-uscc" in result.output
    result = runner.invoke(
        cli,
        ["node", "init", "--dir", str(tmp_path / "p"), "--authority-uscc", "11440000421680613Q"],
        env={"LICLEDGER_KEK": ""},
    )
    assert result.exit_code != 0 and "LICLEDGER_KEK" in result.output
    assert not (tmp_path / "p" / "province-key.enc").exists()
    result = runner.invoke(
        cli,
        ["node", "init", "--dir", str(tmp_path / "p"), "--authority-uscc", "11440000421680613Q"],
        env={"LICLEDGER_KEK": KEK},
    )
    assert result.exit_code == 0, result.output
    assert 'LICLEDGER_MODE="production"' in (tmp_path / "p" / "node.env").read_text()
