"""``licledger keys``: generate / show / public, through click's CliRunner and once as a real process."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from core.errors import DecryptionError
from core.keystore import decrypt_private_key, is_encrypted_key
from core.sm2 import PrivateKey, PublicKey
from node.cli import cli

KEK_HEX = "00112233445566778899aabbccddeeff"
PASSPHRASE = "电子证照 passphrase ✓"


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["keys", *map(str, args)], env=env, catch_exceptions=True)


def key_id_line(output: str) -> str:
    return next(line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("key_id: "))


def test_generate_plain_key_is_0600_and_openssl_compatible_pem(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    result = run("generate", "--out", path)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = PrivateKey.from_pem(path.read_bytes())
    assert key_id_line(result.stdout) == key.key_id
    assert "unencrypted private key" in result.stderr


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(b"precious")
    result = run("generate", "--out", path)
    assert result.exit_code != 0 and "refusing to overwrite" in result.output
    assert path.read_bytes() == b"precious"


def test_generate_with_kek_then_show_and_public(tmp_path: Path) -> None:
    path, env = tmp_path / "k.json", {"NODE_KEK": KEK_HEX}
    result = run("generate", "--out", path, "--kek-env", "NODE_KEK", env=env)
    assert result.exit_code == 0, result.output
    blob = path.read_bytes()
    assert is_encrypted_key(blob) and stat.S_IMODE(path.stat().st_mode) == 0o600
    key = decrypt_private_key(blob, bytes.fromhex(KEK_HEX))

    shown = run("show", path, "--kek-env", "NODE_KEK", env=env)
    assert shown.exit_code == 0, shown.output
    assert key_id_line(shown.output) == key.key_id
    assert "SM4-GCM, key-encryption key" in shown.output
    assert PublicKey.from_pem(shown.output) == key.public_key
    assert key.to_bytes().hex() not in shown.output and "PRIVATE" not in shown.output

    exported = run("public", path, "--kek-env", "NODE_KEK", env=env)
    assert exported.exit_code == 0 and exported.output.encode() == key.public_key.to_pem()


def test_generate_with_passphrase_then_show(tmp_path: Path) -> None:
    path, env = tmp_path / "k.json", {"PW": PASSPHRASE}
    assert run("generate", "--out", path, "--passphrase-env", "PW", env=env).exit_code == 0
    shown = run("show", path, "--passphrase-env", "PW", env=env)
    assert shown.exit_code == 0, shown.output
    assert "PBKDF2-HMAC-SM3, 200000 iterations" in shown.output
    assert key_id_line(shown.output) == decrypt_private_key(path.read_bytes(), passphrase=PASSPHRASE).key_id


def test_wrong_or_missing_secrets(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    assert run("generate", "--out", path, "--passphrase-env", "PW", env={"PW": PASSPHRASE}).exit_code == 0
    wrong = run("show", path, "--passphrase-env", "PW", env={"PW": "wrong"})
    assert isinstance(wrong.exception, DecryptionError)
    missing = run("show", path)
    assert missing.exit_code == 2 and "--passphrase-env" in missing.output
    unset = run("show", path, "--passphrase-env", "NOT_SET_ANYWHERE", env={"NOT_SET_ANYWHERE": ""})
    assert unset.exit_code == 2 and "NOT_SET_ANYWHERE is not set" in unset.output
    both = run("generate", "--out", tmp_path / "x", "--passphrase-env", "A", "--kek-env", "B")
    assert both.exit_code == 2 and "at most one" in both.output
    assert not (tmp_path / "x").exists()


def test_malformed_kek_is_not_echoed(tmp_path: Path) -> None:
    secret = "deadbeef" * 3
    result = run("generate", "--out", tmp_path / "k", "--kek-env", "KEK", env={"KEK": secret})
    assert result.exit_code != 0 and secret not in result.output and secret not in str(result.exception)
    assert "32 hexadecimal digits" in str(result.exception)
    assert not (tmp_path / "k").exists()


def test_public_writes_file_and_reads_public_and_openssl_keys(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    (tmp_path / "k.pem").write_bytes(key.to_pem())
    out = tmp_path / "pub.pem"
    assert run("public", tmp_path / "k.pem", "--out", out).exit_code == 0
    assert out.read_bytes() == key.public_key.to_pem()
    shown = run("show", out)
    assert shown.exit_code == 0 and key_id_line(shown.output) == key.key_id and "public key" in shown.output
    again = run("public", tmp_path / "k.pem", "--out", out)
    assert again.exit_code != 0 and "refusing to overwrite" in again.output


def test_show_rejects_garbage(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"not a key")
    result = run("show", tmp_path / "bad")
    assert result.exit_code != 0 and "no PRIVATE KEY block" in str(result.exception)


@pytest.mark.integration
def test_real_process_generate_show_public(tmp_path: Path) -> None:
    exe = shutil.which("licledger")
    command = [exe] if exe else [sys.executable, "-c", "from node.cli import main; main()"]
    env = {**os.environ, "LICLEDGER_TEST_KEK": KEK_HEX}
    key_path = tmp_path / "node.key"

    def licledger(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "keys", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    generated = licledger("generate", "--out", key_path, "--kek-env", "LICLEDGER_TEST_KEK")
    assert generated.returncode == 0, generated.stderr
    shown = licledger("show", key_path, "--kek-env", "LICLEDGER_TEST_KEK")
    assert shown.returncode == 0, shown.stderr
    exported = licledger("public", key_path, "--kek-env", "LICLEDGER_TEST_KEK")
    key = decrypt_private_key(key_path.read_bytes(), bytes.fromhex(KEK_HEX))
    assert PublicKey.from_pem(exported.stdout) == key.public_key
    assert key_id_line(shown.stdout) == key_id_line(generated.stdout) == key.key_id

    env["LICLEDGER_TEST_KEK"] = "ff" * 16
    wrong = licledger("show", key_path, "--kek-env", "LICLEDGER_TEST_KEK")
    assert wrong.returncode == 1
    assert "licledger: DecryptionError" in wrong.stderr and "Traceback" not in wrong.stderr
