"""``licledger keys``: generate, inspect and export SM2 keys (GB/T 32918), encrypted at rest by core.keystore.

Secrets never come from the command line (where ``ps`` and shell history would show them): a passphrase or
a key-encryption key is named by the environment variable that holds it. No command prints a private key.
Errors licledger raises on purpose (a wrong passphrase, a malformed file) reach the one catch point in
``node.cli.main``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from core.keystore import (
    decrypt_private_key,
    encrypt_private_key,
    is_encrypted_key,
    kek_from_env,
    read_envelope,
)
from core.sm2 import SM2_CURVE_OID, PrivateKey, PublicKey

_FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
_NEW_FILE = click.Path(dir_okay=False, writable=True, path_type=Path)


def _passphrase_from_env(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise click.UsageError(f"environment variable {var} is not set or empty; it must hold the passphrase")
    return value


def _secret_options(passphrase_env: str | None, kek_env: str | None) -> None:
    if passphrase_env and kek_env:
        raise click.UsageError("give at most one of --passphrase-env and --kek-env")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode``; refuse to replace an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise click.ClickException(f"{path} already exists; refusing to overwrite it") from None
    try:
        os.fchmod(fd, mode)  # the umask may only have narrowed it; make it exact
        with os.fdopen(fd, "wb") as out:
            fd = -1
            out.write(data)
    finally:
        if fd >= 0:
            os.close(fd)


def _protection(blob: bytes) -> str:
    if not is_encrypted_key(blob):
        return "none (unencrypted PEM)"
    envelope = read_envelope(blob)
    if envelope.uses_passphrase:
        return f"SM4-GCM, passphrase (PBKDF2-HMAC-SM3, {envelope.iterations} iterations)"
    return "SM4-GCM, key-encryption key"


def _load_public(path: Path, passphrase_env: str | None, kek_env: str | None) -> tuple[PublicKey, str]:
    """The public key in ``path`` (a public key, or a private key decrypted to authenticate it)."""
    _secret_options(passphrase_env, kek_env)
    blob = path.read_bytes()
    if is_encrypted_key(blob):
        # Decrypt even to show the public key: an unauthenticated envelope could name someone else's key.
        envelope = read_envelope(blob)
        if envelope.uses_passphrase:
            if not passphrase_env:
                raise click.UsageError(f"{path} is protected by a passphrase; pass --passphrase-env VAR")
            key = decrypt_private_key(blob, passphrase=_passphrase_from_env(passphrase_env))
        else:
            if not kek_env:
                raise click.UsageError(f"{path} is protected by a key-encryption key; pass --kek-env VAR")
            key = decrypt_private_key(blob, kek_from_env(kek_env))
        return key.public_key, _protection(blob)
    if b"PUBLIC KEY-----" in blob:
        return PublicKey.from_pem(blob), "public key"
    return PrivateKey.from_pem(blob).public_key, _protection(blob)


@click.group("keys")
def keys() -> None:
    """Generate, inspect and protect SM2 keys."""


@keys.command("generate")
@click.option("--out", "out", required=True, type=_NEW_FILE, help="File to create (mode 0600, never replaced).")
@click.option("--passphrase-env", metavar="VAR", help="Encrypt under the passphrase in environment variable VAR.")
@click.option("--kek-env", metavar="VAR", help="Encrypt under the 32-hex-digit KEK in environment variable VAR.")
def generate(out: Path, passphrase_env: str | None, kek_env: str | None) -> None:
    """Generate an SM2 key pair and write the private key to --out.

    Without --passphrase-env or --kek-env the key is written as unencrypted PKCS#8 PEM, readable by
    ``openssl pkey``.
    """
    _secret_options(passphrase_env, kek_env)
    passphrase = _passphrase_from_env(passphrase_env) if passphrase_env else None
    kek = kek_from_env(kek_env) if kek_env else None
    key = PrivateKey.generate()
    if passphrase is not None:
        data = encrypt_private_key(key, passphrase=passphrase)
    elif kek is not None:
        data = encrypt_private_key(key, kek)
    else:
        data = key.to_pem()
    _write_new(out, data, 0o600)
    click.echo(f"wrote {out}")
    click.echo(f"key_id: {key.key_id}")
    click.echo(f"protection: {_protection(data)}")
    if passphrase is None and kek is None:
        click.echo(f"warning: {out} holds an unencrypted private key", err=True)


@keys.command("show")
@click.argument("file", type=_FILE)
@click.option("--passphrase-env", metavar="VAR", help="Environment variable holding the file's passphrase.")
@click.option("--kek-env", metavar="VAR", help="Environment variable holding the file's KEK (32 hex digits).")
def show(file: Path, passphrase_env: str | None, kek_env: str | None) -> None:
    """Print the key ID and public key of FILE (never the private key)."""
    public, protection = _load_public(file, passphrase_env, kek_env)
    click.echo(f"key_id: {public.key_id}")
    click.echo(f"algorithm: SM2 (curve {SM2_CURVE_OID})")
    click.echo(f"protection: {protection}")
    click.echo(public.to_pem().decode("ascii"), nl=False)


@keys.command("public")
@click.argument("file", type=_FILE)
@click.option("--out", "out", type=_NEW_FILE, help="Write here instead of standard output (never replaced).")
@click.option("--passphrase-env", metavar="VAR", help="Environment variable holding the file's passphrase.")
@click.option("--kek-env", metavar="VAR", help="Environment variable holding the file's KEK (32 hex digits).")
def public(file: Path, out: Path | None, passphrase_env: str | None, kek_env: str | None) -> None:
    """Write the SubjectPublicKeyInfo PEM of FILE's key, as ``openssl pkey -pubout`` would."""
    public_key, _ = _load_public(file, passphrase_env, kek_env)
    if out is None:
        click.echo(public_key.to_pem().decode("ascii"), nl=False)
    else:
        _write_new(out, public_key.to_pem(), 0o644)
